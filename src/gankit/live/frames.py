"""What the live page draws, computed from the running trainer between two steps.

A *frame* is a JSON-able dict of plain lists (floats rounded to 4 decimals), made by the
trainer's thread (the only one that touches the networks). What it holds depends on the data
kind and on what the model offers (``gankit.core.capabilities``), never on the objective's
name; every picture reuses the capability the run's figures use:

* 2-D toys: ``real`` and ``fake`` points, ``lims`` (``plots.toy.x_limits``); with a critic,
  ``heat`` (``critic_map`` on a HEAT x HEAT grid, ``plots.toy.critic_values``), ``arrows``
  (``generator_field`` at the fakes: -grad_x of G's loss, where each fake is pushed) and the
  mean critic on ``real``/``fake``; with a latent, ``latent``: G applied to a grid of latent
  points. For a latent of more than 2 dimensions the grid is the slice through the plane of
  z_1 and z_2 with every other coordinate at 0 (the mode of N(0, I) and the centre of
  U[-1, 1]^d): the same plane at every frame, so the page shows how G bends one fixed sheet.
  A PCA plane of the fakes would move from frame to frame and mix the coordinates.
* 1-D toys: the course-slide panels as ``Gaussian1DView.density_data`` and ``mapping_data``
  compute them (p_data, the histogram of p_g, D on a line, D(G(z)), G(z) against F^-1), and
  ``arrows`` at the plotted fakes.
* images: the fixed-noise samples as one PNG grid (``plots.images.make_grid``), data URL.

``metrics``: the registered metrics that apply to the run and need only toy data (the mode
counts of ``gankit.metrics.toy``), on ``METRIC_N`` samples, when asked.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch

from gankit.core import capabilities as caps
from gankit.data.base import make_generator
from gankit.metrics import protocol
from gankit.plots.images import make_grid, pil_image, repeat_rows
from gankit.plots.toy import (DATA_SEED, Gaussian1DView, Toy2DView, critic_label,
                              critic_values, x_limits)
from gankit.registry import METRICS

KINDS = ("toy1d", "toy2d", "image")     # data kinds the live page draws
SEED = 4242                             # the page's fixed noise (apart from training's)
POINTS = 500                            # real and fake points shown
HEAT = 48                               # heat-map cells per side
LATENT_K = 11                           # latent grid lines per side
METRIC_N = 1000                         # samples behind the live mode metrics
IMAGES = 36                             # image runs: samples in the grid
TOY_KINDS = frozenset({"toy1d", "toy2d"})


def as_list(x: Any) -> Any:
    """Nested lists of floats rounded to 4 decimals, NaN/Inf as None (JSON has neither)."""
    a = np.round(np.asarray(x, dtype=np.float64), 4)
    out = a.tolist()
    return out if np.isfinite(a).all() else _nulls(out)


def _nulls(x: Any) -> Any:
    if isinstance(x, list):
        return [_nulls(v) for v in x]
    return None if isinstance(x, float) and not np.isfinite(x) else x


def live_metrics(trainer) -> list[str]:
    """Names of the registered metrics that apply to the run and read only toy data."""
    facts = protocol.RunFacts.from_config(trainer.cfg)
    return [n for n in METRICS.names()
            if (METRICS.get(n).kinds or frozenset()) and METRICS.get(n).kinds <= TOY_KINDS
            and METRICS.get(n).check(facts) is None]


class FrameMaker:
    """Makes frames of one run from a fixed draw of noise (the same fakes move smoothly)."""

    def __init__(self, trainer):
        n = IMAGES if trainer.data.info.kind == "image" else POINTS
        self.inputs = trainer.objective.sample_inputs(n, make_generator(SEED, trainer.device))
        self.metric_names = live_metrics(trainer)

    def frame(self, trainer, metrics: bool = False) -> dict[str, Any]:
        """The frame of the trainer's current state (see the module notes)."""
        kind = trainer.data.info.kind
        out: dict[str, Any] = {"kind": kind, "critic_label": None}
        offers = trainer.objective.offers
        if caps.CRITIC in offers:
            out["critic_label"] = critic_label(trainer)
            out["probability"] = bool(trainer.objective.critic_is_probability)
        fake = trainer.generate(self.inputs).float()
        if kind == "toy2d":
            out |= plane(trainer, fake)
        elif kind == "toy1d":
            out |= line(trainer, fake)
        else:
            buf = io.BytesIO()
            pil_image(make_grid(fake.cpu())).save(buf, format="PNG")
            out["image"] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        if metrics and self.metric_names:
            values, _ = protocol.evaluate_metrics(trainer, self.metric_names, METRIC_N)
            out["metrics"] = {k: float(v) for k, v in values.items()}
        return out


