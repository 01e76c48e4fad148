"""What report.html and TensorBoard logging add to the end of a short run.

Trains short runs (one thread) and times, inside each, the end-of-run ``write_report`` (with
curves when the run draws figures, without for ``log.figures=false``), next to the whole run;
then the same run with ``log.tensorboard`` false and true (when the package is installed).
Medians over ``--repeats`` runs; prints a markdown table.

    python benchmarks/report_cost.py [--repeats 3] [--steps 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gankit import api
from gankit.config import build_config
from gankit.report import pages

CASES = {  # name: (preset, overrides)
    "ring": ("ring", []),
    "mnist mlp": ("gan-mlp-mnist", ["train.batch_size=64"]),
}


def timed_run(preset: str, overrides: list[str], out: Path) -> tuple[float, float]:
    """(whole run seconds, report seconds) of one run."""
    spent = []
    real = pages.write_report

    def timing(*args, **kwargs):
        t = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t)
    pages.write_report = timing
    try:
        t = time.perf_counter()
        api.train(build_config(preset, overrides), out)
        return time.perf_counter() - t, sum(spent)
    finally:
        pages.write_report = real


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    base = [f"train.steps={args.steps}", "train.threads=1", "log.progress=false",
            "eval.metrics=[]"]
    print("| run | log.figures | log.tensorboard | run s | report s | report % |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (preset, extra) in CASES.items():
            for figures, tb in ((True, False), (False, False), (False, True)):
                sets = base + extra + [f"log.figures={figures}".lower(),
                                       f"log.tensorboard={tb}".lower()]
                times = [timed_run(preset, sets, Path(tmp) / f"{name}-{figures}-{tb}-{i}")
                         for i in range(args.repeats)]
                run = statistics.median(t for t, _ in times)
                rep = statistics.median(r for _, r in times)
                print(f"| {name} {args.steps} steps | {figures} | {tb} | {run:.2f} | {rep:.3f} "
                      f"| {100 * rep / run:.1f} |", flush=True)


if __name__ == "__main__":
    main()
