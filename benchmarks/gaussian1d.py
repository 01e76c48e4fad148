"""The course-slide 1-D problem: does `gankit train gaussian1d` learn N(4, 0.5^2)?

Trains the ``gaussian1d`` preset once per seed (one run at a time), draws 10,000 samples of
each run (``gankit.api.sample(run, n=10000, seed=0)``) and prints a markdown table of the
1-Wasserstein distance W1 to N(mean, std^2) (exact quantile formula: the mean absolute
difference between the sorted samples and the target's quantiles at (i + 1/2) / n), the
sample mean, the sample std and the wall-clock seconds of training.

    OMP_NUM_THREADS=1 python benchmarks/gaussian1d.py [--seeds 0 1 2 3 4] [--out table.md]
        [--set key=value ...]

Acceptance (the project's issue): W1 <= 0.05 and |std - 0.5| <= 0.05 for every seed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

from gankit import api
from gankit.config import build_config

N_SAMPLES = 10_000
W1_MAX, STD_TOL = 0.05, 0.1          # the acceptance: W1 and relative std error
QUIET = ["log.progress=false"]


def w1_to_normal(x: np.ndarray, mean: float, std: float) -> float:
    """W1 between the empirical distribution of x and N(mean, std^2): the integral of
    |F_n^-1(u) - F^-1(u)| du, with each of the n sorted samples at its quantile midpoint
    (the error of this midpoint rule is far below the sampling noise at n = 10,000)."""
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    q = stats.norm.ppf((np.arange(len(x)) + 0.5) / len(x), mean, std)
    return float(np.mean(np.abs(x - q)))


def run_one(seed: int, workdir: Path, overrides: list[str]) -> dict:
    cfg = build_config("gaussian1d", QUIET + list(overrides) + [f"seed={seed}"])
    t0 = time.perf_counter()
    api.train(cfg, workdir / f"gaussian1d-{seed}")
    seconds = time.perf_counter() - t0
    x = api.sample(workdir / f"gaussian1d-{seed}", n=N_SAMPLES, seed=0).numpy().ravel()
    mean, std = cfg.data.mean, cfg.data.std
    return {"seed": seed, "w1": w1_to_normal(x, mean, std), "mean": float(x.mean()),
            "std": float(x.std()), "min": float(x.min()), "max": float(x.max()),
            "seconds": seconds, "target_std": std}


def table(rows: list[dict]) -> str:
    lines = ["| seed | W1 to N(4, 0.5^2) | mean | std | min | max | seconds | pass |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ok = r["w1"] <= W1_MAX and abs(r["std"] - r["target_std"]) <= STD_TOL * r["target_std"]
        lines.append(f"| {r['seed']} | {r['w1']:.4f} | {r['mean']:.3f} | {r['std']:.3f} | "
                     f"{r['min']:.2f} | {r['max']:.2f} | {r['seconds']:.1f} | "
                     f"{'yes' if ok else 'NO'} |")
    w1 = [r["w1"] for r in rows]
    lines.append(f"\nW1: worst {max(w1):.4f}, mean {np.mean(w1):.4f}; "
                 f"{sum(r['w1'] <= W1_MAX for r in rows)}/{len(rows)} runs with W1 <= {W1_MAX}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="a config override for every run (key=value), e.g. train.steps=2000")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            rows.append(run_one(seed, Path(tmp), args.overrides))
            r = rows[-1]
            print(f"seed {seed}: W1 {r['w1']:.4f}, mean {r['mean']:.3f}, std {r['std']:.3f}, "
                  f"{r['seconds']:.1f} s", flush=True)
    text = table(rows)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
