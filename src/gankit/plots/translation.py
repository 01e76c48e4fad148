"""Pictures for image-to-image translation: input / translated / reconstructed (or target).

Every sample step writes ``samples/step-XXXXXXXX.png``: one picture, a row per held-out
example, a labelled column per panel (``real_A``, ``fake_B``, ``rec_A``, ...; pix2pix:
``real_A``, ``fake_B``, ``real_B``). The run's ``report.html`` (``gankit.report``) shows them
over the steps, as the CycleGAN / pix2pix result pages do, with ``samples_caption`` above.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from gankit.core import capabilities as caps
from gankit.plots.common import Figure, curves, draw_figures, upscale_for

VIEW_PX = 96           # translation pictures show each image about this wide

PAD = 2                # pixels between tiles
HEADER = 14            # pixels of column labels above a picture


# ---------------------------------------------------------------- image plumbing
def to_uint8(x: Tensor) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] -> uint8 (N, H, W, 3)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).numpy()


def tile(columns: list[Tensor], scale: int = 1, rows: int = 16,
         labels: list[str] | None = None) -> Image.Image:
    """Columns of images (each (N, C, H, W), equal H and W) side by side, one row per index,
    with white gaps; more than ``rows`` examples continue in another group of columns to the
    right. Upscaled ``scale`` times (nearest: small images stay crisp); ``labels`` head the
    columns."""
    imgs = [to_uint8(c) for c in columns]
    n, h, w = imgs[0].shape[:3]
    groups = -(-n // rows)
    n_rows = min(n, rows)
    group_w = len(imgs) * (w + PAD) + 3 * PAD          # a wider gap between groups
    out = np.full((n_rows * (h + PAD) - PAD, groups * group_w - 3 * PAD - PAD, 3), 255, np.uint8)
    for j, col in enumerate(imgs):
        for i in range(min(n, len(col))):
            top, left = (i % rows) * (h + PAD), (i // rows) * group_w + j * (w + PAD)
            out[top:top + h, left:left + w] = col[i]
    pic = Image.fromarray(out)
    if scale > 1:
        pic = pic.resize((pic.width * scale, pic.height * scale), Image.Resampling.NEAREST)
    if not labels:
        return pic
    head = HEADER
    framed = Image.new("RGB", (pic.width, pic.height + head), "white")
    framed.paste(pic, (0, head))
    draw = ImageDraw.Draw(framed)
    for g in range(groups):
        for j, text in enumerate(labels):
            draw.text(((g * group_w + j * (w + PAD)) * scale + 2, 1), text, fill="black")
    return framed


# ---------------------------------------------------------------- translating
def ends(direction: str) -> tuple[str, str]:
    """("A", "B") for AtoB, ("B", "A") for BtoA: the input and output domains."""
    return ("A", "B") if direction == "AtoB" else ("B", "A")


@torch.no_grad()
def translate(trainer, net: str, x: Tensor) -> Tensor:
    """``net`` (EMA weights when kept) applied to x in eval mode, on the trainer's device."""
    G = trainer.sampler(net)
    was = G.training
    G.eval()
    try:
        return G(x.to(trainer.device)).float().cpu()
    finally:
        G.train(was)


def panels(trainer, n: int, translated: Tensor | None = None) -> list[tuple[str, Tensor]]:
    """(label, images) columns for the first ``n`` held-out examples: for each direction the
    input, its translation and, with an inverse (CycleGAN), the reconstruction; for paired
    data, the target. ``translated`` (A -> B, as the trainer generated it) is reused."""
    obj = trainer.objective
    inputs = obj.sample_inputs(n, None)
    paired = trainer.data.info.kind == "paired"
    out: list[tuple[str, Tensor]] = []
    for direction, net in obj.directions.items():
        src, dst = ends(direction)
        real = inputs[src.lower()].float().cpu()
        if direction == "AtoB" and translated is not None:
            fake = translated[:n].float().cpu()
        else:
            fake = translate(trainer, net, real)
        out += [(f"real_{src}", real), (f"fake_{dst}", fake)]
        if direction in obj.inverse:
            out.append((f"rec_{src}", translate(trainer, obj.inverse[direction], fake)))
        if paired:
            out.append((f"real_{dst}", inputs[dst.lower()].float().cpu()))
    return out


# ---------------------------------------------------------------- the view
class TranslationView:
    """Two-domain data (kinds "unpaired" and "paired"): translation triples and a web page."""

    def save_samples(self, x: Tensor, path: Path, trainer=None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if trainer is None or caps.TRANSLATION not in trainer.objective.offers:
            tile([x], upscale_for(x.shape[-1], VIEW_PX)).save(path)     # just the images given
            return path
        cols = panels(trainer, len(x), translated=x)
        scale = upscale_for(x.shape[-1], VIEW_PX)
        tile([c for _, c in cols], scale, labels=[label for label, _ in cols]).save(path)
        return path

    @staticmethod
    def samples_caption(config: dict[str, Any]) -> str:
        """What the columns of the sample pictures are, for a run's resolved ``config`` (as
        saved): the report shows it above them."""
        from gankit.registry import DATASETS, OBJECTIVES

        obj = OBJECTIVES.get(config["objective"]["name"])
        paired = DATASETS.get(config["data"]["name"]).kind == "paired"
        parts = []
        for direction in getattr(obj, "directions", {"AtoB": None}):
            src, dst = ends(direction)
            parts.append(f"real_{src} is an input, fake_{dst} its translation")
            if direction in getattr(obj, "inverse", {}):
                parts.append(f"rec_{src} that translation mapped back (cycle reconstruction)")
            if paired:
                parts.append(f"real_{dst} the paired target")
        return ("Held-out examples at each sample step, one row each, oldest step first: "
                + "; ".join(parts) + ".")

    def final_plots(self, trainer, folder: Path, rows: list[dict]) -> list[Path]:
        return draw_figures([
            Figure("translations", self._translations, frozenset({caps.TRANSLATION})),
            Figure("losses", lambda t, f, r: curves(r, f / "losses.png",
                                                    prefixes=("loss/", "D_A(", "D_B(", "D(a")),
                   frozenset()),
        ], trainer, folder, rows)

    @staticmethod
    def _translations(trainer, folder: Path, rows) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        cols = panels(trainer, 16)
        path = folder / "translations.png"
        tile([c for _, c in cols], upscale_for(cols[0][1].shape[-1], VIEW_PX),
             labels=[label for label, _ in cols]).save(path)
        return path
