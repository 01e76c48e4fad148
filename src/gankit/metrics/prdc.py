"""k-NN manifold metrics on features.

* Precision / recall (Kynkäänniemi et al. 2019, k=3): each set's manifold is the union of balls
  around its samples with radius = distance to the sample's k-th nearest neighbour (itself
  excluded). Precision = share of generated samples inside the real manifold; recall = share of
  real samples inside the generated manifold.
* Density / coverage (Naeem et al. 2020, k=5 by default): density = (1/kM) sum over generated
  samples of the number of real balls containing them; coverage = share of real samples whose
  ball contains at least one generated sample.

"Inside" is ``distance <= radius`` (Kynkäänniemi's convention; it keeps exact duplicates, e.g.
of discrete data, inside their own manifold). Distances are computed in chunks with
``torch.cdist`` in float64, so memory stays at ``chunk x N``.
"""

from __future__ import annotations

import numpy as np
import torch

from gankit.errors import GankitError
from gankit.metrics.finite import check_finite

DEFAULT_CHUNK = 1024


def _as_tensor(features: np.ndarray, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(features, dtype=np.float64))
    if t.ndim != 2:
        raise GankitError(f"{name} features must be (N, D), got {tuple(t.shape)}")
    check_finite(f"{name} features", t)
    return t


def _chunks(n: int, chunk: int):
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def knn_radii(features: torch.Tensor, k: int, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Distance of each sample to its k-th nearest neighbour in the same set, self excluded."""
    n = features.shape[0]
    if n <= k:
        raise GankitError(f"need more than k={k} samples for k-NN radii, got {n}")
    radii = torch.empty(n, dtype=features.dtype)
    for rows in _chunks(n, chunk):
        d = torch.cdist(features[rows], features)                      # (c, N)
        # The k+1 smallest include the sample itself at distance 0.
        radii[rows] = d.topk(k + 1, dim=1, largest=False).values[:, k]
    return radii                                                       # (N,)


def _ball_counts(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
                 chunk: int) -> torch.Tensor:
    """For each query, how many balls (centres, radii) contain it."""
    counts = torch.empty(queries.shape[0], dtype=torch.int64)
    for rows in _chunks(queries.shape[0], chunk):
        inside = torch.cdist(queries[rows], centres) <= radii[None, :]  # (c, Ncentres)
        counts[rows] = inside.sum(dim=1)
    return counts


def _covered(centres: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor,
             chunk: int) -> torch.Tensor:
    """For each ball, whether at least one query falls inside it."""
    covered = torch.empty(centres.shape[0], dtype=torch.bool)
    for rows in _chunks(centres.shape[0], chunk):
        nearest = torch.cdist(centres[rows], queries).min(dim=1).values  # (c,)
        covered[rows] = nearest <= radii[rows]
    return covered


def _protocol(protocol, metric, real, generated, **extra) -> dict:
    return {**(protocol or {}), "metric": metric, **extra,
            "n_real": int(real.shape[0]), "n_generated": int(generated.shape[0])}


def precision_recall(real: np.ndarray, generated: np.ndarray, *, k: int = 3,
                     chunk: int = DEFAULT_CHUNK, protocol: dict | None = None) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019)."""
    x, y = _as_tensor(real, "real"), _as_tensor(generated, "generated")
    precision = (_ball_counts(y, x, knn_radii(x, k, chunk), chunk) > 0).double().mean()
    recall = (_ball_counts(x, y, knn_radii(y, k, chunk), chunk) > 0).double().mean()
    return {"precision": float(precision), "recall": float(recall),
            "protocol": _protocol(protocol, "precision_recall", x, y, k=k)}


def density_coverage(real: np.ndarray, generated: np.ndarray, *, k: int = 5,
                     chunk: int = DEFAULT_CHUNK, protocol: dict | None = None) -> dict:
    """Density and coverage (Naeem et al. 2020); both use only the real k-NN balls."""
    x, y = _as_tensor(real, "real"), _as_tensor(generated, "generated")
    radii = knn_radii(x, k, chunk)
    density = _ball_counts(y, x, radii, chunk).double().sum() / (k * y.shape[0])
    coverage = _covered(x, radii, y, chunk).double().mean()
    return {"density": float(density), "coverage": float(coverage),
            "protocol": _protocol(protocol, "density_coverage", x, y, k=k)}


def prdc(real: np.ndarray, generated: np.ndarray, *, pr_k: int = 3, dc_k: int = 5,
         chunk: int = DEFAULT_CHUNK, protocol: dict | None = None) -> dict:
    """Precision, recall, density and coverage in one result dict."""
    pr = precision_recall(real, generated, k=pr_k, chunk=chunk)
    dc = density_coverage(real, generated, k=dc_k, chunk=chunk)
    x, y = np.shape(real), np.shape(generated)
    return {"precision": pr["precision"], "recall": pr["recall"],
            "density": dc["density"], "coverage": dc["coverage"],
            "protocol": {**(protocol or {}), "metric": "prdc", "pr_k": pr_k, "dc_k": dc_k,
                         "n_real": int(x[0]), "n_generated": int(y[0])}}
