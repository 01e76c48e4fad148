"""Quality per CPU-minute: train a preset on one thread and score it at CPU-time marks.

For judging preset changes by what they buy in a fixed budget (issue "better digits per
CPU-minute"). One process, ``train.threads=1``; the budget is the CPU time of this process
spent in training steps (``time.process_time``), so a busy machine stretches the wall clock
but not the budget. The clock is stopped while scoring.

At each mark (minutes of training CPU time) the generator (its EMA copy when the run keeps
one, as ``gankit sample`` does) draws ``--n`` samples, scored with the shipped classifier of
the data set against ``--n`` images of the held-out split (the MNIST / Fashion-MNIST test
set):

* ``cfd``: Fréchet distance of the classifier's penultimate features (not FID; comparable only
  with values of the same classifier and n),
* ``class_kl``: KL(generated class histogram || held-out class histogram), nats.

The floor (n training images against the held-out ones) is printed first. Output: a markdown
table on stdout, and with ``--json`` one JSON line per mark appended to that file.

    OMP_NUM_THREADS=1 python benchmarks/time_to_quality.py dcgan-mnist --minutes 2 4 8 12 \
        --seed 0 [--set train.ema_beta=0.999 ...] [--json results.jsonl] [--tag name]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from gankit.config import build_config
from gankit.metrics.offline import (class_histogram, classifier_frechet_distance,
                                    kl_divergence, predict, shipped_classifier)
from gankit.train.trainer import Trainer

REAL_SEED, FAKE_SEED = 54321, 12345


def reference(trainer: Trainer, name: str, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Held-out features (n, D), their class histogram (K,), and the train-vs-held-out floor."""
    held = trainer.data.heldout().sample(n, seed=REAL_SEED)              # (n, C, H, W)
    feats, pred = predict(name, held)
    hist = class_histogram(pred, 10)
    train_feats, _ = predict(name, trainer.data.sample(n, seed=REAL_SEED))
    return feats, hist, classifier_frechet_distance(feats, train_feats)


def score(trainer: Trainer, name: str, ref: tuple, n: int) -> dict[str, float]:
    x = trainer.sample(n, seed=FAKE_SEED)                                 # (n, C, H, W)
    feats, pred = predict(name, x)
    return {"cfd": classifier_frechet_distance(ref[0], feats),
            "class_kl": kl_divergence(class_histogram(pred, 10), np.maximum(ref[1], 1e-12))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset")
    ap.add_argument("--minutes", type=float, nargs="+", default=[2, 4, 8, 12])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--steps", type=int, default=None,
                    help="train.steps (the horizon of LR schedules); default: the preset's "
                         "or, if it is shorter, enough for the budget")
    ap.add_argument("--json", help="append one JSON line per mark to this file")
    ap.add_argument("--tag", default="", help="a name for the rows (default: the --set list)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sets = ["train.threads=1", "log.progress=false", f"seed={args.seed}", *args.sets]
    if args.steps:
        sets.append(f"train.steps={args.steps}")
    trainer = Trainer(build_config(args.preset, sets), None)
    if not args.steps:              # never stop early on the preset's own step count
        trainer.cfg.train.steps = max(trainer.cfg.train.steps, 10**7)
    name = shipped_classifier(trainer.cfg.data.name)
    if name is None:
        ap.error(f"{args.preset}: no shipped classifier for its data")
    ref = reference(trainer, name, args.n)
    tag = args.tag or " ".join(args.sets) or "preset"
    print(f"# {args.preset} seed {args.seed} [{tag}]: floor (train vs held-out, n={args.n}) "
          f"cfd {ref[2]:.2f}", flush=True)
    print("| minutes (CPU) | wall s | steps | cfd | class KL | load |\n"
          "| ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
    for mark, row in cpu_marks(trainer, args.minutes):
        row = {"preset": args.preset, "seed": args.seed, "tag": tag, **row,
               **score(trainer, name, ref, args.n), "floor_cfd": ref[2]}
        print(f"| {mark:g} | {row['wall_s']:.0f} | {row['steps']} | {row['cfd']:.2f} | "
              f"{row['class_kl']:.4f} | {row['load_1min']} |", flush=True)
        append_json(args.json, row)
    return 0


def cpu_marks(trainer: Trainer, minutes: list[float]):
    """Train to each mark (minutes of this process's CPU time in training steps), yielding
    ``(mark, {"minutes", "cpu_s", "wall_s", "steps", "load_1min"})``; the CPU clock counts
    only the steps, not what the caller does between marks."""
    cpu, wall0 = 0.0, time.perf_counter()
    for mark in sorted(minutes):
        c0 = time.process_time()
        while cpu + time.process_time() - c0 < 60 * mark:
            trainer.train_step()
        cpu += time.process_time() - c0
        yield mark, {"minutes": mark, "cpu_s": round(cpu, 1),
                     "wall_s": round(time.perf_counter() - wall0, 1), "steps": trainer.c.step,
                     "load_1min": round(os.getloadavg()[0], 2)}


def append_json(path: str | None, row: dict) -> None:
    """One JSON line appended to ``path`` (None: nothing)."""
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
