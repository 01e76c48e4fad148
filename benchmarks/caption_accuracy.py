"""Caption accuracy per CPU-minute: train a captions preset on one thread, score at CPU marks.

For issue 18's acceptance ("caption accuracy >= 80 % seen and >= 50 % held-out, 1,000
captions each, after at most 60 minutes on one core"). One process, ``train.threads=1``; the
budget is this process's CPU time spent in training steps (``time.process_time``; the clock
stops while scoring and saving), so a busy machine stretches the wall clock, not the budget.

At each mark the generator (its EMA copy when kept) draws ``--n`` canvases for seen and
``--n`` for held-out combinations, scored by metric ``caption-accuracy``
(``gankit.metrics.captions``); a checkpoint is saved into the run folder ``--out``, so
``gankit sample OUT --caption "..."`` and ``gankit eval OUT`` work on it afterwards.

    OMP_NUM_THREADS=1 python benchmarks/caption_accuracy.py captions-mnist --minutes 5 10 20 \
        --out runs/captions-run [--set model.ngf=48 ...] [--json results.jsonl]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from gankit.config import build_config
from gankit.metrics.captions import CaptionAccuracy
from gankit.run import RunDir
from gankit.train.model import save_data_info
from gankit.train.trainer import Trainer
from time_to_quality import append_json, cpu_marks      # benchmarks/, this script's folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset")
    ap.add_argument("--minutes", type=float, nargs="+", default=[5, 10, 20])
    ap.add_argument("--out", type=Path, required=True, help="a new run folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json", help="append one JSON line per mark to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sets = ["train.threads=1", "log.progress=false", f"seed={args.seed}", *args.sets]
    cfg = build_config(args.preset, sets)
    trainer = Trainer(cfg, args.out / "checkpoints")
    trainer.cfg.train.steps = max(trainer.cfg.train.steps, 10**7)   # the budget stops it
    run = RunDir.create(args.out, cfg)
    save_data_info(run.path, trainer.data.info)
    tag = " ".join(args.sets) or "preset"
    print(f"# {args.preset} seed {args.seed} [{tag}], n={args.n} captions each", flush=True)
    print("| minutes (CPU) | wall s | steps | seen | held-out | load |\n"
          "| ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
    for mark, row in cpu_marks(trainer, args.minutes):
        acc = CaptionAccuracy.evaluate(trainer, args.n)
        trainer.save()
        row = {"preset": args.preset, "seed": args.seed, "tag": tag, **row, **acc}
        print(f"| {mark:g} | {row['wall_s']:.0f} | {row['steps']} | "
              f"{acc['caption_accuracy_seen']:.3f} | {acc['caption_accuracy_heldout']:.3f} | "
              f"{row['load_1min']} |", flush=True)
        append_json(args.json, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
