"""Mode-collapse metrics for the 2-D mixtures (VEEGAN / PacGAN protocol).

On n generated samples (2,500 in the papers): a sample is *high quality* when it lies within
3 standard deviations of its nearest mode; a mode is *captured* when at least ``min_count``
high-quality samples are assigned to it; ``kl`` is KL(p_hat || uniform) of the histogram of
nearest-mode assignments (all samples), the "reverse KL" of PacGAN's tables.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def mode_metrics(samples: np.ndarray, modes: np.ndarray, std: float,
                 min_count: int = 1) -> dict[str, float]:
    samples = np.asarray(samples, dtype=np.float64)                       # (n, 2)
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


class Toy2DMetrics:
    """modes, hq_fraction, kl on 2-D mixtures (PacGAN settings)."""

    EVAL_SEED = 12345

    @classmethod
    def evaluate(cls, trainer, n: int) -> dict[str, Any]:
        data = trainer.data
        if not hasattr(data, "modes"):
            return {}
        x = trainer.sample(n, seed=cls.EVAL_SEED).numpy()
        out = mode_metrics(x, data.modes.numpy(), data.std)
        if getattr(data.info, "kind", "") == "toy2d" and len(data.modes) > 100:
            out = {"hq_fraction": out["hq_fraction"]}       # continuous manifolds (spiral)
        return out
