"""Shared plotting plumbing (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402


def figure(ncols: int = 1, nrows: int = 1, size: float = 4.0):
    return plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)


def save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def curves(rows: list[dict], path: Path, prefixes=("loss/", "D(x)", "D(G(z))", "W1")) -> Path | None:
    """Loss and score curves over steps from metrics.jsonl rows."""
    keys = sorted({k for r in rows for k in r if k.startswith(prefixes)})
    if not keys:
        return None
    fig, ax = figure(2, 1, 4.5)
    for k in keys:
        pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        if pts:
            target = ax[0, 0] if k.startswith("loss/") else ax[0, 1]
            target.plot(*zip(*pts), label=k)
    ax[0, 0].set(title="losses", xlabel="generator step")
    ax[0, 1].set(title="discriminator scores", xlabel="generator step")
    for a in ax[0]:
        if a.lines:
            a.legend(fontsize=8)
    return save(fig, path)


def metric_curves(rows: list[dict], keys: list[str], path: Path) -> Path | None:
    present = [k for k in keys if any(k in r for r in rows)]
    if not present:
        return None
    fig, ax = figure(len(present), 1, 3.5)
    for a, k in zip(ax[0], present):
        pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        a.plot(*zip(*pts), marker="o")
        a.set(title=k, xlabel="generator step")
    return save(fig, path)
