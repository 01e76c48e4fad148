"""Caption accuracy: does a generated canvas show what its caption says?

For "MNIST with captions" (``gankit.data.captions``; Mansimov et al. 2016). A canvas is
correct when every digit its caption names is right and in the right place:

* what: the slot the caption gives the digit is cropped (digit-size square) and read by the
  shipped MNIST classifier (``gankit.metrics.classifier``; crops are resized to 28 x 28);
* where: the ink (pixel values mapped to [0, 1]) of the crop has its centre of mass within a
  quarter of a digit of the slot's centre and holds at least ``MIN_INK`` of the crop's area,
  and the ink of the whole canvas has its centre of mass within a quarter of a digit of the
  mean of the caption's slot centres (so a digit drawn in every corner is wrong).

Real canvases score about 100 % (``tests/test_captions.py``): it measures the protocol, not
the classifier.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from gankit.core import capabilities as caps
from gankit.data.captions import CaptionInfo, draw_specs, spec_tokens
from gankit.data.base import make_generator
from gankit.errors import GankitError
from gankit.metrics.classifier import classify, load_classifier
from gankit.metrics.finite import check_finite
from gankit.metrics.protocol import EvalOptions, Metric

MIN_INK = 0.03        # share of a crop's area: an MNIST digit holds ~0.1
TOLERANCE = 0.25      # of a digit's side, for the centres of mass
MAX_STRAY = 0.2       # share of the canvas's ink outside the caption's slots
CHUNK = 1000


def centre_of_mass(ink: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """ink (n, H, W) >= 0 -> (row, column, mass), each (n,), in pixel coordinates."""
    h, w = ink.shape[-2:]
    mass = ink.sum((-2, -1))
    safe = mass.clamp_min(1e-8)
    rows = (ink.sum(-1) * torch.arange(h, dtype=ink.dtype)).sum(-1) / safe
    cols = (ink.sum(-2) * torch.arange(w, dtype=ink.dtype)).sum(-1) / safe
    return rows, cols, mass


def caption_correct(images: Tensor, specs: Tensor, info: CaptionInfo,
                    device: str | torch.device = "cpu") -> Tensor:
    """Per canvas, whether it shows its caption (see the module notes): images (n, 1, C, C)
    in [-1, 1], caption rows (n, 3) (template, a, b) -> bool (n,). Raises NonFiniteError for
    NaN or infinite images."""
    check_finite("images to read", images)
    ink = ((images[:, 0].float().cpu() + 1) / 2).clamp(0, 1)        # (n, C, C)
    d, n = info.digit, len(images)
    tol = TOLERANCE * d
    ok = torch.ones(n, dtype=torch.bool)
    inside = torch.zeros(n)
    model = load_classifier("mnist", device)
    for t in specs[:, 0].unique().tolist():
        rows = (specs[:, 0] == t).nonzero().squeeze(1)
        for k, (top, left) in enumerate(info.slots(t)):
            crop = ink[rows, top:top + d, left:left + d]               # (m, d, d)
            r, c, mass = centre_of_mass(crop)
            centre = (d - 1) / 2
            placed = ((r - centre).abs() <= tol) & ((c - centre).abs() <= tol) & \
                (mass >= MIN_INK * d * d)
            _, logits = classify(model, crop.unsqueeze(1) * 2 - 1)
            ok[rows] &= placed & (logits.argmax(1) == specs[rows, 1 + k])
            inside[rows] += mass                  # slots never overlap
    return ok & (inside >= (1 - MAX_STRAY) * ink.sum((-2, -1)))


class CaptionAccuracy(Metric, name="caption-accuracy"):
    """Share of generated canvases showing their caption, seen and held-out combinations.

    n captions of seen (template, digit) combinations and n of held-out ones, drawn with the
    metric's seed; a canvas is correct when each named digit is classified right in its slot
    and placed there (centres of mass; see ``gankit.metrics.captions``)."""

    kinds = frozenset({"image"})
    needs = frozenset({caps.SAMPLES, caps.CAPTIONS})
    values = {"caption_accuracy_seen": "max", "caption_accuracy_heldout": "max"}
    smoke_config: ClassVar[dict[str, Any]] = {
        "data": {"name": "mnist-captions", "split": "test", "canvas": 28,
                 "heldout_size": 16},
        "model": {"name": "captions", "z_dim": 4, "ngf": 4, "ndf": 4, "embed_dim": 4,
                  "text_dim": 4},
        "objective": {"name": "gan-cls"}}

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        info = trainer.data.info
        if not isinstance(info, CaptionInfo):
            raise GankitError("metric 'caption-accuracy' needs captioned data "
                              "(mnist-captions)")
        out = {}
        for offset, split in enumerate(("seen", "heldout")):
            gen = make_generator(cls.seed(seed) + offset, trainer.device)
            specs = draw_specs(info, n, gen, heldout=split == "heldout")
            x = captioned_samples(trainer, spec_tokens(info, specs), gen)
            out[f"caption_accuracy_{split}"] = float(
                caption_correct(x, specs, info, trainer.device).float().mean())
        return out

    @classmethod
    def describe(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, Any]:
        return {"n_seen": n, "n_heldout": n, "seed_generated": cls.seed(seed),
                "classifier": "mnist (shipped)", "min_ink": MIN_INK,
                "tolerance_digits": TOLERANCE}


def captioned_samples(trainer, tokens: Tensor, gen: torch.Generator) -> Tensor:
    """Samples (n, *shape) on the CPU for the captions ``tokens`` (n, length), the rest of
    the generator's inputs (noise) drawn from ``gen``, in chunks."""
    parts = []
    for i in range(0, len(tokens), CHUNK):
        part = tokens[i:i + CHUNK].to(trainer.device)
        inputs = trainer.objective.sample_inputs(len(part), gen)
        inputs["tokens"] = part
        parts.append(trainer.generate(inputs).float().cpu())
    return torch.cat(parts)
