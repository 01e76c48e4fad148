"""The course-slide 1-D demo: the gaussian1d preset learns N(4, 0.5^2) (slow), and its
figure shows every sample, says what and when in each title, and warns about nothing (fast)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit import api
from gankit.config import build_config
from gankit.plots.toy import Gaussian1DView, x_limits
from gankit.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
QUIET = ["log.progress=false"]


def _benchmark():
    spec = importlib.util.spec_from_file_location("bench_g1d", REPO / "benchmarks" / "gaussian1d.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trainer(*overrides: str) -> Trainer:
    return Trainer(build_config("gaussian1d", QUIET + list(overrides)), None)


def _shift_generator(trainer: Trainer, to: float) -> None:
    """Move G's output far from the data (as an unlucky initialisation would)."""
    last = [m for m in trainer.nets["G"].modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(0.01)
        last.bias.fill_(to)


def test_w1_formula_matches_scipy():
    from scipy import stats
    bench = _benchmark()
    rng = np.random.default_rng(0)
    x = rng.normal(4.2, 0.4, 4000)
    ref = stats.wasserstein_distance(x, rng.normal(4.0, 0.5, 400_000))
    assert abs(bench.w1_to_normal(x, 4.0, 0.5) - ref) < 0.01


@pytest.mark.parametrize("shift", [-40.0, 0.0, 25.0])
def test_step_figure_shows_every_sample_and_titles_the_step(shift):
    trainer = _trainer()
    _shift_generator(trainer, shift)
    trainer.c.step = 1
    x = trainer.generate(trainer.fixed_inputs).float().cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig, drawn = Gaussian1DView().sample_figure(trainer, x)
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert lo <= drawn.min() and drawn.max() <= hi
    assert lo <= x.min().item() and x.max().item() <= hi
    lo_d, hi_d = trainer.data.bounds                    # the data stay in the picture too
    assert lo <= lo_d and hi_d <= hi
    assert "step 1" in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_x_limits_cover_data_and_samples_and_ignore_non_finite():
    trainer = _trainer()
    lo, hi = x_limits(trainer.data, np.array([-7.0, np.nan, np.inf]), np.array([12.0]))
    assert lo < -7.0 and hi > 12.0 and np.isfinite([lo, hi]).all()
    lo, hi = x_limits(trainer.data, np.array([]))
    assert (lo, hi) != (None, None) and lo < trainer.data.bounds[0]


def test_slide_titles_labels_and_no_warnings(tmp_path):
    cfg = build_config("gaussian1d", QUIET + ["train.steps=5", "log.sample_at=[1]",
                                              "log.every=1"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = api.train(cfg, tmp_path / "run")
        view = Gaussian1DView()
        _, trainer, _ = api.load_trainer(tmp_path / "run")
        fig = view.slide_figure(trainer, run.read_metrics())
    panels = [a for a in fig.axes if a.get_title()]
    assert len(panels) >= 3
    for a in panels:
        assert "step" in a.get_title(), a.get_title()
        assert a.get_xlabel() and a.get_ylabel()
    assert "minimax" in fig._suptitle.get_text()
    for a in fig.axes:                           # legends sit outside the axes (below them)
        leg = a.get_legend()
        if leg is not None:
            assert leg.get_bbox_to_anchor().y0 < a.get_window_extent().y0 + 1
    import matplotlib.pyplot as plt
    plt.close(fig)
    assert (tmp_path / "run" / "plots" / "gaussian1d.png").is_file()
    assert (tmp_path / "run" / "samples" / "step-00000001.png").is_file()


def test_figure_without_critic_or_latent_still_draws():
    from gankit.core import capabilities as caps
    trainer = _trainer()
    trainer.objective.offers = frozenset({caps.SAMPLES})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = Gaussian1DView().slide_figure(trainer, [])
    assert len(fig.axes) == 3                    # no twin axis for D
    import matplotlib.pyplot as plt
    plt.close(fig)


@pytest.mark.slow
def test_preset_learns_the_target(tmp_path):
    bench = _benchmark()
    r = bench.run_one(0, tmp_path, [])
    assert r["w1"] <= 0.05, r
    assert abs(r["std"] - 0.5) <= 0.05, r


def test_2d_views_hold_every_point_and_say_when(tmp_path):
    """The 2-D toy figures: axes contain stray points, titles carry step and images seen."""
    import matplotlib.pyplot as plt

    from gankit.plots.toy import Toy2DView
    from gankit.train.trainer import Trainer

    trainer = Trainer(build_config("grid", ["train.steps=1"]), tmp_path)
    x = np.array([[0.0, 0.0], [30.0, -2.0], [1.0, -25.0]])
    fig, ax = plt.subplots()
    Toy2DView()._scatter(ax, trainer, x)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 <= -25 and x1 >= 30 and y0 <= -25 and y1 >= 30
    assert ax.get_legend() is not None and ax.get_legend().get_bbox_to_anchor() is not None
    plt.close(fig)
    path = Toy2DView().save_samples(torch.tensor(x, dtype=torch.float32), tmp_path / "s.png",
                                    trainer=trainer)
    assert path.exists()
