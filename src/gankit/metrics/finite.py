"""Metric maths sees and gives finite numbers only.

Every metric checks its inputs (features, statistics, samples, logits) and its outputs with
:func:`check_finite` / :func:`check_values` and names the bad one in one line
(:class:`NonFiniteError`, a GankitError: exit 2 from the CLI). This keeps NaN out of the
matrix square root of FID (scipy's ``sqrtm`` of a NaN 2048 x 2048 matrix runs for over 15
minutes) and out of printed results (JSON has no NaN).

Users: FID (both methods; ``frechet_distance``, ``feature_statistics``, the statistics files
of ``gankit fid``), KID, IS, precision / recall / density / coverage, the classifier metrics
(``classify``, the classifier Fréchet distance), the toy mode metrics, nearest neighbours,
and every registered metric's samples and values (``gankit.metrics.protocol``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gankit.errors import GankitError


class NonFiniteError(GankitError):
    """A metric's input or result holds NaN or infinite values."""


def _counts(value: Any) -> tuple[int, int, int]:
    """(NaN count, infinite count, size) of an array, tensor or number."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if not value.is_floating_point() and not value.is_complex():
            return 0, 0, value.numel()
        return int(value.isnan().sum()), int(value.isinf().sum()), value.numel()
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.inexact):
        return 0, 0, arr.size
    return int(np.isnan(arr).sum()), int(np.isinf(arr).sum()), arr.size


def check_finite(what: str, value: Any) -> None:
    """Raise NonFiniteError "<what> is not finite: 3 NaN and 1 infinite of 4,096 values"
    when ``value`` (array, tensor or number) holds NaN or +-inf; integers always pass."""
    nan, inf, size = _counts(value)
    if nan or inf:
        parts = [f"{nan:,} NaN"] * bool(nan) + [f"{inf:,} infinite"] * bool(inf)
        raise NonFiniteError(f"{what} is not finite: {' and '.join(parts)} of {size:,} values")


def check_values(metric: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` unchanged when every float in it is finite; else NonFiniteError naming the
    metric and the key (e.g. "metric 'fid' gave fid = nan")."""
    for key, v in values.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise NonFiniteError(f"metric {metric!r} gave {key} = {v}, not a number it can "
                                 "report")
    return values
