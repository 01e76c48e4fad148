"""Scores against a known truth: AUROC, AUPRC, a histogram and sheets of extreme images.

The areas are scikit-learn's (``roc_auc_score``; ``average_precision_score``, the step-wise
area under the precision-recall curve without interpolation): a well-kept, widely checked
implementation of the ties and edge cases, rather than our own. The positive class is
"anomalous" and higher scores mean more anomalous, so AUROC is the probability that a random
anomaly scores above a random normal image (0.5: chance; below 0.5: the score prefers the
anomalies, as raw likelihoods do in Nalisnick et al. 2019).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gankit.errors import GankitError

SHEET = 64          # images in each sheet of the most / least anomalous


def separation(scores: np.ndarray, anomalous: np.ndarray) -> dict[str, float]:
    """AUROC and AUPRC (average precision) of ``scores`` (n,) (higher = more anomalous)
    against the truth ``anomalous`` (n,) bool, and the counts. GankitError when one class
    is missing (the areas are undefined)."""
    try:
        from sklearn.metrics import average_precision_score, roc_auc_score
    except ImportError:
        raise GankitError("AUROC / AUPRC need scikit-learn: pip install 'gankit[outlier]'") \
            from None
    anomalous = np.asarray(anomalous, bool)
    n_out = int(anomalous.sum())
    if n_out == 0 or n_out == len(anomalous):
        raise GankitError("AUROC needs normal and anomalous images; all "
                          f"{len(anomalous)} are {'anomalous' if n_out else 'normal'}")
    return {"auroc": float(roc_auc_score(anomalous, scores)),
            "auprc": float(average_precision_score(anomalous, scores)),
            "n_normal": len(anomalous) - n_out, "n_anomalous": n_out,
            "auprc_chance": n_out / len(anomalous)}


def histogram(scores: np.ndarray, anomalous: np.ndarray, path: Path, title: str) -> Path:
    """Overlaid histograms (densities) of the normal and the anomalous images' scores."""
    from gankit.plots.common import figure, save

    fig, axes = figure(size=5.0)
    ax = axes[0][0]
    lo, hi = np.percentile(scores, [0.5, 99.5])
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 60)
    for mask, label, color in ((~anomalous, "normal", "tab:blue"),
                               (anomalous, "anomalous", "tab:red")):
        ax.hist(np.clip(scores[mask], lo, hi), bins=bins, density=True, alpha=0.5,
                color=color, label=f"{label} ({int(mask.sum())})")
    ax.set_xlabel("score (higher = more anomalous)")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend()
    return save(fig, path)


def sheets(images: torch.Tensor, scores: np.ndarray, stem: Path) -> list[Path]:
    """The ``SHEET`` most and least anomalous images (uint8 (N, C, H, W)), most extreme
    first, as ``<stem>-most.png`` and ``<stem>-least.png``."""
    from gankit.plots.images import save_grid

    order = np.argsort(-scores, kind="stable")
    k = min(SHEET, len(order))
    out = []
    for which, idx in (("most", order[:k]), ("least", order[::-1][:k])):
        x = images[torch.as_tensor(idx.copy())].float() / 127.5 - 1
        path = stem.with_name(f"{stem.name}-{which}.png")
        out.append(save_grid(x, path, ncol=8, title=f"{which} anomalous first"))
    return out
