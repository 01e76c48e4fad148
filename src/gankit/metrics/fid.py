"""Fréchet Inception Distance from Gaussian statistics of features.

FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), computed in float64.

``method="sqrtm"`` (default) is pytorch-fid's procedure: ``scipy.linalg.sqrtm`` of the product;
if that is not finite, ``eps`` is added to both diagonals; an imaginary part of the root's
diagonal above 1e-3 is an error, a smaller one is numerical noise and dropped. It costs 20-90 s
for 2048-d statistics on a 2-core CPU.

``method="svd"`` gives the same trace in about a second, more accurately for singular
statistics: factor S = R R^T by pivoted Cholesky (LAPACK ``pstrf``, R of the numerical rank),
then the eigenvalues of S1 S2 are the squared singular values of R1^T R2, so
Tr sqrt(S1 S2) = sum of the singular values of R1^T R2 (its nuclear norm).

Statistics files are ``.npz`` with keys ``mu`` and ``sigma`` (what pytorch-fid reads); gankit
adds ``n`` and ``protocol_json`` (a plain string, so ``allow_pickle=False`` reads everything).
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
from scipy import linalg
from scipy.linalg import lapack

from gankit.errors import GankitError
from gankit.metrics.finite import check_finite, check_values
from gankit.outputs import write_via

MIN_RECOMMENDED_SAMPLES = 2048
IMAG_TOLERANCE = 1e-3
FID_METHODS = ("sqrtm", "svd")


class FIDWarning(UserWarning):
    """FID computed from too few samples to be comparable with published numbers."""


def feature_statistics(features: np.ndarray,
                       what: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, N-1) covariance of features (N, D), in float64. GankitError for
    fewer than 2 vectors; NonFiniteError naming ``what`` when a value is NaN or infinite."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise GankitError(f"need at least 2 feature vectors of shape (N, D), got {feats.shape}")
    check_finite(what, feats)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)            # (D,), (D, D)


def warn_if_few_samples(n: int, what: str = "samples") -> None:
    if n < MIN_RECOMMENDED_SAMPLES:
        # With N < D the covariance is rank deficient and FID is strongly biased upwards.
        warnings.warn(f"FID from only {n} {what} (< {MIN_RECOMMENDED_SAMPLES}): biased and not "
                      "comparable with published values", FIDWarning, stacklevel=3)


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> np.ndarray:
    with warnings.catch_warnings():
        # Singular products are expected with few samples; they are handled just below.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # Singular product: regularise both covariances, as pytorch-fid does.
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAG_TOLERANCE):
            worst = float(np.max(np.abs(covmean.imag)))
            raise GankitError(f"FID matrix square root has a large imaginary part ({worst:.3g}); "
                              "the statistics are degenerate (too few or identical samples?)")
        covmean = covmean.real
    return covmean


def _psd_factor(sigma: np.ndarray) -> np.ndarray:
    """R (D, r) with sigma = R R^T, r the numerical rank (pivoted Cholesky)."""
    if not np.allclose(sigma, sigma.T) or np.any(np.diagonal(sigma) < 0):
        raise GankitError("FID statistics: sigma is not a covariance matrix (not symmetric PSD)")
    # tol=-1: LAPACK's default cutoff, D * eps * max(diag), as for a numerical rank.
    c, piv, rank, _ = lapack.dpstrf(sigma, tol=-1.0, lower=0)
    factor = np.empty((sigma.shape[0], rank))
    factor[piv - 1] = np.triu(c)[:rank].T                             # undo the pivoting
    return factor


def _trace_sqrt_product_svd(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    r1, r2 = _psd_factor(sigma1), _psd_factor(sigma2)                  # (D, r1), (D, r2)
    if r1.shape[1] == 0 or r2.shape[1] == 0:
        return 0.0
    return float(linalg.svdvals(r1.T @ r2).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6, method: str = "sqrtm",
                     names: tuple[str, str] = ("the first", "the second")) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); see the module notes.

    mu (D,), sigma (D, D). Raises GankitError when the shapes disagree, NonFiniteError
    (naming ``names[i]``'s mu or sigma) when an input holds NaN / inf, which would otherwise
    keep ``sqrtm`` busy for many minutes, or when the result is not finite."""
    mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise GankitError(f"FID statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
                          f"sigma {s1.shape} vs {s2.shape}")
    for name, (mu, sigma) in zip(names, ((mu1, s1), (mu2, s2))):
        check_finite(f"FID statistics of {name}: mu", mu)
        check_finite(f"FID statistics of {name}: sigma", sigma)
    diff = mu1 - mu2
    if method == "sqrtm":
        tr_covmean = float(np.trace(_sqrtm_product(s1, s2, eps)))
    elif method == "svd":
        tr_covmean = _trace_sqrt_product_svd(s1, s2)
    else:
        raise GankitError(f"unknown FID method {method!r}; use one of {', '.join(FID_METHODS)}")
    fid = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
    return check_values("fid", {"fid": fid})["fid"]


def fid_from_features(real: np.ndarray, generated: np.ndarray, *, method: str = "sqrtm",
                      protocol: dict | None = None) -> dict:
    """FID between two feature sets (N, D); the result records the protocol used."""
    mu1, s1 = feature_statistics(real, "real features")
    mu2, s2 = feature_statistics(generated, "generated features")
    warn_if_few_samples(min(len(real), len(generated)))
    return {"fid": frechet_distance(mu1, s1, mu2, s2, method=method,
                                    names=("the real features", "the generated features")),
            "protocol": {**(protocol or {}), "metric": "fid", "fid_method": method,
                         "n_real": int(len(real)), "n_generated": int(len(generated))}}


# ----------------------------------------------------------------------------- stats files


def save_stats(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray, *,
               n: int | None = None, protocol: dict | None = None) -> Path:
    """Write ``mu``/``sigma`` (pytorch-fid-readable) plus sample count and protocol."""
    path = Path(path)
    if path.suffix != ".npz":
        raise GankitError(f"statistics files must end in .npz: {path}")
    check_finite(f"statistics to save in {path}: mu", mu)
    check_finite(f"statistics to save in {path}: sigma", sigma)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {}
    if n is not None:
        extra["n"] = np.asarray(int(n), dtype=np.int64)
    if protocol is not None:
        extra["protocol_json"] = np.asarray(json.dumps(protocol, sort_keys=True))
    # all of the file or none of it (gankit.outputs, rule 4)
    write_via(path, lambda tmp: np.savez(tmp, mu=np.asarray(mu, np.float64),
                                         sigma=np.asarray(sigma, np.float64), **extra))
    return path


def load_stats(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read ``(mu, sigma, info)``; ``info`` holds ``n`` and ``protocol`` when recorded."""
    path = Path(path)
    if not path.is_file():
        raise GankitError(f"statistics file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "mu" not in f.files or "sigma" not in f.files:
                raise GankitError(f"{path} has no 'mu' and 'sigma' arrays (keys: {f.files})")
            mu, sigma = f["mu"].astype(np.float64), f["sigma"].astype(np.float64)
            info: dict = {}
            if "n" in f.files:
                info["n"] = int(f["n"])
            if "protocol_json" in f.files:
                info["protocol"] = json.loads(str(f["protocol_json"]))
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise GankitError(f"cannot read statistics file {path}: {e}") from e
    return mu, sigma, info
