"""InfoGAN acceptance number of a run: how often the categorical code c1 agrees with the digit.

    python benchmarks/infogan_codes.py RUN [--best] [--n 10000] [--seed 12345] [--json out.json]

Generates n images from the run's newest intact checkpoint (``--best``: the one kept by
``eval.best_metric``), classifies them with the shipped MNIST classifier, matches codes to
digits one-to-one (Hungarian algorithm) and prints the agreement, then one line per code with
its three most frequent digits: the table that shows which digits share a code.
The training-time ``class-agreement`` metric is the same computation on ``eval.n`` samples.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from gankit.api import load_trainer
from gankit.metrics.offline import (categorical_code, class_agreement, code_counts,
                                   generate_with_inputs, predict)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--best", action="store_true", help="use checkpoints/best.safetensors")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=12345, help="noise seed of the samples")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    _, trainer, _ = load_trainer(args.run, best=args.best)
    x, inputs = generate_with_inputs(trainer, args.n, args.seed)
    codes = categorical_code(inputs)
    if codes is None:
        raise SystemExit(f"{args.run} has no categorical code (not an InfoGAN run)")
    _, digits = predict("mnist", x, trainer.device)
    agreement, match = class_agreement(codes, digits, num_classes=10)
    counts = code_counts(codes, digits, num_classes=10)
    result = {"run": str(args.run), "step": trainer.c.step, "n": args.n, "seed": args.seed,
              "class_agreement": agreement, "matching": match, "counts": counts.tolist()}
    print(f"step {trainer.c.step}: class agreement {100 * agreement:.1f} % of {args.n} samples")
    for code, row in enumerate(counts):
        top = np.argsort(-row)[:3]
        share = ", ".join(f"{d}: {100 * row[d] / max(row.sum(), 1):.0f} %" for d in top)
        print(f"  code {code} (matched to {match.get(code, '-')}): {share}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
