"""Closed forms of the original GAN analysis (Goodfellow et al. 2014, section 4)."""

from __future__ import annotations

import numpy as np


def optimal_discriminator(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x))  (Proposition 1)."""
    return p_data / (p_data + p_g)


def js_divergence(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    """JS(p || q) for densities tabulated on a uniform grid with spacing dx (nats)."""
    m = 0.5 * (p + q)
    return 0.5 * _kl(p, m, dx) + 0.5 * _kl(q, m, dx)


def _kl(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])) * dx)


def value_at_optimum(p_data: np.ndarray, p_g: np.ndarray, dx: float) -> float:
    """C(G) = V(D*, G) = E_pdata[log D*] + E_pg[log(1 - D*)] = -log 4 + 2 JS  (Theorem 1)."""
    # log D* = log p - log(p + q) and log(1 - D*) = log q - log(p + q): stable where one
    # density underflows (D* rounding to exactly 0 or 1 would give -inf).
    total = p_data + p_g
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p_data > 0, p_data * (np.log(p_data) - np.log(total)), 0.0)
        b = np.where(p_g > 0, p_g * (np.log(p_g) - np.log(total)), 0.0)
    return float((a.sum() + b.sum()) * dx)
