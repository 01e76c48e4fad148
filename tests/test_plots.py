"""Figure plumbing: the title strip of saved sample grids, and which figures say a word when
they are not drawn."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from gankit.core import capabilities as caps
from gankit.errors import DataUnavailable
from gankit.plots.common import STRICT_ENV, Figure, draw_figures
from gankit.plots.images import HEADER, ImageView


def blank_runs(ink: np.ndarray) -> list[int]:
    """Widths of the runs of columns without ink between the first and last inked column."""
    cols = np.flatnonzero(ink)
    runs, width = [], 0
    for inked in ink[cols[0]:cols[-1] + 1]:
        if not inked:
            width += 1
        elif width:
            runs, width = runs + [width], 0
    return runs


def test_sample_grid_titles_keep_their_word_spaces(tmp_path):
    trainer = SimpleNamespace(c=SimpleNamespace(step=60, images_seen=1920))
    path = ImageView().save_samples(torch.zeros(64, 1, 28, 28), tmp_path / "s.png", trainer)
    header = np.asarray(Image.open(path).convert("L"))[:HEADER]
    gaps = sorted(blank_runs((header < 128).any(0)), reverse=True)
    spaces = "step 60, 1,920 real images seen".count(" ")
    # each space is clearly wider than any gap between two letters of a word ("step60" not)
    assert gaps[spaces - 1] >= gaps[spaces] + 2, gaps
    assert (header[-1] > 250).all()             # the text stays inside its strip


def model(*offers: str):
    return SimpleNamespace(objective=SimpleNamespace(offers=frozenset(offers)),
                           data=SimpleNamespace(info=SimpleNamespace(shape=(1, 28, 28))))


def test_figures_a_model_cannot_have_are_left_out_silently(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(STRICT_ENV, raising=False)
    drawn = []

    def draw(name: str, error: Exception | None = None):
        def fn(trainer, folder, rows):
            drawn.append(name)
            if error:
                raise error
            return Path(folder) / f"{name}.png"
        return Figure(name, fn, frozenset({caps.SAMPLES, caps.STYLES}) if name == "mixing"
                      else frozenset({caps.SAMPLES}))

    figures = [draw("mixing"), draw("grid"), draw("real", DataUnavailable("data moved")),
               draw("broken", RuntimeError("bad"))]
    assert draw_figures(figures, model(caps.SAMPLES), tmp_path, []) == [tmp_path / "grid.png"]
    assert drawn == ["grid", "real", "broken"]
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["gankit: skipped figure real: data moved",
                     "gankit: figure broken failed (RuntimeError: bad)"]


def test_an_image_model_without_styles_labels_or_codes_gets_no_notes(tmp_path, capsys):
    assert ImageView().final_plots(model(), tmp_path, []) == []     # nothing applies
    assert capsys.readouterr().out == ""
