"""What the ``gankit fid`` and ``gankit eval`` commands call.

Every result is a JSON-able dict with the metric values and a ``protocol`` that says how they
were measured (feature network, weights SHA-256, resize mode, sample counts, reference split),
so two numbers can be checked for comparability before they are compared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from gankit.errors import GankitError
from gankit.eval import features as feat
from gankit.eval.features import Features
from gankit.eval.inception import InceptionFeatures, load_inception, resolve_weights, sha256_file
from gankit.eval.metrics import BY_PART
from gankit.metrics import fid as fidmath
from gankit.outputs import check_writable, refuse_overlap

# Protocol entries that must agree for two statistics to be comparable.
COMPARABLE_KEYS = ("feature_network", "feature_layer", "weights_sha256", "resize")
ALL_METRICS = tuple(BY_PART)                     # fid, is, kid, prdc

_EXTRACTORS: dict[tuple, InceptionFeatures] = {}


def get_extractor(weights: str | os.PathLike | None = None, *, resize: str = "pytorch-fid",
                  device: str = "cpu", fast: bool = True) -> InceptionFeatures:
    """The Inception feature extractor, loaded once per process per (weights *content*,
    resize, device): a weights file replaced in place is loaded again."""
    path = resolve_weights(weights)
    sha = sha256_file(path)                    # ~0.1 s for the 95 MB file
    key = (sha, resize, str(device), fast)
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = load_inception(path, resize=resize, device=device, fast=fast,
                                          sha256=sha)
    return _EXTRACTORS[key]


# ----------------------------------------------------------------------------- FID between paths


def _is_stats_file(p: Path) -> bool:
    return p.suffix == ".npz"


def _progress_bar(enabled: bool, folder: Path):
    """A callback advancing a tqdm bar by the number of images done (None when disabled)."""
    if not enabled:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=len(feat.list_images(folder)), desc=folder.name, unit="img")
    return bar, bar.update


def _check_side(path: Path) -> None:
    """GankitError (one line) unless ``path`` is a folder holding images or an existing
    ``.npz`` (its contents are read later, by ``fidmath.load_stats``)."""
    if _is_stats_file(path):
        if not path.is_file():
            raise GankitError(f"statistics file not found: {path}")
        return
    if not path.is_dir():
        raise GankitError(f"not an image folder or .npz statistics file: {path}")
    feat.list_images(path)                # GankitError for a folder without images


def _side(path: Path, extractor: Callable[[], InceptionFeatures], batch_size: int,
          use_cache: bool, progress: bool = False):
    """(mu, sigma, n or None, protocol) of a folder or a .npz statistics file, which
    ``_check_side`` has accepted."""
    if _is_stats_file(path):
        mu, sigma, info = fidmath.load_stats(path)
        return mu, sigma, info.get("n"), {**info.get("protocol", {}), "source": str(path)}
    bar, update = _progress_bar(progress, path)
    try:
        return feat.folder_statistics(path, extractor(), batch_size=batch_size,
                                      use_cache=use_cache, progress=update)
    finally:
        if bar is not None:
            bar.close()


def _merge_protocols(pa: dict, pb: dict) -> dict:
    merged = {}
    for key in COMPARABLE_KEYS:
        va, vb = pa.get(key), pb.get(key)
        if va is not None and vb is not None and va != vb:
            raise GankitError(f"statistics are not comparable: {key} differs ({va} vs {vb})")
        merged[key] = va if va is not None else (vb if vb is not None else "unknown")
    return merged


def fid_between(a: str | os.PathLike, b: str | os.PathLike, *,
                weights: str | os.PathLike | None = None,
                save_stats: str | os.PathLike | None = None, resize: str = "pytorch-fid",
                batch_size: int = 50, device: str = "cpu", use_cache: bool = True,
                reference_split: str | None = None, fid_method: str = "sqrtm",
                progress: bool = False) -> dict:
    """FID between ``a`` (reference/real) and ``b`` (generated), each an image folder or an
    ``.npz`` with ``mu``/``sigma``. ``save_stats`` writes the statistics of ``a`` (a folder).

    Returns ``{"fid": float, "protocol": {...}}``. ``fid_method="svd"`` gives the same value
    in seconds instead of the 20-90 s of pytorch-fid's ``sqrtm`` (see gankit.metrics.fid).
    Raises GankitError for unusable paths, incomparable protocols, and (NonFiniteError)
    statistics holding NaN or infinite values, naming the path.
    """
    a, b = Path(a), Path(b)
    if save_stats is not None and _is_stats_file(a):
        raise GankitError("--save-stats (save_stats) needs an image folder as the first path, "
                          "not a .npz")
    if save_stats is not None:
        refuse_overlap(Path(save_stats), {"A": a, "B": b}, "--save-stats")
        check_writable(Path(save_stats), "--save-stats")
    if batch_size < 1:
        raise GankitError(f"batch size must be positive, got {batch_size}")
    for path in (a, b):                   # a wrong path is named before the weights are read
        _check_side(path)
    lazy = lambda: get_extractor(weights, resize=resize, device=device)  # noqa: E731
    mu_a, sig_a, n_a, prot_a = _side(a, lazy, batch_size, use_cache, progress)
    mu_b, sig_b, n_b, prot_b = _side(b, lazy, batch_size, use_cache, progress)
    protocol = _merge_protocols(prot_a, prot_b)
    if save_stats is not None:
        fidmath.save_stats(save_stats, mu_a, sig_a, n=n_a,
                           protocol={**protocol, "reference_split": reference_split})
    known = [n for n in (n_a, n_b) if n is not None]
    if known:
        fidmath.warn_if_few_samples(min(known))
    split = reference_split or prot_a.get("reference_split")
    value = fidmath.frechet_distance(mu_a, sig_a, mu_b, sig_b, method=fid_method,
                                     names=(str(a), str(b)))
    return {"fid": value,
            "protocol": {"metric": "fid", "fid_method": fid_method, **protocol, "n_real": n_a,
                         "n_generated": n_b, "reference_split": split, "real": str(a),
                         "generated": str(b)}}


# ----------------------------------------------------------------------------- features


def folder_features(folder: str | os.PathLike, *, weights: str | os.PathLike | None = None,
                    resize: str = "pytorch-fid", batch_size: int = 50, device: str = "cpu",
                    use_cache: bool = True) -> Features:
    """pool3 features and logits of an image folder (cached)."""
    extractor = get_extractor(weights, resize=resize, device=device)
    return feat.folder_features(folder, extractor, batch_size=batch_size, use_cache=use_cache)


def feature_stats_for_generator(sample_fn: Callable[[int], torch.Tensor], n: int, *,
                                weights: str | os.PathLike | None = None,
                                resize: str = "pytorch-fid", batch_size: int = 50,
                                device: str = "cpu",
                                extractor: InceptionFeatures | None = None) -> Features:
    """Sample ``n`` images in memory (``sample_fn(b)`` -> (b, C, H, W) in [-1, 1]) batch by
    batch, quantize to uint8 as a PNG save would, and return their features."""
    if n < 1:
        raise GankitError(f"number of samples must be positive, got {n}")
    extractor = extractor or get_extractor(weights, resize=resize, device=device)
    return feat.generator_features(sample_fn, n, extractor, batch_size=batch_size)


def slices_of(images: torch.Tensor) -> Callable[[int], torch.Tensor]:
    """A ``sample_fn(k)`` for :func:`feature_stats_for_generator` that hands out consecutive
    slices of a fixed set of images (N, C, H, W) in [-1, 1], e.g. real data samples."""
    pos = 0

    def take(k: int) -> torch.Tensor:
        nonlocal pos
        pos += k
        return images[pos - k:pos]
    return take


def evaluate_features(real: Features, generated: Features, *,
                      metrics: Sequence[str] = ALL_METRICS, reference_split: str | None = None,
                      kid_subsets: int = 100, kid_subset_size: int = 1000,
                      fid_method: str = "sqrtm", is_splits: int = 10) -> dict:
    """Several metrics at once: ``{"fid": ..., "is_mean": ..., "kid_mean": ..., "precision":
    ..., "protocol": {...}, "details": {metric: its own protocol}}``. ``metrics`` from
    ``ALL_METRICS``; GankitError for others. The same computations as the registered metrics
    (``gankit.eval.metrics``)."""
    unknown = set(metrics) - set(ALL_METRICS)
    if unknown:
        raise GankitError(f"unknown metric(s) {sorted(unknown)}; choose from {list(ALL_METRICS)}")
    settings = {"fid": {"fid_method": fid_method}, "is": {"splits": is_splits},
                "kid": {"subsets": kid_subsets, "subset_size": kid_subset_size}, "prdc": {}}
    base = {"metric": list(metrics), **_merge_protocols(real.protocol, generated.protocol),
            "n_real": len(real), "n_generated": len(generated),
            "reference_split": reference_split}
    out: dict = {}
    details: dict = {}
    for name in (m for m in ALL_METRICS if m in metrics):      # a fixed order of keys
        values, details[name] = BY_PART[name].from_features(real, generated, **settings[name])
        out |= values
    return {**out, "protocol": base, "details": details}
