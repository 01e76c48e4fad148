"""Throughput of the FID Inception network: fast path vs plain forward (CPU, fp32).

    python benchmarks/fid_throughput.py [--weights PATH] [--batch-size 25] [--repeats 3]

* plain: the network as loaded, eval mode, fp32, NCHW, BatchNorm as separate layers, no_grad;
* fast:  what gankit uses: BatchNorm folded into the convolutions, channels_last,
         inference_mode.

Both get the same preprocessed (B, 3, 299, 299) input; resizing is identical for both and left
out. Runs alternate (plain, fast, plain, ...) so a busy machine slows both alike, and the best
run of each is reported. Speed does not depend on the weight values, so without weights the
network is randomly initialised. Prints ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import torch

from gankit.errors import GankitError
from gankit.eval.inception import FIDInceptionV3, fold_batchnorm, load_network, resolve_weights


def build(weights: str | None) -> tuple[FIDInceptionV3, str]:
    try:
        path = resolve_weights(weights, download=False)
    except GankitError:
        if weights:
            raise
        return FIDInceptionV3().eval().requires_grad_(False), "random init (no weights found)"
    return load_network(path), str(path)


def images_per_second(run, x: torch.Tensor) -> float:
    start = time.perf_counter()
    run(x)
    return x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    plain, source = build(args.weights)
    fast = fold_batchnorm(plain).to(memory_format=torch.channels_last)
    x = torch.rand(args.batch_size, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    x = x * 2 - 1                                                      # (B, 3, 299, 299)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run_plain(inp):
        with torch.no_grad():
            return plain(inp)

    def run_fast(inp):
        with torch.inference_mode():
            return fast(inp)

    diff = (run_plain(x) - run_fast(x_cl)).abs().max().item()         # also warms both up
    best_plain = best_fast = 0.0
    for _ in range(args.repeats):
        best_plain = max(best_plain, images_per_second(run_plain, x))
        best_fast = max(best_fast, images_per_second(run_fast, x_cl))

    print(f"weights: {source}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"best of {args.repeats}")
    print(f"plain forward (eval, fp32, no fusion): {best_plain:8.2f} images/s")
    print(f"fast path (BN folded, channels_last):  {best_fast:8.2f} images/s")
    print(f"speed-up: {best_fast / best_plain:.2f}x   (max |difference| of pool3: {diff:.2e})")


if __name__ == "__main__":
    main()
