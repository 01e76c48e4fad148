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
from gankit.errors import DataUnavailable  # noqa: E402
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
    """Draw every figure the model's capabilities allow; the others never apply to this
    model (style mixing of a VAE, a class grid of an unconditional model) and are left out
    silently. A figure that applies but cannot be drawn is reported in one line each: one
    of real data when the data cannot be read any more (``DataUnavailable``: ``gankit plot``
    needs only the run folder), or one that fails, after which the rest are still drawn, so
    a finished run never ends in a traceback (``GANKIT_STRICT_FIGURES=1``: raise)."""
    offered = trainer.objective.offers
    out: list[Path] = []
    for fig in figures:
        if caps.missing_message(fig.needs, offered):
            continue
        try:
            made = fig.draw(trainer, Path(folder), rows)
        except DataUnavailable as e:     # a figure of real data, which cannot be read now
            note(f"skipped figure {fig.name}: {' '.join(str(e).split())}")
            continue
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


# Readable titles for logged keys (others are shown as they are logged).
TITLES = {"modes": "modes captured", "hq_fraction": "high-quality samples (fraction)",
          "kl": "reverse KL of mode histogram (nats)", "W1_estimate": "critic's W1 estimate",
          "gp": "gradient penalty", "nll": "held-out NLL (nats)",
          "M_global": "M_global (convergence)", "k_t": "k_t (equilibrium control)",
          "L(": "autoencoder L1 error L(.)"}


def upscale_for(side: int, target: int = 48) -> int:
    """The whole-number nearest-neighbour zoom that shows images of ``side`` pixels at
    ``target`` pixels or more (small images stay crisp and visible)."""
    return max(1, -(-target // side))


def series(rows: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) of ``key`` over metrics.jsonl rows (numbers only)."""
    return [(r["step"], r[key]) for r in rows
            if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]


def plot_series(ax, pts: list[tuple[int, float]], label: str | None = None) -> None:
    """A line, with markers when there are few points (one point is still visible)."""
    ax.plot(*zip(*pts), marker="o" if len(pts) < 20 else None, markersize=4, label=label)


def curves(rows: list[dict], path: Path,
           prefixes=("loss/", "D(", "D_", "W1", "L(", "M_global", "k_t")) -> Path | None:
    """Loss and score curves over steps from metrics.jsonl rows: one panel per loss, each on
    its own scale (a weighted generator loss does not flatten the others); the
    discriminator's outputs together (with the D = 1/2 line when they are probabilities);
    the critic's W1 estimate on its own; BEGAN's reconstruction errors L(x), L(G(z))
    together, its M_global and k_t each on its own."""
    keys = sorted({k for r in rows for k in r if k.startswith(prefixes) and series(rows, k)})
    if not keys:
        return None
    panels: list[tuple[str, list[str]]] = [(k, [k]) for k in keys if k.startswith("loss/")]
    scores = [k for k in keys if k.startswith(("D(", "D_"))]
    if scores:
        panels.append(("discriminator outputs", scores))
    if recon := [k for k in keys if k.startswith("L(")]:
        panels.append((TITLES["L("], recon))
    panels += [(TITLES.get(k, k), [k]) for k in keys if k.startswith(("W1", "M_global", "k_t"))]
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, ax = figure(ncols, nrows, 3.2)
    last = max(r["step"] for r in rows)
    for a, (title, ks) in zip(ax.flat, panels):
        for k in ks:
            plot_series(a, series(rows, k), label=k if len(ks) > 1 else None)
        if ks is scores and all(0 <= v <= 1 for k in ks for _, v in series(rows, k)):
            a.axhline(0.5, color="gray", lw=0.8, ls="--", label="D = 1/2")
        if len(ks) > 1 or a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        a.set(title=title, xlabel="generator step")
    for a in ax.flat[len(panels):]:
        a.set_visible(False)
    fig.suptitle(f"training curves up to step {last}")
    return save(fig, path)


def metric_curves(rows: list[dict], keys: list[str], path: Path) -> Path | None:
    """One panel per evaluated metric over steps, titled in words."""
    present = [k for k in keys if series(rows, k)]
    if not present:
        return None
    fig, ax = figure(len(present), 1, 3.5)
    for a, k in zip(ax[0], present):
        plot_series(a, series(rows, k))
        a.set(title=TITLES.get(k, k), xlabel="generator step")
    fig.suptitle(f"evaluations up to step {max(r['step'] for r in rows)}")
    return save(fig, path)
