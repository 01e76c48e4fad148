"""Shared plotting plumbing (matplotlib, headless)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from gankit.core import capabilities as caps  # noqa: E402
from gankit.log import note  # noqa: E402

# Tests set this so that a figure that fails raises instead of being skipped with a note.
STRICT_ENV = "GANKIT_STRICT_FIGURES"


@dataclass(frozen=True)
class Figure:
    """One optional figure of a view: drawn when the model offers what it ``needs``.

    ``draw(trainer, folder, rows) -> Path | list[Path] | None`` (None: nothing to draw)."""

    name: str
    draw: Callable[..., "Path | list[Path] | None"]
    needs: frozenset[str] = frozenset({caps.SAMPLES})


def draw_figures(figures: list[Figure], trainer, folder: Path, rows: list[dict]) -> list[Path]:
    """Draw every figure the model's capabilities allow; the others are skipped with one
    note each. A figure that fails is reported in one line and the rest are still drawn,
    so a finished run never ends in a traceback (``GANKIT_STRICT_FIGURES=1``: raise)."""
    offered = trainer.objective.offers
    out: list[Path] = []
    for fig in figures:
        reason = caps.missing_message(fig.needs, offered)
        if reason:
            note(f"skipped figure {fig.name}: {reason}")
            continue
        try:
            made = fig.draw(trainer, Path(folder), rows)
        except Exception as e:           # noqa: BLE001 - a picture must not lose a finished run
            if os.environ.get(STRICT_ENV):
                raise
            plt.close("all")
            note(f"figure {fig.name} failed ({type(e).__name__}: {' '.join(str(e).split())[:200]})")
            continue
        out += [p for p in (made if isinstance(made, list) else [made]) if p]
    return out


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
