"""Memorization check: is each generated sample closer to the training set than to held-out data?

A generator that copies its training data puts samples much nearer to some training image than
to any test image of the same distribution. :func:`nearest_neighbours` returns, for each
generated sample, its nearest training and test samples (Euclidean distance on flattened arrays,
pixels or features); ``ratio = d_train / d_test`` well below 1 for many samples is the warning
sign. :func:`neighbour_grid` lays out generated images next to their nearest training images.
"""

from __future__ import annotations

import numpy as np
import torch

from gankit.errors import GankitError
from gankit.metrics.finite import check_finite

DEFAULT_CHUNK = 512


def _flat(a: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    if t.ndim < 2 or t.shape[0] == 0:
        raise GankitError(f"{name} must be a non-empty batch (N, ...), got {tuple(t.shape)}")
    check_finite(name, t)
    return t.reshape(t.shape[0], -1)                                   # (N, D)


def knn(queries: torch.Tensor, reference: torch.Tensor, k: int = 1,
        chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """k nearest reference rows for every query row: (indices (Q, k), distances (Q, k))."""
    if queries.shape[1] != reference.shape[1]:
        raise GankitError(f"sample sizes differ: {queries.shape[1]} vs {reference.shape[1]} values")
    k = min(k, reference.shape[0])
    idx = np.empty((queries.shape[0], k), dtype=np.int64)
    dist = np.empty((queries.shape[0], k), dtype=np.float64)
    for start in range(0, queries.shape[0], chunk):
        rows = slice(start, start + chunk)
        # Exact Euclidean distances: the mm shortcut loses precision near duplicates, which
        # are exactly the cases this check is about.
        d = torch.cdist(queries[rows], reference,
                        compute_mode="donot_use_mm_for_euclid_dist")   # (c, Nref)
        top = d.topk(k, dim=1, largest=False)
        idx[rows], dist[rows] = top.indices.numpy(), top.values.numpy()
    return idx, dist


def nearest_neighbours(generated, train, test=None, *, k: int = 1,
                       chunk: int = DEFAULT_CHUNK) -> dict:
    """Nearest training (and test) samples of each generated sample.

    Returns ``train_idx``/``train_dist`` (G, k) and, with ``test``, ``test_idx``/``test_dist``
    (G, k) and ``ratio`` (G,) = nearest train distance / nearest test distance.
    """
    g = _flat(generated, "generated")
    out: dict = {}
    out["train_idx"], out["train_dist"] = knn(g, _flat(train, "train"), k, chunk)
    if test is not None:
        out["test_idx"], out["test_dist"] = knn(g, _flat(test, "test"), k, chunk)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["ratio"] = out["train_dist"][:, 0] / out["test_dist"][:, 0]
    out["protocol"] = {"metric": "memorization", "distance": "euclidean (flattened)", "k": k,
                       "n_generated": int(g.shape[0]), "n_train": int(np.shape(train)[0]),
                       "n_test": None if test is None else int(np.shape(test)[0])}
    return out


def _to_hwc_float(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) with C in {1, 3}, or (N, H, W) -> (N, H, W, C) float."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise GankitError(f"images must be (N, C, H, W) with 1 or 3 channels, got {a.shape}")
    return a.transpose(0, 2, 3, 1).astype(np.float64)


def neighbour_grid(generated: np.ndarray, train: np.ndarray, train_idx: np.ndarray, *,
                   pad: int = 2, pad_value: float | None = None) -> np.ndarray:
    """Grid image (rows*H + pads, cols*W + pads, C): each row is one generated image followed by
    its nearest training images (``train_idx`` (G, k) from :func:`nearest_neighbours`).

    Values keep the input scale and dtype; the padding defaults to the images' maximum (white).
    """
    gen, ref = _to_hwc_float(generated), _to_hwc_float(train)
    idx = np.asarray(train_idx).reshape(len(gen), -1)                  # (G, k)
    if gen.shape[1:] != ref.shape[1:]:
        raise GankitError(f"generated and training images differ in shape: "
                          f"{gen.shape[1:]} vs {ref.shape[1:]}")
    _, h, w, c = gen.shape
    rows, cols = len(gen), 1 + idx.shape[1]
    fill = max(gen.max(), ref.max()) if pad_value is None else pad_value
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, dtype=np.float64)
    for r in range(rows):
        tiles = [gen[r]] + [ref[j] for j in idx[r]]
        for col, tile in enumerate(tiles):
            y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
            grid[y0:y0 + h, x0:x0 + w] = tile
    return grid.astype(np.asarray(generated).dtype)
