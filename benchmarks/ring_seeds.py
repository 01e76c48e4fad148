"""Seed sweep of the default demo (the ``ring`` preset, ``gankit train`` with no arguments).

Trains the preset once per seed, one run at a time, through ``gankit.api.train`` and prints a
markdown table of the final ``toy2d`` evaluation in each run's metrics.jsonl (modes captured,
high-quality fraction, KL of the mode histogram to uniform; 2,500 samples), wall and CPU
seconds, and the 1-minute load average when each run ends (the machine may be shared: CPU
seconds of this single-threaded process are what a free core would take).

    OMP_NUM_THREADS=1 python benchmarks/ring_seeds.py --seeds 0 1 2 3 4 --out runs/ring-seeds \
        [--set train.steps=6000 --set optim.G.lr=5e-4 ...]

Target of the course demo: 8/8 modes and >= 97 % high-quality samples for every seed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from gankit import api
from gankit.config import build_config

N_MODES = 8
TARGET_HQ = 0.97


def run_seed(seed: int, sets: list[str], out: Path) -> dict:
    cfg = build_config("ring", ["log.progress=false", *sets, f"seed={seed}"])
    t0, c0 = time.perf_counter(), time.process_time()
    run = api.train(cfg, out / f"seed{seed}")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    last = [r for r in run.read_metrics() if "modes" in r][-1]
    return {"seed": seed, "step": last.get("step"), "modes": last["modes"],
            "hq_fraction": last["hq_fraction"], "kl": last["kl"], "seconds": seconds,
            "cpu_seconds": cpu, "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", type=Path, required=True,
                    help="folder for the runs (one sub-folder per seed; must not exist yet)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, as `gankit train --set` (repeatable)")
    ap.add_argument("--jsonl", type=Path, help="also append one JSON line per seed here")
    args = ap.parse_args(argv)

    rows = []
    print("| seed | modes | high-quality % | KL | seconds | CPU seconds | load |\n"
          "| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for seed in args.seeds:
        r = run_seed(seed, args.sets, args.out)
        r["sets"] = args.sets
        rows.append(r)
        print(f"| {seed} | {r['modes']} | {100 * r['hq_fraction']:.1f} | {r['kl']:.4f} "
              f"| {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['load']:.1f} |", flush=True)
        if args.jsonl:
            with args.jsonl.open("a") as f:
                f.write(json.dumps(r) + "\n")
    if len(rows) > 1:
        def ms(xs: list[float]) -> str:
            return f"{statistics.fmean(xs):.3g} ± {statistics.pstdev(xs):.2g}"
        print(f"| mean ± std | {ms([r['modes'] for r in rows])} "
              f"| {ms([100 * r['hq_fraction'] for r in rows])} | {ms([r['kl'] for r in rows])} "
              f"| {ms([r['seconds'] for r in rows])} | {ms([r['cpu_seconds'] for r in rows])} "
              f"| {ms([r['load'] for r in rows])} |")
    ok = all(r["modes"] == N_MODES and r["hq_fraction"] >= TARGET_HQ for r in rows)
    print(f"target (8/8 modes, >= {100 * TARGET_HQ:.0f} % high quality, every seed): "
          f"{'met' if ok else 'NOT met'}; overrides: {' '.join(args.sets) or '(preset)'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
