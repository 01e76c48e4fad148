"""Caption accuracy read per template and per digit: which captions a trained run gets wrong.

The metric ``caption-accuracy`` (``gankit.metrics.captions``) gives one share per split; this
diagnostic draws the same ``--n`` seen captions (its seed 12345 unless ``--seed``), scores
each canvas with the same ``caption_correct`` and groups the results by the caption's
template and by the digits it names. The run's newest checkpoint is read (to read an older
one, copy the run folder with only that checkpoint).

    python benchmarks/caption_templates.py RUN [RUN ...] [--n 1000] [--seed 12345]
"""

from __future__ import annotations

import argparse
import sys

import torch

from gankit import api
from gankit.data.base import make_generator
from gankit.data.captions import TEMPLATES, draw_specs, spec_tokens
from gankit.metrics.captions import CaptionAccuracy, caption_correct, captioned_samples


def per_template(run: str, n: int, seed: int | None) -> dict:
    """Share right of n seen captions: all, per template (its text) and per digit named."""
    _, model = api.load_model(run, device="cpu")
    info = model.data.info
    gen = make_generator(CaptionAccuracy.seed(seed), model.device)   # as the metric draws
    specs = draw_specs(info, n, gen, heldout=False)                  # (n, 3): template, a, b
    right = caption_correct(captioned_samples(model, spec_tokens(info, specs), gen), specs,
                            info).float()                            # (n,)
    templates = {TEMPLATES[t][0].format(a="a", b="b"): float(right[specs[:, 0] == t].mean())
                 for t in specs[:, 0].unique().tolist()}
    digits = {d: float(right[(specs[:, 1] == d) | (specs[:, 2] == d)].mean()) for d in range(10)}
    return {"run": run, "step": model.c.step, "all": float(right.mean()),
            "templates": templates, "digits": digits}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for run in args.runs:
        r = per_template(run, args.n, args.seed)
        print(f"{r['run']} (step {r['step']}): {r['all']:.3f} of {args.n} seen captions right")
        for text, share in r["templates"].items():
            print(f"  {share:.3f}  {text}")
        print("  per digit named: " + " ".join(f"{d}: {v:.3f}" for d, v in r["digits"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