def _critic_means(trainer, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    return {"d_real": float(critic_values(trainer, real).mean()),
            "d_fake": float(critic_values(trainer, fake).mean())}


def plane(trainer, fake: torch.Tensor) -> dict[str, Any]:
    """The 2-D picture: points, critic heat map, gradient arrows, the latent grid."""
    real = trainer.data.sample(POINTS, DATA_SEED)                         # (n, 2)
    lims = x_limits(trainer.data, fake.cpu().numpy())
    out: dict[str, Any] = {"lims": list(lims), "real": as_list(real), "fake": as_list(fake.cpu())}
    if caps.CRITIC in trainer.objective.offers:
        heat = critic_values(trainer, Toy2DView.grid(lims, HEAT))        # (HEAT*HEAT,) row by row
        push = trainer.objective.generator_field(fake).float().cpu()     # (n, 2)
        out |= {"heat": as_list(heat), "heat_n": HEAT, "arrows": as_list(push)}
        out |= _critic_means(trainer, real, fake.cpu())
    if caps.LATENT in trainer.objective.offers and trainer.objective.latent.dim >= 1:
        out["latent"] = latent_grid(trainer)
    return out


def latent_grid(trainer) -> dict[str, Any]:
    """G on a grid of latent points: ``k`` lines per side over [-span, span] in z_1 (and
    z_2; the other coordinates 0), ``points`` (k*k, 2) row by row (z_2 rows, z_1 columns),
    or (k, 2) along z_1 for a 1-D latent; the model's other inputs held at one draw."""
    latent = trainer.objective.latent
    span = 1.0 if latent.dist == "uniform" else 2.0      # N(0, 1): 95 % of each coordinate
    ticks = torch.linspace(-span, span, LATENT_K)
    if latent.dim == 1:
        z = ticks[:, None]
    else:
        gx, gy = torch.meshgrid(ticks, ticks, indexing="xy")
        z = torch.zeros(LATENT_K * LATENT_K, latent.dim)
        z[:, 0], z[:, 1] = gx.flatten(), gy.flatten()
    base = trainer.objective.sample_inputs(1, make_generator(DATA_SEED, trainer.device))
    inputs = repeat_rows(base, len(z)) | {"z": z.to(trainer.device)}
    g = trainer.generate(inputs).float().cpu()
    return {"k": LATENT_K, "dims": min(latent.dim, 2), "span": span, "points": as_list(g)}


def line(trainer, fake: torch.Tensor) -> dict[str, Any]:
    """The 1-D picture: densities and D, G(z) against F^-1, arrows at the plotted fakes."""
    g = fake.cpu().numpy().ravel()
    d = Gaussian1DView.density_data(trainer, g)
    out: dict[str, Any] = {"density": {k: as_list(v) for k, v in d.items()}}
    m = Gaussian1DView.mapping_data(trainer)
    if m is not None:
        out["mapping"] = {k: as_list(v) for k, v in m.items()}
    if caps.CRITIC in trainer.objective.offers:
        gz = torch.tensor(d["gz"], dtype=torch.float32)[:, None].to(trainer.device)
        out["arrows"] = as_list(trainer.objective.generator_field(gz).float().cpu().ravel())
        out |= _critic_means(trainer, trainer.data.sample(POINTS, DATA_SEED), fake.cpu())
    return out
