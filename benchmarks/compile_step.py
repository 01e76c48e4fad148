"""Does ``train.compile`` (torch.compile of G and D) speed up a training step here?

    python benchmarks/compile_step.py [--presets ring dcgan-mnist] [--steps 30] [--rounds 3]
                                      [--threads 1] [--set train.batch_size=256 ...]

For each preset, two trainers in this process: eager and ``train.compile=true``. The compiled
one's first steps include compilation (reported separately); then blocks of ``--steps`` steps
alternate between the two ``--rounds`` times and the median step time of each is printed,
with the largest weight difference after the same number of steps. Presets whose data is
missing are skipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from gankit.config import build_config
from gankit.errors import GankitError
from gankit.train.trainer import Trainer


def timed(trainer: Trainer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["ring", "dcgan-mnist"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--threads", type=int, help="intra-op threads (default: torch's choice; "
                    "1 is much faster on a busy shared CPU, see benchmarks/scaling.py)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"cores: {os.cpu_count()}, threads: {torch.get_num_threads()}, load average: "
          f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}")
    for preset in args.presets:
        base = args.overrides + ["train.device=cpu"]
        try:
            eager = Trainer(build_config(preset, base))
            comp = Trainer(build_config(preset, base + ["train.compile=true"]))
        except GankitError as e:
            print(f"{preset}: skipped ({str(e).splitlines()[0]})")
            continue
        start = time.perf_counter()
        comp.train_step()             # compiles the D phase and G phase graphs
        comp.train_step()             # (and any recompilation the second step triggers)
        compile_s = time.perf_counter() - start
        eager.train_step()
        eager.train_step()
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        for _ in range(args.rounds):
            times["eager"].append(timed(eager, args.steps))
            times["compiled"].append(timed(comp, args.steps))
        e, c = statistics.median(times["eager"]), statistics.median(times["compiled"])
        a, b = eager.nets.state_dict(), comp.nets.state_dict()
        diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        print(f"{preset:<12} first 2 compiled steps {compile_s:6.1f} s | eager "
              f"{1e3 * e:7.2f} ms/step | compiled {1e3 * c:7.2f} ms/step | speed-up {e / c:4.2f}x"
              f" | max |w_eager - w_compiled| after {2 + args.rounds * args.steps} steps "
              f"{diff:.1e}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
