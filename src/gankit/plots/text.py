"""Pictures of text samples: the decoded lines in a monospaced font, and the loss curves.

Text samples (n, seq_len, V) are argmax-decoded with the vocabulary the run keeps
(``gankit.data.text.TextInfo``), so a run folder alone draws them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from gankit.plots.common import Figure, curves, draw_figures, figure, save


class TextView:
    """Samples as lines of text; figures: samples, losses, evaluated text metrics."""

    @staticmethod
    def samples_caption(config: dict[str, Any]) -> str:
        """What the sample pictures show (the report prints it above them)."""
        return ("Generated lines, each the most likely character at every position of G's "
                "softmax (argmax decoding); trailing pad characters removed.")

    @staticmethod
    def to_lines(x: torch.Tensor, trainer) -> list[str]:
        """Samples (n, L, V) -> n lines of text (``gankit sample RUN`` prints them)."""
        return trainer.data.info.to_text(x.cpu())

    def save_samples(self, x: torch.Tensor, path: Path, trainer=None, labels=None) -> Path:
        """Draw the decoded lines of samples x (n, L, V) into the PNG ``path``."""
        lines = self.to_lines(x, trainer)
        return self.draw_lines(lines, path, f"{len(lines)} samples"
                               + (f", step {trainer.c.step}" if hasattr(trainer, "c") else ""))

    @staticmethod
    def draw_lines(lines: list[str], path: Path, title: str) -> Path:
        """One row of monospaced text per line (repr of control characters avoided)."""
        width = max([len(s) for s in lines] + [8])
        fig, ax = figure(1, 1, 1.0)
        fig.set_size_inches(0.11 * width + 0.6, 0.22 * len(lines) + 0.7)
        ax = ax[0, 0]
        ax.axis("off")
        ax.set_xlim(0, 1)
        ax.set_ylim(len(lines), -1)
        for i, line in enumerate(lines):
            # parse_math off: a "$" in a line is a character, not the start of a formula
            ax.text(0.0, i, line, family="monospace", fontsize=9, va="center",
                    parse_math=False)
        ax.set_title(title, fontsize=9, loc="left", parse_math=False)
        # characters the font lacks are drawn as boxes; matplotlib would warn once per glyph
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from")
            return save(fig, path)

    def final_plots(self, trainer, folder: Path, rows: list[dict]) -> list[Path]:
        figures = [
            Figure("samples", lambda t, f, r: self.save_samples(
                t.sample(32, seed=0), f / "samples.png", trainer=t)),
            Figure("losses", lambda t, f, r: curves(r, f / "losses.png"), frozenset()),
        ]
        return draw_figures(figures, trainer, folder, rows)
