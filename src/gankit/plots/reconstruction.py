"""The autoencoder's reconstructions of real and generated data (capability "reconstruction").

The model names its reconstruction map (``reconstruction_of``: a format with one ``{}``,
"D({})" for BEGAN's discriminator, "dec(enc({}))" for a VAE); the rows are labelled with it.

For BEGAN (Berthelot, Schumm & Metz 2017) the discriminator is an autoencoder and its
reconstruction error L(v) = mean |D(v) - v| is the energy the game is played on: D learns to
reconstruct real images well and generated ones badly, G to make images it reconstructs
well, and at equilibrium E[L(G(z))] = gamma E[L(x)]. The figure shows both halves of that
balance: real x next to D(x), and G(z) next to D(G(z)), titled with the mean errors and
their ratio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gankit.core import capabilities as caps
from gankit.plots.common import Figure, figure, save

SEED = 777                 # real rows and noise of the figure (not the training streams)
N_IMAGES = 10              # columns of the image figure
N_POINTS = 300             # points of each panel of the 2-D figure


def errors(x: Tensor, x_hat: Tensor) -> Tensor:
    """Per-sample mean absolute error: (n, *shape) twice -> (n,)."""
    return (x_hat - x).abs().flatten(1).mean(1)


def reconstruct_pairs(trainer, n: int) -> dict[str, Tensor]:
    """``n`` real samples, ``n`` generated ones and the objective's reconstructions of each,
    float32 on the CPU: {"real", "real_hat", "fake", "fake_hat"} of shape (n, *data shape)."""
    real = trainer.data.sample(n, SEED).float()
    fake = trainer.sample(n, seed=SEED)
    dev = trainer.device
    rec = trainer.objective.reconstruct
    return {"real": real.cpu(), "real_hat": rec(real.to(dev)).float().cpu(),
            "fake": fake.cpu(), "fake_hat": rec(fake.to(dev)).float().cpu()}


def summary(pairs: dict[str, Tensor]) -> str:
    """'mean L1: real 0.081, generated 0.040 (ratio 0.49)' from ``reconstruct_pairs``."""
    lr = errors(pairs["real"], pairs["real_hat"]).mean().item()
    lf = errors(pairs["fake"], pairs["fake_hat"]).mean().item()
    ratio = f"{lf / lr:.2f}" if lr > 0 else "n/a"
    return f"mean L1: real {lr:.3f}, generated {lf:.3f} (ratio {ratio})"


def rec_name(trainer) -> str:
    """The model's reconstruction map as a format with one ``{}`` (default "D({})")."""
    return getattr(trainer.objective, "reconstruction_of", "D({})")


def sample_name(trainer) -> str:
    """What the model's samples are called (default "G(z)")."""
    return getattr(trainer.objective, "sample_name", "G(z)")


def draw_images(trainer, path: Path, n: int = N_IMAGES) -> Path:
    """Four rows of ``n`` images: real x, D(x), G(z), D(G(z)) (D: the model's map)."""
    from gankit.plots.images import labelled_grid  # (images.py lists this figure)
    p = reconstruct_pairs(trainer, n)
    tiles = torch.cat([p["real"], p["real_hat"], p["fake"], p["fake_hat"]])
    rec, fake = rec_name(trainer), sample_name(trainer)
    return labelled_grid(tiles, n, path, f"reconstructions, step {trainer.c.step}\n"
                         f"{summary(p)}", ["real x", rec.format("x"), fake, rec.format(fake)])


def draw_points(trainer, path: Path, n: int = N_POINTS) -> Path:
    """2-D data: real points and generated ones, each joined to its reconstruction."""
    from gankit.plots.toy import x_limits
    p = reconstruct_pairs(trainer, n)
    rec = rec_name(trainer)
    lims = x_limits(trainer.data, *(v.numpy() for v in p.values()))
    fig, ax = figure(2, 1, 4.5)
    for a, (src, hat, what, colour) in zip(ax[0], (("real", "real_hat", "real x", "tab:blue"),
                                                   ("fake", "fake_hat", "G(z)", "tab:orange"))):
        x, y = p[src].numpy(), p[hat].numpy()
        segments = np.stack([x, y], 1)                                   # (n, 2, 2)
        for seg in segments:
            a.plot(seg[:, 0], seg[:, 1], color="gray", lw=0.4, alpha=0.6)
        a.scatter(x[:, 0], x[:, 1], s=4, c=colour, label=what)
        a.scatter(y[:, 0], y[:, 1], s=4, c="black", marker="x", lw=0.6, label=rec.format(what))
        err = errors(p[src], p[hat]).mean().item()
        a.set(xlim=lims, ylim=lims, aspect="equal", xlabel="x1", ylabel="x2",
              title=f"{what} -> {rec.format(what)}, mean L1 {err:.3f}")
        a.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                 frameon=False)
    fig.suptitle(f"reconstructions, step {trainer.c.step}: {summary(p)}",
                 fontsize=9)
    return save(fig, path)


def draw(trainer, folder: Path, rows: list[dict]) -> Path | None:
    """The figure for the run's data kind: image grids or 2-D points (other kinds: None)."""
    kind = trainer.data.info.kind
    if kind == "image":
        return draw_images(trainer, Path(folder) / "reconstruction.png")
    if kind == "toy2d":
        return draw_points(trainer, Path(folder) / "reconstruction.png")
    return None


FIGURE = Figure("reconstruction", draw, frozenset({caps.RECONSTRUCTION}))
"""The figure as the image and 2-D views list it."""
