"""Pictures of a 2-d latent space: the decoded manifold and the encodings of held-out data.

As in Kingma & Welling 2014 (figure 4): a grid of codes z spread over the prior by its
inverse CDF (evenly spaced quantiles of N(0, 1) on each axis) decoded into one image each,
and the encoder's codes of the held-out set (``DataSource.heldout()``), one point per
example coloured by its label. Both are drawn for a model whose latent has exactly two
dimensions (other latents: nothing to draw); they ask for capabilities, not model names:
"latent" and "encoding" (``decode(z)``: the mean image at a code; ``encode(x)``).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from gankit.core import capabilities as caps
from gankit.plots.common import Figure, figure, save

GRID = 20                 # codes per axis of the manifold
MAX_POINTS = 10000        # held-out examples encoded


def is_2d(trainer) -> bool:
    """Whether the model's latent z has exactly two dimensions."""
    return trainer.objective.latent.dim == 2


def manifold_codes(side: int, dist: str = "normal") -> torch.Tensor:
    """(side*side, 2) codes: the prior's quantiles of (i + 0.5) / side on each axis (N(0, 1)
    or U[-1, 1]), row by row from the top (z2 largest) so the picture reads like a plot."""
    u = (np.arange(side) + 0.5) / side
    q = torch.as_tensor(stats.norm.ppf(u) if dist == "normal" else 2 * u - 1,
                        dtype=torch.float32)
    z1, z2 = torch.meshgrid(q, q.flip(0), indexing="xy")
    return torch.stack([z1.flatten(), z2.flatten()], 1)


def draw_manifold(trainer, path: Path, side: int = GRID) -> Path | None:
    """The decoded grid of codes (``manifold_codes``); None unless z is 2-d."""
    if not is_2d(trainer):
        return None
    from gankit.plots.images import labelled_grid
    dist = trainer.objective.latent.dist
    codes = manifold_codes(side, dist)
    x = trainer.objective.decode(codes.to(trainer.device)).float().cpu()
    return labelled_grid(x, side, path, f"decoded latent manifold ({dist} prior quantiles)",
                         [f"{v:.1f}" for v in codes[::side, 1].tolist()],
                         [f"{v:.1f}" for v in codes[:side, 0].tolist()],
                         xlabel="z1", ylabel="z2")


def encodings(trainer, limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The codes (m, 2) of the first ``limit`` held-out examples, their labels (m,) or None,
    and the held-out set's description. DataUnavailable/DataError when there is none."""
    held = trainer.data.heldout()
    codes, labels = [], []
    for batch in held.batches(1000):
        codes.append(trainer.objective.encode(batch["x"].to(trainer.device)).float().cpu())
        if "y" in batch:
            labels.append(batch["y"].cpu())
        if sum(len(c) for c in codes) >= limit:
            break
    z = torch.cat(codes)[:limit].numpy()
    y = torch.cat(labels)[:limit].numpy() if labels else None
    return z, y, held.description


def draw_encodings(trainer, path: Path) -> Path | None:
    """A scatter of the held-out codes mu(x), coloured by label; None unless z is 2-d."""
    if not is_2d(trainer):
        return None
    z, y, what = encodings(trainer)
    fig, ax = figure(1, 1, 5.5)
    a = ax[0, 0]
    if y is None:
        a.scatter(z[:, 0], z[:, 1], s=2, alpha=0.5)
    else:
        names = trainer.data.info.class_names
        for k in np.unique(y):
            pts = z[y == k]
            label = names[k] if k < len(names) else str(k)
            a.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.6, label=label, c=f"C{k % 10}")
        a.legend(markerscale=5, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    a.set(xlabel="z1", ylabel="z2", aspect="equal")
    a.set_title(f"encodings mu(x) of {len(z):,} held-out examples\n"
                + textwrap.fill(what, 60), fontsize=9)
    return save(fig, path)


FIGURES = [
    Figure("latent_manifold", lambda t, f, r: draw_manifold(t, Path(f) / "latent_manifold.png"),
           frozenset({caps.LATENT, caps.ENCODING})),
    Figure("latent_encodings", lambda t, f, r: draw_encodings(t, Path(f) / "latent_encodings.png"),
           frozenset({caps.ENCODING})),
]
"""The figures as the image view lists them."""
