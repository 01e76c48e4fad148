"""Mode-collapse benchmark on the PacGAN 2-D mixtures.

For ring and grid x {minimax, non-saturating, WGAN, WGAN-GP, hinge}, trains each with 5 seeds
and prints a markdown table of the mean and std of: modes captured, high-quality %, KL of the
mode histogram to uniform, and wall-clock seconds (2,500 samples, VEEGAN/PacGAN protocol).

    python benchmarks/toy2d.py [--seeds 5] [--steps-scale 1.0] [--out table.md] [--jsonl raw.jsonl]
    python benchmarks/toy2d.py --table-from raw.jsonl [raw2.jsonl ...] --out table.md

Every objective keeps its own optimizer family and k (RMSProp + clipping + n_critic 5 for WGAN,
Adam(0, 0.9) + n_critic 5 for WGAN-GP); the presets' learning rate (1e-3, tuned for the
sigmoid games) is replaced by ``SETTINGS`` for the objectives where a short search on the ring
(2 seeds; see benchmarks/RESULTS.md) found a better one. Runs can be split over processes
(``--presets``, ``--objectives``, ``--jsonl``) and the table made from their raw results.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gankit import api
from gankit.config import build_config

OBJECTIVES = ["minimax", "nonsaturating", "wgan", "wgan-gp", "hinge"]
# Per-objective overrides of the presets (chosen on the ring, applied to both mixtures).
SETTINGS: dict[str, list[str]] = {
    # lambda 0.1, lr 1e-4: the toy settings of Gulrajani et al.'s code (lambda 10: 1-6 ring modes)
    "wgan-gp": ["optim.G.lr=1e-4", "optim.D.lr=1e-4", "objective.gp_weight=0.1"],
    "hinge": ["optim.G.lr=3e-4", "optim.D.lr=3e-4"],   # 1e-3 and 1e-4 collapsed on some seeds
    "wgan": ["optim.G.lr=1e-4", "optim.D.lr=1e-4"],    # RMSProp; 5e-4 and 1e-3 did worse
}
COMMON = ["log.progress=false", "log.sample_at=[]", "log.sample_every=1000000",
          "log.ckpt_every=1000000", "log.keep_ckpts=1", "eval.every=1000000"]


def run_one(preset: str, objective: str, seed: int, scale: float, workdir: Path) -> dict:
    over = COMMON + [f"objective={objective}", f"seed={seed}"] + SETTINGS.get(objective, [])
    steps = max(10, int(build_config(preset, over).train.steps * scale))
    cfg = build_config(preset, over + [f"train.steps={steps}"])
    t0 = time.perf_counter()
    run = api.train(cfg, workdir / f"{preset}-{objective}-{seed}")
    seconds = time.perf_counter() - t0
    last = [r for r in run.read_metrics() if "modes" in r][-1]
    return {"modes": last["modes"], "hq": 100 * last["hq_fraction"], "kl": last["kl"],
            "seconds": seconds}


N_MODES = {"ring": 8, "grid": 25}


def table(results: dict) -> str:
    lines = ["| data | objective | seeds | modes | high-quality % | KL | seconds |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (preset, obj), rows in results.items():
        cells = []
        for key in ("modes", "hq", "kl", "seconds"):
            v = np.array([r[key] for r in rows], dtype=float)
            fmt = ".3f" if key == "kl" else ".1f"
            cells.append(f"{v.mean():{fmt}} ± {v.std():{fmt}}")
        lines.append(f"| {preset} ({N_MODES[preset]}) | {obj} | {len(rows)} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_jsonl(paths: list[Path]) -> dict:
    """Raw results (``--jsonl`` files) grouped by (preset, objective), in the sweep's order;
    a (preset, objective, seed) run found twice counts once (the last one)."""
    runs: dict = {}
    for path in paths:
        for line in path.read_text().splitlines():
            r = json.loads(line)
            runs[(r["preset"], r["objective"], r["seed"])] = r
    results: dict = {}
    for preset in N_MODES:
        for obj in OBJECTIVES:
            rows = [r for (p, o, _), r in sorted(runs.items()) if (p, o) == (preset, obj)]
            if rows:
                results[(preset, obj)] = rows
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-list", help="comma-separated seeds to run instead of 0..seeds-1")
    ap.add_argument("--steps-scale", type=float, default=1.0)
    ap.add_argument("--presets", default="ring,grid")
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--jsonl", type=Path, help="append raw per-run results here")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (small MLPs run fastest on one)")
    ap.add_argument("--table-from", type=Path, nargs="+",
                    help="only print the table of these raw result files")
    args = ap.parse_args()
    if args.table_from:
        out = table(read_jsonl(args.table_from))
        print(out)
        if args.out:
            args.out.write_text(out + "\n")
        return
    torch.set_num_threads(args.threads)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            for obj in args.objectives.split(","):
                rows = []
                seeds = ([int(x) for x in args.seed_list.split(",")] if args.seed_list
                         else range(args.seeds))
                for seed in seeds:
                    r = run_one(preset, obj, seed, args.steps_scale, Path(tmp))
                    rows.append(r)
                    if args.jsonl:
                        with open(args.jsonl, "a") as f:
                            f.write(json.dumps({"preset": preset, "objective": obj,
                                                "seed": seed} | r) + "\n")
                results[(preset, obj)] = rows
                print(f"{preset:5s} {obj:14s} " + " ".join(
                    f"{k}={np.mean([r[k] for r in rows]):.2f}" for k in rows[0]), flush=True)
    out = table(results)
    print(out)
    if args.out:
        args.out.write_text(out + "\n")


if __name__ == "__main__":
    main()
