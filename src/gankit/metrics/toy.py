"""Mode-collapse metrics for the 2-D mixtures (VEEGAN / PacGAN protocol).

On n generated samples (2,500 in the papers): a sample is *high quality* when it lies within
3 standard deviations of its nearest mode; a mode is *captured* when at least ``min_count``
high-quality samples are assigned to it; ``kl`` is KL(p_hat || uniform) of the histogram of
nearest-mode assignments (all samples), the "reverse KL" of PacGAN's tables.
"""

from __future__ import annotations

import numpy as np

from gankit.metrics.finite import check_finite
from gankit.metrics.protocol import (Direction, EvalOptions, Metric, RunFacts,
                                     generated_samples)
from gankit.registry import DATASETS


def mode_metrics(samples: np.ndarray, modes: np.ndarray, std: float,
                 min_count: int = 1) -> dict[str, float]:
    """Mode metrics of samples (n, 2) against mode centres (m, 2) of standard deviation std:
    ``{"modes": captured modes (int), "hq_fraction": in [0, 1], "kl": nats}``."""
    samples = np.asarray(samples, dtype=np.float64)                       # (n, 2)
    check_finite("samples", samples)
    modes = np.asarray(modes, dtype=np.float64)                           # (m, 2)
    d2 = ((samples[:, None, :] - modes[None, :, :]) ** 2).sum(-1)         # (n, m)
    nearest = d2.argmin(1)
    dist = np.sqrt(d2[np.arange(len(samples)), nearest])
    hq = dist <= 3 * std
    hq_counts = np.bincount(nearest[hq], minlength=len(modes))
    hist = np.bincount(nearest, minlength=len(modes)) / max(1, len(samples))
    nz = hist > 0
    kl = float((hist[nz] * np.log(hist[nz] * len(modes))).sum())
    return {"modes": int((hq_counts >= min_count).sum()), "hq_fraction": float(hq.mean()),
            "kl": kl}


def has_discrete_modes(data_name: str) -> bool:
    """Whether a toy2d data set is a mixture of separate modes (ring, grid), rather than a
    continuous manifold (spiral: its ``modes`` are only points along the curve)."""
    return getattr(DATASETS.get(data_name), "discrete_modes", False)


class Toy2DMetrics(Metric, name="toy2d"):
    """Modes captured, high-quality share and reverse KL on 2-D mixtures (PacGAN settings)."""

    kinds = frozenset({"toy2d"})

    @classmethod
    def keys(cls, facts: RunFacts | None = None) -> dict[str, Direction | None]:
        if facts is not None and not has_discrete_modes(facts.data):
            return {"hq_fraction": "max"}           # modes and kl mean nothing on a manifold
        return {"modes": "max", "hq_fraction": "max", "kl": "min"}

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        """``keys`` of the run from n samples (2,500 in the papers), seed 12345 by default."""
        data = trainer.data
        x = generated_samples(trainer, n, cls.seed(seed)).numpy()              # (n, 2)
        out = mode_metrics(x, data.modes.numpy(), data.std)
        return {k: out[k] for k in cls.keys(RunFacts.from_config(trainer.cfg))}
