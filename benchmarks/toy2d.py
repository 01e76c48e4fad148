"""Mode-collapse benchmark on the PacGAN 2-D mixtures.

For ring and grid x {minimax, non-saturating, WGAN, WGAN-GP, hinge}, trains each with 5 seeds
and prints a markdown table of the mean and std of: modes captured, high-quality %, KL of the
mode histogram to uniform, and wall-clock seconds (2,500 samples, VEEGAN/PacGAN protocol).

    python benchmarks/toy2d.py [--seeds 5] [--steps-scale 1.0] [--out table.md]
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
COMMON = ["log.progress=false", "log.sample_at=[]", "log.sample_every=1000000",
          "log.ckpt_every=1000000", "log.keep_ckpts=1", "eval.every=1000000"]


def run_one(preset: str, objective: str, seed: int, scale: float, workdir: Path) -> dict:
    cfg = build_config(preset, COMMON + [f"objective={objective}", f"seed={seed}"])
    steps = max(10, int(cfg.train.steps * scale))
    cfg = build_config(preset, COMMON + [f"objective={objective}", f"seed={seed}",
                                         f"train.steps={steps}"])
    t0 = time.perf_counter()
    run = api.train(cfg, workdir / f"{preset}-{objective}-{seed}")
    seconds = time.perf_counter() - t0
    last = [r for r in run.read_metrics() if "modes" in r][-1]
    return {"modes": last["modes"], "hq": 100 * last["hq_fraction"], "kl": last["kl"],
            "seconds": seconds}


def table(results: dict, n_modes: dict) -> str:
    lines = ["| data | objective | modes | high-quality % | KL | seconds |",
             "| --- | --- | --- | --- | --- | --- |"]
    for (preset, obj), rows in results.items():
        cells = []
        for key in ("modes", "hq", "kl", "seconds"):
            v = np.array([r[key] for r in rows], dtype=float)
            fmt = ".2f" if key == "kl" else ".1f"
            cells.append(f"{v.mean():{fmt}} ± {v.std():{fmt}}")
        lines.append(f"| {preset} ({n_modes[preset]}) | {obj} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps-scale", type=float, default=1.0)
    ap.add_argument("--presets", default="ring,grid")
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--jsonl", type=Path, help="append raw per-run results here")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (small MLPs run fastest on one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {}
    n_modes = {"ring": 8, "grid": 25}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            for obj in args.objectives.split(","):
                rows = []
                for seed in range(args.seeds):
                    r = run_one(preset, obj, seed, args.steps_scale, Path(tmp))
                    rows.append(r)
                    if args.jsonl:
                        with open(args.jsonl, "a") as f:
                            f.write(json.dumps({"preset": preset, "objective": obj,
                                                "seed": seed} | r) + "\n")
                results[(preset, obj)] = rows
                print(f"{preset:5s} {obj:14s} " + " ".join(
                    f"{k}={np.mean([r[k] for r in rows]):.2f}" for k in rows[0]), flush=True)
    out = table(results, n_modes)
    print(out)
    if args.out:
        args.out.write_text(out + "\n")


if __name__ == "__main__":
    main()
