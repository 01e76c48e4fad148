"""PixelCNN sampling: the gated stacks row by row against the network on each pixel's window.

For a trained PixelCNN run: draws ``--n`` images from the same uniforms twice, with the
objective's row-at-a-time path (vertical stack once per row, horizontal stack on the row
strip each pixel reads; used when the network offers ``row_context``) and with the windowed
path (the whole network on the window each pixel reads), checks that the two images are
equal, and prints the CPU seconds of this process for each (user + system: a shared
machine stretches wall time, not CPU time), their images per CPU second and the ratio.

    OMP_NUM_THREADS=1 python benchmarks/pixelcnn_sampling.py RUN [--n 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from gankit.api import load_model


def timed(objective, u: torch.Tensor, by_rows: bool) -> tuple[torch.Tensor, float]:
    """(images, CPU seconds of this process) of the objective's ``generate``."""
    start = time.process_time()
    x = objective.generate({"u": u}, by_rows=by_rows)
    return x, time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    objective = load_model(args.run, device="cpu")[1].objective
    u = objective.sample_inputs(args.n, torch.Generator().manual_seed(args.seed))["u"]
    rows, rows_s = timed(objective, u, by_rows=True)
    window, window_s = timed(objective, u, by_rows=False)
    print(f"{args.run}: {args.n} images, one thread, load {os.getloadavg()[0]:.1f}")
    print("| path | CPU s | images per CPU s |\n| --- | ---: | ---: |")
    print(f"| row by row | {rows_s:.2f} | {args.n / rows_s:.2f} |")
    print(f"| window per pixel | {window_s:.2f} | {args.n / window_s:.2f} |")
    print(f"ratio {window_s / rows_s:.1f}x; the same images: {torch.equal(rows, window)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
