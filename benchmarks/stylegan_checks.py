"""The acceptance measurements of issue 15 on a trained style-based run folder.

    OMP_NUM_THREADS=1 python benchmarks/stylegan_checks.py RUN [--pairs 1000] [--n 10000]
        [--paths 5000] [--json out.json]

Everything uses the run's sampler (its EMA copy when kept) and the shipped classifier of its
data set (MNIST or Fashion-MNIST), and prints a markdown table:

* style mixing: ``--pairs`` pairs (A from seed 1, B from seed 2); the mix takes the coarse
  styles (4^2-8^2) from A and the others, and the per-pixel noise, from B. Reported: the
  share of mixes the classifier labels as it labels A (and as B), and the mean absolute
  difference of the mix from A and from B on [0, 1] pixels (images clamped to [-1, 1]),
  with the share of pairs where both differences exceed 0.05;
* truncation: precision and recall (k = 3) of ``--n`` samples at psi 1, 0.7, 0.5 against
  ``--n`` images of the run's data (the ``mnist-pr`` protocol);
* perceptual path length in Z and in W over ``--paths`` paths (metric ``ppl``: classifier
  features, not LPIPS);
* cfd (metric ``mnist``) at ``--n`` samples.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from gankit import api
from gankit.data.base import make_generator
from gankit.metrics.offline import ClassifierMetrics, classifier_for, predict, real_statistics
from gankit.metrics.styles import path_lengths, trimmed_mean, truncated_precision_recall

SEED_A, SEED_B, SEED_N = 1, 2, 12345


@torch.no_grad()
def mixing(model, pairs: int, name: str, batch: int = 500) -> dict[str, float]:
    """Coarse styles from A, the rest (and the noise) from B, for ``pairs`` pairs."""
    obj = model.objective
    ga, gb = make_generator(SEED_A, model.device), make_generator(SEED_B, model.device)
    xa, xb, xm = [], [], []
    for i in range(0, pairs, batch):
        m = min(batch, pairs - i)
        a, b = obj.sample_inputs(m, ga), obj.sample_inputs(m, gb)
        xa.append(model.generate(a).float().cpu().clamp(-1, 1))
        xb.append(model.generate(b).float().cpu().clamp(-1, 1))
        xm.append(model.generate(obj.mixed(b, a, "coarse")).float().cpu().clamp(-1, 1))
    xa, xb, xm = torch.cat(xa), torch.cat(xb), torch.cat(xm)
    la, lb, lm = (predict(name, x, model.device)[1] for x in (xa, xb, xm))
    da = ((xm - xa).abs() / 2).flatten(1).mean(1).numpy()              # [0, 1] pixels
    db = ((xm - xb).abs() / 2).flatten(1).mean(1).numpy()
    return {"pairs": pairs, "layers": list(obj.style_layers("coarse")),
            "label_of_A": float((lm == la).mean()), "label_of_B": float((lm == lb).mean()),
            "A_and_B_same_label": float((la == lb).mean()),
            "mean_abs_diff_A": float(da.mean()), "mean_abs_diff_B": float(db.mean()),
            "share_both_diffs_over_0.05": float(((da > 0.05) & (db > 0.05)).mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--paths", type=int, default=5000)
    ap.add_argument("--psi", type=float, nargs="+", default=[1.0, 0.7, 0.5])
    ap.add_argument("--raw", action="store_true",
                    help="use the trained G, not its EMA copy (runs with train.ema_beta)")
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    _, model = api.load_model(args.run, device="cpu")
    if args.raw:
        model.ema.clear()                    # sampler() falls back to the trained G
    name = classifier_for(model)
    c0 = time.process_time()
    out = {"run": args.run, "step": model.c.step, "classifier": name, "raw_G": args.raw,
           "mixing": mixing(model, args.pairs, name)}
    real = real_statistics(model.data, name, args.n, ClassifierMetrics.REAL_SEED)["features"]
    out["truncation"] = {f"{psi:g}": {k: v for k, v in truncated_precision_recall(
        model, psi, args.n, SEED_N, name, real).items() if k != "protocol"}
        for psi in args.psi}
    out["ppl"] = {s: trimmed_mean(path_lengths(model, s, args.paths, SEED_N, name))
                  for s in ("z", "w")}
    out["cfd"] = ClassifierMetrics.evaluate(model, args.n)
    out["cpu_s"] = round(time.process_time() - c0, 1)
    mx = out["mixing"]
    which = "trained G" if args.raw else "sampler (EMA G when kept)"
    print(f"# {args.run} (step {out['step']}, {which}, classifier {name}, "
          f"{out['cpu_s']} CPU-s)\n")
    print("| check | value |\n| --- | ---: |")
    print(f"| mix (coarse w {mx['layers'][0]}-{mx['layers'][1] - 1} from A) labelled as A, "
          f"{args.pairs} pairs | {mx['label_of_A']:.3f} |")
    print(f"| mix labelled as B / A and B same label | {mx['label_of_B']:.3f} / "
          f"{mx['A_and_B_same_label']:.3f} |")
    print(f"| mean abs diff mix-A / mix-B ([0, 1] pixels) | {mx['mean_abs_diff_A']:.3f} / "
          f"{mx['mean_abs_diff_B']:.3f} |")
    print(f"| pairs with both diffs > 0.05 | {mx['share_both_diffs_over_0.05']:.3f} |")
    for psi, pr in out["truncation"].items():
        print(f"| psi {psi}: precision / recall (n={args.n}) | {pr['precision']:.3f} / "
              f"{pr['recall']:.3f} |")
    print(f"| PPL Z / W ({args.paths} paths, classifier features) | {out['ppl']['z']:.1f} / "
          f"{out['ppl']['w']:.1f} |")
    tag = name.replace("-", "_")
    print(f"| cfd_{tag} (n={args.n}) | {out['cfd'][f'cfd_{tag}']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
