"""Unrolled GAN (Metz et al. 2017) on the ring and the grid: K = 0, 1, 5, 10 unrolling steps.

For each data set (presets ``unrolled-ring`` / ``unrolled-grid``: the authors' notebook
settings), each K and each seed, trains one run (one process, one thread, one run at a
time) and evaluates its final generator with the ``toy2d`` metric on 2,500 samples
(VEEGAN / PacGAN protocol: a sample is high quality within 3 std of its nearest mode, a mode
is captured when at least one high-quality sample is nearest to it). Prints a markdown table
of mean ± std over the seeds of modes, high-quality %, KL of the mode histogram to uniform
and CPU minutes, with the anchors of VEEGAN Table 1 and the targets of issue 14.

    OMP_NUM_THREADS=1 python benchmarks/unrolled_toy.py --time             # time per step, each K
    OMP_NUM_THREADS=1 python benchmarks/unrolled_toy.py --data ring --ks 5 --seeds 0 \\
        --runs DIR --jsonl raw.jsonl                                        # one run
    OMP_NUM_THREADS=1 python benchmarks/unrolled_toy.py --jsonl raw.jsonl  # the whole sweep
    python benchmarks/unrolled_toy.py --table-from raw*.jsonl               # table only

The whole sweep is 2 x 4 x 5 = 40 runs of 25,000 steps; ``--time`` measures each K's step
time on a short run instead (``--time-steps``; CPU time of the one-thread process, what a
free core takes, and wall time) and projects a full run from it. Runs can be
split over processes with ``--data`` / ``--ks`` / ``--seeds`` / ``--jsonl`` and one table
made from their raw results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from gankit import api
from gankit.config import build_config
from gankit.train.trainer import Trainer

PRESETS = {"ring": "unrolled-ring", "grid": "unrolled-grid"}
N_MODES = {"ring": 8, "grid": 25}
KS = [0, 1, 5, 10]
# VEEGAN (Srivastava et al. 2017) Table 1, unrolled GAN: (modes, high-quality %)
ANCHOR = {"ring": (7.6, 35.6), "grid": (23.6, 16.0)}
# issue 14, with K = 5: at least these modes and high-quality %
TARGET = {"ring": (7.8, 60.0), "grid": (24.0, 40.0)}
QUIET = ["log.progress=false", "train.threads=1"]


def config(data: str, k: int, seed: int, sets: list[str]):
    return build_config(PRESETS[data], QUIET + [f"objective.unrolling_steps={k}",
                                                f"seed={seed}", *sets])


def run_one(data: str, k: int, seed: int, sets: list[str], runs: Path) -> dict:
    """Train one run and evaluate its last generator (toy2d, 2,500 samples)."""
    cfg = config(data, k, seed, sets)
    folder = runs / f"{data}-K{k}-seed{seed}"
    t0, c0 = time.perf_counter(), time.process_time()
    api.train(cfg, folder)
    minutes, cpu_minutes = (time.perf_counter() - t0) / 60, (time.process_time() - c0) / 60
    scores = api.evaluate(folder, ["toy2d"], n=2500)
    return {"data": data, "K": k, "seed": seed, "steps": cfg.train.steps,
            "modes": scores["modes"], "hq": 100 * scores["hq_fraction"], "kl": scores["kl"],
            "minutes": minutes, "cpu_minutes": cpu_minutes, "sets": sets}


def time_k(data: str, k: int, steps: int, sets: list[str]) -> dict:
    """Milliseconds per step of K on a short run (after 10 warm-up steps): CPU time of this
    one-thread process (what a free core takes) and wall time (longer on a shared machine),
    and the full run's CPU minutes projected from it (training steps only)."""
    cfg = config(data, k, 0, sets)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp))
        trainer.fit(until=10)
        t0, c0 = time.perf_counter(), time.process_time()
        trainer.fit(until=10 + steps)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"data": data, "K": k, "cpu_ms": 1000 * cpu / steps, "wall_ms": 1000 * wall / steps,
            "full_minutes": cpu / steps * cfg.train.steps / 60, "full_steps": cfg.train.steps}


def mean_std(values: list[float], digits: int = 1) -> str:
    sd = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def table(rows: list[dict]) -> str:
    """Markdown: one line per (data, K), mean ± std over its seeds."""
    out = ["| data | K | seeds | modes | high-quality % | KL | CPU minutes |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["data"], r["K"]), []).append(r)
    for (data, k), rs in sorted(groups.items(), key=lambda g: (list(PRESETS).index(g[0][0]),
                                                                g[0][1])):
        cells = [mean_std([r["modes"] for r in rs]), mean_std([r["hq"] for r in rs]),
                 mean_std([r["kl"] for r in rs], 3),
                 mean_std([r.get("cpu_minutes", r["minutes"]) for r in rs])]
        out.append(f"| {data} ({N_MODES[data]}) | {k} | {len(rs)} | " + " | ".join(cells) + " |")
    for data in PRESETS:
        if any(r["data"] == data for r in rows):
            (am, ah), (tm, th) = ANCHOR[data], TARGET[data]
            out.append(f"\n{data}: VEEGAN Table 1 unrolled GAN {am} modes / {ah} % high "
                       f"quality; target with K = 5: >= {tm} modes, >= {th} %, K = 5 ahead "
                       "of K = 0 on modes.")
    return "\n".join(out)


def read_jsonl(paths: list[Path]) -> list[dict]:
    """Raw rows; a (data, K, seed) run found twice counts once (the last one)."""
    runs: dict[tuple, dict] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                runs[(r["data"], r["K"], r["seed"])] = r
    return list(runs.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    ap.add_argument("--ks", type=int, nargs="+", default=KS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every run, as `gankit train --set`")
    ap.add_argument("--runs", type=Path, help="keep the run folders here (default: temporary)")
    ap.add_argument("--jsonl", type=Path, help="append one JSON line per run here")
    ap.add_argument("--time", action="store_true",
                    help="only time each K on a short run and project a full run")
    ap.add_argument("--time-steps", type=int, default=200)
    ap.add_argument("--table-from", type=Path, nargs="+", help="only print the table of these")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    if args.table_from:
        print(table(read_jsonl(args.table_from)))
        return 0
    if args.time:
        print("| data | K | CPU ms / step | wall ms / step | full run, CPU minutes |\n"
              "| --- | --- | --- | --- | --- |")
        for data in args.data:
            for k in args.ks:
                t = time_k(data, k, args.time_steps, args.sets)
                print(f"| {data} | {k} | {t['cpu_ms']:.1f} | {t['wall_ms']:.1f} | "
                      f"{t['full_minutes']:.1f} ({t['full_steps']} steps) |", flush=True)
        return 0

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or Path(tmp)
        for data in args.data:
            for k in args.ks:
                for seed in args.seeds:
                    r = run_one(data, k, seed, args.sets, runs)
                    rows.append(r)
                    print(f"{data} K={k} seed={seed}: {r['modes']} modes, {r['hq']:.1f} % "
                          f"high quality, KL {r['kl']:.3f}, {r['cpu_minutes']:.1f} CPU min "
                          f"({r['minutes']:.1f} wall)", flush=True)
                    if args.jsonl:
                        with args.jsonl.open("a") as f:
                            f.write(json.dumps(r) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
