"""The BEGAN acceptance checks of issue 14, read from finished runs' ``metrics.jsonl``.

    python benchmarks/began_checks.py RUN [RUN ...] [--warmup 0.1] [--json out.json]

Per run (Berthelot et al. 2017; the scalars are the trainer's means over each ``log.every``
interval):

* ``k_t`` after the warm-up (the first ``--warmup`` of the steps): its smallest and largest
  logged value, and whether all lie inside (k_min, 1) by more than 0.001 (k_t is clamped to
  [k_min, 1], k_min = ``objective.k_min``, 0 in the paper: an interval mean within 0.001 of
  either end means k_t sat at the clamp);
* convergence: the mean of M_global over the last 10 % of the steps divided by its mean over
  steps 5-15 % (target <= 0.6);
* equilibrium: mean L(G(z)) / mean L(x) over the last 10 % (target: gamma +- 0.1);
* with the run's ``eval-STEP.json`` (``gankit eval RUN --metrics mnist,mnist-pr --n 10000``):
  cfd, class entropy (nats, log 10 = 2.303 for uniform digits), precision and recall;
* ``--per-class``: the energy L(x) its autoencoder D gives the 10,000 MNIST test digits, per
  class as a fraction of the mean, beside each class's share of ink (mean grey level) and
  the correlation of L(x) with ink over the images. L(G(z)) = gamma L(x) is met by drawing the
  classes whose L(x) is about gamma times the mean: which digits a gamma leaves G.

Prints a markdown table, one row per run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

CLAMP = 1e-3                     # k_t within this of its floor or 1 counts as at the clamp


def rows(run: Path) -> list[dict]:
    """The JSON lines of ``run/metrics.jsonl``."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]


def mean_over(train: list[dict], key: str, lo: float, hi: float, steps: int) -> float:
    """Mean of ``key`` over the logged rows with lo * steps < step <= hi * steps."""
    vals = [r[key] for r in train if key in r and lo * steps < r["step"] <= hi * steps]
    if not vals:
        raise SystemExit(f"no {key} logged between {lo:.0%} and {hi:.0%} of {steps} steps")
    return float(np.mean(vals))


def check(run: Path, warmup: float) -> dict:
    """The checks above for one run folder."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    logged = rows(run)
    gamma, steps = cfg["objective"]["gamma"], max(r["step"] for r in logged)
    floor = cfg["objective"].get("k_min", 0.0)          # the lower clamp of k_t
    train = [r for r in logged if "k_t" in r or "M_global" in r]
    k = [r["k_t"] for r in train if "k_t" in r and r["step"] > warmup * steps]
    ratio = (mean_over(train, "L(G(z))", 0.9, 1.0, steps)
             / mean_over(train, "L(x)", 0.9, 1.0, steps))
    m_early = mean_over(train, "M_global", 0.05, 0.15, steps)
    m_late = mean_over(train, "M_global", 0.9, 1.0, steps)
    out = {"run": str(run), "seed": cfg.get("seed"), "gamma": gamma, "steps": steps,
           "k_min": min(k), "k_max": max(k), "k_floor": floor,
           "k_inside": bool(floor + CLAMP < min(k) and max(k) < 1 - CLAMP),
           "M_early": m_early, "M_late": m_late, "M_ratio": m_late / m_early,
           "L_ratio": ratio, "L_ratio_ok": bool(abs(ratio - gamma) <= 0.1)}
    for path in sorted(run.glob("eval-*.json")):              # gankit eval RUN: the latest
        for key, value in json.loads(path.read_text()).items():
            if key.startswith(("cfd_", "class_entropy_", "precision_", "recall_")):
                out[key] = value
    return out


def per_class(run: Path) -> dict:
    """L(x) of D's reconstructions of the MNIST test digits (run's newest checkpoint): per
    class / mean, ink per class / mean, and corr(L(x), ink) over the images."""
    import torch

    from gankit import api
    from gankit.data.idx import load_mnist

    torch.set_num_threads(1)
    test = load_mnist("test", None, "mnist")
    x = test.images.float() / 127.5 - 1                              # (10000, 1, 28, 28)
    _, model = api.load_model(run, device="cpu")
    energy = torch.cat([model.objective.critic_map(b) for b in x.split(500)])   # (10000,)
    ink = ((x + 1) / 2).flatten(1).mean(1)
    rel = lambda v: [float(v[test.labels == c].mean() / v.mean()) for c in range(10)]  # noqa: E731
    corr = float(torch.corrcoef(torch.stack([energy, ink]))[0, 1])
    return {"L_mean": float(energy.mean()), "L_per_class": rel(energy),
            "ink_per_class": rel(ink), "corr": corr}


def _num(r: dict, key: str, digits: int) -> str:
    return f"{r[key]:.{digits}f}" if key in r else "—"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--json")
    ap.add_argument("--per-class", action="store_true",
                    help="also D's L(x) per MNIST test class (loads each run's checkpoint)")
    args = ap.parse_args(argv)
    results = [check(run, args.warmup) for run in args.runs]
    if args.per_class:
        for r in results:
            r.update(per_class(Path(r["run"])))
    print("| run | gamma | seed | k_t after warm-up (min-max) | M_global: last 10 % / 5-15 % "
          "| L(G(z)) / L(x), last 10 % | cfd_mnist | class entropy | precision / recall |")
    print("| --- | ---: | ---: | --- | --- | --- | ---: | ---: | --- |")
    for r in results:
        pr = (f"{r['precision_mnist']:.3f} / {r['recall_mnist']:.3f}"
              if "recall_mnist" in r else "—")
        print(f"| {Path(r['run']).name} | {r['gamma']} | {r['seed']} | {r['k_min']:.4f}-"
              f"{r['k_max']:.4f} {'inside' if r['k_inside'] else 'AT A CLAMP'} | "
              f"{r['M_late']:.3f} / {r['M_early']:.3f} = {r['M_ratio']:.2f} | "
              f"{r['L_ratio']:.3f} {'ok' if r['L_ratio_ok'] else 'OFF'} | "
              f"{_num(r, 'cfd_mnist', 1)} | {_num(r, 'class_entropy_mnist', 3)} | {pr} |")
    if args.per_class:
        print("\n| run | L(x) mean | L(x) per class / mean: 0 1 2 3 4 5 6 7 8 9 | "
              "corr(L(x), ink) |\n| --- | ---: | --- | ---: |")
        for r in results:
            print(f"| {Path(r['run']).name} | {r['L_mean']:.4f} | "
                  f"{' '.join(f'{v:.2f}' for v in r['L_per_class'])} | {r['corr']:.2f} |")
        ink = " ".join(f"{v:.2f}" for v in results[0]["ink_per_class"])
        print(f"| ink per class / mean | | {ink} | |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
