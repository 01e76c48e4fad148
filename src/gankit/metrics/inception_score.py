"""Inception Score: exp E_x KL(p(y|x) || p(y)), averaged over splits (Salimans et al. 2016).

The samples are cut into ``splits`` consecutive chunks (10 by convention); each chunk gets its
own marginal p(y), and the score is reported as mean and std over the chunks. Inputs are the
classifier's logits (softmax is applied here, in float64) or its probabilities.
"""

from __future__ import annotations

import numpy as np
from scipy.special import rel_entr, softmax

from gankit.errors import GankitError
from gankit.metrics.finite import check_finite, check_values


def class_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, float64."""
    return softmax(np.asarray(logits, dtype=np.float64), axis=1)      # (N, C)


def _split_score(probs: np.ndarray) -> float:
    marginal = probs.mean(axis=0, keepdims=True)                       # (1, C)
    # rel_entr gives p log(p/q) with 0 log 0 = 0, so one-hot predictions are exact.
    kl = rel_entr(probs, marginal).sum(axis=1)                         # (n,)
    return float(np.exp(kl.mean()))


def inception_score(logits: np.ndarray | None = None, *, probs: np.ndarray | None = None,
                    splits: int = 10, protocol: dict | None = None) -> dict:
    """Inception Score from logits (N, C) or probabilities (N, C)."""
    if (logits is None) == (probs is None):
        raise GankitError("inception_score needs exactly one of logits or probs")
    check_finite("Inception Score " + ("logits" if probs is None else "probabilities"),
                 logits if probs is None else probs)
    p = np.asarray(probs, dtype=np.float64) if probs is not None else class_probabilities(logits)
    if p.ndim != 2 or len(p) < splits:
        raise GankitError(f"Inception Score needs (N, C) predictions with N >= splits={splits}, "
                          f"got {p.shape}")
    n = len(p)
    # Chunk boundaries i*N//splits, as in the original OpenAI implementation.
    scores = [_split_score(p[i * n // splits:(i + 1) * n // splits]) for i in range(splits)]
    result = check_values("is", {"is_mean": float(np.mean(scores)),
                                 "is_std": float(np.std(scores))})
    return {**result,
            "protocol": {**(protocol or {}), "metric": "inception_score", "splits": splits,
                         "n_generated": int(len(p))}}
