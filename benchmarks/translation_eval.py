"""Acceptance numbers of the translation demos on their held-out test sets.

    python benchmarks/translation_eval.py RUN [--json out.json]

``cyclegan-strokes`` (MNIST thin <-> bold, unpaired), on the 5000 + 5000 test digits of each
domain, per direction:
  * class kept: the shipped MNIST classifier's label of the translation equals the source
    digit's label (acceptance: >= 90%);
  * ink: mean ink mass (sum of pixel intensities in [0, 1]) of the translations vs the real
    target domain's (acceptance: within 10%);
  * cycle L1: mean |F(G(x)) - x| per pixel, intensities in [0, 1].
``pix2pix-edges`` (Fashion-MNIST edges -> items, paired), on the 10000 test pairs:
  * L1: mean |G(edges) - item| per pixel, intensities in [0, 1];
  * class agreement: the shipped Fashion-MNIST classifier's label of G(edges) equals the
    item's class (acceptance: >= 85%).
Reference rows give the classifier on the real test images, which bounds what a translation
can reach.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from gankit.data.images import fit_size
from gankit.data.translation import fashion_edges, mnist_strokes, to_float
from gankit.metrics.classifier import classify, load_classifier
from gankit.run import RunDir
from gankit.translate import load_translator

BATCH = 500


@torch.no_grad()
def apply(net: torch.nn.Module, x: Tensor) -> Tensor:
    return torch.cat([net(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])


def unit(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1] intensities."""
    return (x.clamp(-1, 1) + 1) / 2


def ink(x: Tensor) -> float:
    """Mean over images of the summed [0, 1] intensity."""
    return float(unit(x).sum((1, 2, 3)).mean())


def agreement(classifier, x: Tensor, labels: Tensor) -> float:
    _, logits = classify(classifier, x)
    return float((logits.argmax(1) == labels).float().mean())


def l1(x: Tensor, y: Tensor) -> float:
    return float((unit(x) - unit(y)).abs().mean())


def eval_strokes(run: Path, cfg) -> dict:
    test = mnist_strokes("test", cfg.data.root, cfg.data.iterations, cfg.data.softness)
    real = {"A": to_float(fit_size(test["a"], cfg.data.size)),
            "B": to_float(fit_size(test["b"], cfg.data.size))}
    labels = {"A": test["ya"], "B": test["yb"]}
    nets = {d: load_translator(run, d)[0] for d in ("AtoB", "BtoA")}
    clf = load_classifier("mnist")
    out: dict = {"reference": {f"classifier_acc_real_{k}": agreement(clf, v, labels[k])
                               for k, v in real.items()}
                 | {f"ink_real_{k}": ink(v) for k, v in real.items()}}
    for direction, inverse in (("AtoB", "BtoA"), ("BtoA", "AtoB")):
        src, dst = direction[0], direction[-1]
        fake = apply(nets[direction], real[src])
        rec = apply(nets[inverse], fake)
        target_ink = ink(real[dst])
        row = {"class_kept": agreement(clf, fake, labels[src]),
               "ink_fake": ink(fake), "ink_target": target_ink,
               "ink_rel_error": abs(ink(fake) - target_ink) / target_ink,
               "ink_rel_error_before": abs(ink(real[src]) - target_ink) / target_ink,
               "cycle_l1": l1(rec, real[src]), "n": len(fake)}
        row["pass"] = row["class_kept"] >= 0.90 and row["ink_rel_error"] <= 0.10
        out[direction] = row
    out["pass"] = out["AtoB"]["pass"] and out["BtoA"]["pass"]
    return out


def eval_edges(run: Path, cfg) -> dict:
    test = fashion_edges("test", cfg.data.root, cfg.data.threshold)
    edges = to_float(fit_size(test["a"], cfg.data.size))
    items = to_float(fit_size(test["b"], cfg.data.size))
    G = load_translator(run, "AtoB")[0]
    fake = apply(G, edges)
    clf = load_classifier("fashion-mnist")
    row = {"l1": l1(fake, items), "l1_pm1": 2 * l1(fake, items),
           "class_agreement": agreement(clf, fake, test["y"]),
           "classifier_acc_real_items": agreement(clf, items, test["y"]),
           "classifier_acc_edge_maps": agreement(clf, edges, test["y"]), "n": len(fake)}
    row["pass"] = row["class_agreement"] >= 0.85
    return {"AtoB": row, "pass": row["pass"]}


EVALS = {"mnist-strokes": eval_strokes, "fashion-edges": eval_edges}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    cfg = RunDir.open(args.run).read_config()
    if cfg.data.name not in EVALS:
        print(f"no translation evaluation for data set {cfg.data.name!r} "
              f"(known: {', '.join(EVALS)})", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    result = EVALS[cfg.data.name](args.run, cfg)
    result |= {"run": str(args.run), "data": cfg.data.name, "objective": cfg.objective.name,
               "eval_seconds": round(time.perf_counter() - t0, 1)}
    metrics = RunDir.open(args.run).read_metrics()
    if metrics:
        result["train_seconds"] = metrics[-1].get("seconds")
        result["steps"] = metrics[-1].get("step")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
