"""Issue 13's remaining figures and listings: class labels on conditional sample grids (during
training and from `gankit sample`), the 1-D strip over training (snapshots that survive a
resume), and the measured one-core run time of every preset in `gankit list`."""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from cli_runner import run_cli
from gankit import api
from gankit.config import PRESET_DIR, build_config, list_presets
from gankit.plots.common import upscale_for
from gankit.plots.images import (HEADER, MIN_CELL, PAD, ROW_LABELS_KEY, ImageView, by_class,
                                 class_label)
from gankit.plots.toy import SNAPSHOTS, Gaussian1DView, strip_steps

QUIET = ["log.progress=false", "train.threads=1", "log.figures=false"]   # figures: where tested
TINY_CGAN = ["model.ngf=4", "model.ndf=4", "model.z_dim=8", "train.batch_size=8",
             "train.steps=2", "log.sample_at=[1]"]


# ---------------------------------------------------------------- labels on conditional grids
def test_by_class_groups_each_class_on_its_own_labelled_rows():
    x = torch.linspace(-0.9, 0.9, 7).view(7, 1, 1, 1).expand(7, 1, 4, 4)
    labels = torch.tensor([2, 0, 2, 1, 2, 2, 0])
    cells, ncol, rows = by_class(x, labels, max_cols=3)
    assert ncol == 3
    assert rows == ["y=0", "y=1", "y=2", ""]              # class 2's 4 images wrap onto 2 rows
    assert cells.shape == (4 * 3, 1, 4, 4)
    firsts = cells[:, 0, 0, 0]
    assert torch.equal(firsts[:3], torch.stack([x[1, 0, 0, 0], x[6, 0, 0, 0], torch.tensor(1.0)]))
    assert torch.equal(firsts[3:6], torch.stack([x[3, 0, 0, 0], torch.tensor(1.0),
                                                 torch.tensor(1.0)]))   # white fillers
    assert torch.equal(firsts[6:10], x[[0, 2, 4, 5], 0, 0, 0])
    with pytest.raises(ValueError):
        by_class(x, labels[:3])


def test_class_labels_use_declared_names():
    assert class_label(3, tuple(str(d) for d in range(10))) == "y=3"
    assert class_label(1, ("T-shirt/top", "Trouser")) == "y=1 Trouser"
    assert class_label(4) == "y=4"


def _row_labels(path) -> tuple[list[str], Image.Image]:
    im = Image.open(path)
    im.load()
    return json.loads(im.text[ROW_LABELS_KEY]), im


def test_saved_grid_draws_the_names_beside_rows_at_48_px(tmp_path):
    names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
             "Sneaker", "Bag", "Ankle boot")
    trainer = SimpleNamespace(c=SimpleNamespace(step=7, images_seen=448),
                              data=SimpleNamespace(info=SimpleNamespace(class_names=names)))
    x = torch.rand(20, 1, 28, 28) * 2 - 1
    path = ImageView().save_samples(x, tmp_path / "g.png", trainer=trainer,
                                    labels=torch.arange(20) % 10)
    rows, im = _row_labels(path)
    assert rows == [f"y={k} {n}" for k, n in enumerate(names)]
    scale = upscale_for(28, MIN_CELL)
    assert 28 * scale >= 48
    assert im.height == HEADER + scale * (10 * (28 + PAD) + PAD)       # one row per class
    grid_w = scale * (2 * (28 + PAD) + PAD)
    margin = np.asarray(im.convert("L"))[HEADER:, :im.width - grid_w]
    assert margin.shape[1] > 40 and margin.min() < 100                  # text in the margin
    for r in range(10):                                                 # beside every row
        y0 = scale * (PAD + r * (28 + PAD))
        assert margin[y0:y0 + 28 * scale].min() < 100, r
    path = ImageView().save_samples(x[:5], tmp_path / "one.png", trainer=trainer, labels=3)
    assert _row_labels(path)[0] == ["y=3 Dress"]


def test_training_grids_and_gankit_sample_label_the_classes(tmp_path, data_root):
    cfg = build_config("cgan-mnist", QUIET + TINY_CGAN)
    run = api.train(cfg, tmp_path / "run")
    fixed_y = api.load_trainer(run.path)[1].fixed_inputs["y"]
    for step in (1, 2):
        rows, im = _row_labels(run.path / "samples" / f"step-{step:08d}.png")
        assert [r for r in rows if r] == [f"y={k}" for k in sorted(set(fixed_y.tolist()))]
        assert im.height == HEADER + 2 * (len(rows) * (28 + PAD) + PAD)   # 56 px per image
    code, out, err = run_cli(["sample", str(run.path), "--n", "20", "--out",
                              str(tmp_path / "s.png")])
    assert code == 0, err
    assert "wrote 20 samples" in out
    assert _row_labels(tmp_path / "s.png")[0] == [f"y={k}" for k in range(10)]
    code, _, err = run_cli(["sample", str(run.path), "--n", "12", "--label", "3", "--out",
                            str(tmp_path / "three.png")])
    assert code == 0, err
    assert _row_labels(tmp_path / "three.png")[0] == ["y=3", ""]        # 10 + 2 images
    code, _, _ = run_cli(["sample", str(run.path), "--n", "20", "--out", str(tmp_path / "s.npy")])
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (20, 1, 28, 28)


# ---------------------------------------------------------------- the 1-D strip
def test_strip_steps_are_one_the_powers_of_ten_and_the_last():
    assert strip_steps([1, 60, 100, 120], 120) == [1, 100, 120]
    assert strip_steps([1, 100, 1000, 2000, 3000], 3000) == [1, 100, 1000, 3000]
    assert strip_steps([1, 10, 100, 200], 150) == [1, 10, 100]      # 200: not reached yet
    assert strip_steps([100, 100], 100) == [100]
    assert strip_steps([], 5) == []


def test_strip_has_steps_1_100_and_the_last_across_a_resume(tmp_path):
    import matplotlib.pyplot as plt

    cfg = build_config("gaussian1d", QUIET + ["train.steps=120"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # no numpy warnings either
        api.train(cfg, tmp_path / "run", until=60)           # stops at 60, as a crash would
        api.resume(tmp_path / "run", overrides=["log.figures=true"])
    snaps = tmp_path / "run" / SNAPSHOTS
    assert sorted(p.name for p in snaps.glob("*.npz")) == [
        f"step-{s:08d}.npz" for s in (1, 60, 100, 120)]
    for p in snaps.glob("*.npz"):
        with np.load(p, allow_pickle=False) as z:            # plain arrays, no pickle
            assert {"step", "d_xs", "d_pdf", "d_dens", "d_d", "m_gz", "m_target"} <= set(z.files)
        assert p.stat().st_size < 100_000
    assert (tmp_path / "run" / "plots" / "strip.png").is_file()
    _, trainer, _ = api.load_trainer(tmp_path / "run")
    fig = Gaussian1DView().strip_figure(trainer, snaps)
    top = [a for a in fig.axes if a.get_title().startswith("step") and ":" not in a.get_title()]
    assert [a.get_title() for a in top] == ["step 1", "step 100", "step 120"]
    bottom = [a for a in fig.axes if "G(z) vs F^-1" in a.get_title()]
    assert len(bottom) == 3 and all(a.get_xlabel() and a.get_ylabel() for a in top + bottom)
    with np.load(snaps / "step-00000001.npz", allow_pickle=False) as z:
        lo, hi = top[0].get_xlim()                           # every histogram bin in view
        assert lo <= z["d_edges"].min() and z["d_edges"].max() <= hi
    assert fig.legends and len(fig.legends[0].get_texts()) >= 5
    plt.close(fig)


# ---------------------------------------------------------------- run times in `gankit list`
def test_every_preset_has_a_measured_run_time_and_list_prints_it():
    table = json.loads((PRESET_DIR / "runtimes.json").read_text())
    assert "benchmarks/preset_times.py" in table["about"]
    entries = table["presets"]
    for name in list_presets():
        e = entries.get(name)
        assert e is not None, f"{name}: run benchmarks/preset_times.py --presets {name}"
        assert e["cpu_seconds_per_step"] > 0 and e["timed_steps"] >= 5
        assert math.isclose(e["minutes"], e["steps"] * e["cpu_seconds_per_step"] / 60,
                            rel_tol=0.02, abs_tol=0.02)
        assert e["data"] in ("real", "stand-in") and e["date"] and "load_1min" in e
    code, out, _ = run_cli(["list"])
    assert code == 0
    lines = {line.split()[0]: line for line in out.split("objectives:")[0].splitlines()
             if line.startswith("  ")}
    for name in list_presets():
        assert " on one core (measured" in lines[name], lines[name]
        sha = hashlib.sha256((PRESET_DIR / f"{name}.yaml").read_bytes()).hexdigest()
        assert ("changed since" in lines[name]) == (entries[name]["preset_sha256"] != sha)


def test_list_says_when_a_preset_was_not_measured():
    from gankit.cli import _runtime_text
    assert _runtime_text("ring", {}) == "run time not measured"
    text = _runtime_text("ring", {"ring": {"cpu_seconds_per_step": 0.12}})
    steps = build_config("ring").train.steps
    assert text == f"~{steps * 0.12 / 60:.0f} min on one core (measured)"


# ---------------------------------------------------------------- audit: defects of issue 13
# Tests for the defects listed in issue 13 that no other test covered (the report maps every
# defect to its test).
def _capture_figures(monkeypatch) -> list:
    """Figures saved from now on (their artists stay inspectable after the file is written)."""
    import matplotlib.pyplot as plt
    created: list = []
    real_save = plt.Figure.savefig

    def keep(fig, *a, **k):
        created.append(fig)
        return real_save(fig, *a, **k)
    monkeypatch.setattr(plt.Figure, "savefig", keep)
    return created


def test_1d_sample_pictures_honour_n_and_seed(tmp_path):
    """`gankit sample RUN --n 50` and `--n 1000` drew the same 5,000 samples (seed 12345)."""
    run = api.train(build_config("gaussian1d", QUIET + ["train.steps=3", "log.sample_at=[1]"]),
                    tmp_path / "run").path
    made = {}
    for n, seed in ((50, 0), (1000, 0), (1000, 1)):
        out = tmp_path / f"s{n}-{seed}.png"
        code, text, err = run_cli(["sample", str(run), "--n", str(n), "--seed", str(seed),
                                   "--out", str(out)])
        assert code == 0 and f"wrote {n} samples" in text, err
        made[n, seed] = out.read_bytes()
    assert len(set(made.values())) == 3
    _, trainer, _ = api.load_trainer(run)
    for n, seed in ((50, 0), (1000, 3)):
        x = trainer.sample(n, seed=seed)
        fig, drawn = Gaussian1DView().sample_figure(trainer, x)
        assert all(np.isin(x.numpy().ravel(), drawn))              # the n asked are drawn
        labels = fig.axes[0].get_legend().get_texts()
        expected = f"{n} samples" if n < 1000 else f"p_g: {n:,} samples"
        assert any(t.get_text().startswith(expected) for t in labels), expected
        import matplotlib.pyplot as plt
        plt.close(fig)


def test_eval_seed_reaches_the_mnist_metric(tmp_path, data_root):
    """`gankit eval --seed` was ignored by the mnist metric."""
    cfg = build_config("dcgan-mnist", QUIET + ["model.ngf=4", "model.ndf=4", "train.steps=1",
                                               "train.batch_size=8", "log.sample_at=[1]"])
    run = api.train(cfg, tmp_path / "run").path
    a = api.evaluate(run, ["mnist"], n=64, seed=1)
    b = api.evaluate(run, ["mnist"], n=64, seed=2)
    again = api.evaluate(run, ["mnist"], n=64, seed=1)
    assert a["protocol"]["mnist"]["seed_generated"] == 1
    assert b["protocol"]["mnist"]["seed_generated"] == 2
    assert a["cfd_mnist"] != b["cfd_mnist"] and a["cfd_mnist"] == again["cfd_mnist"]


def test_terminal_progress_bar_shows_the_losses(tmp_path, monkeypatch):
    """In a terminal the tqdm bar showed no losses."""
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    api.train(build_config("ring", ["train.steps=40", "log.every=10", "train.threads=1",
                                    "model.g_hidden=16", "model.d_hidden=16"]), tmp_path / "r")
    shown = term.getvalue()
    assert "40/40" in shown and "loss/D" in shown and "loss/G" in shown


def test_summary_is_rounded_names_the_figures_and_keeps_the_json(tmp_path):
    """The end of a run was a raw JSON line with 17 significant digits and no figure list."""
    import re
    out = tmp_path / "r"
    code, text, err = run_cli(["train", "ring", "--steps", "20", "--out", str(out), "--set",
                               "log.every=10", "--set", "train.threads=1", "--set",
                               "log.progress=false"])
    assert code == 0, err
    tail = text[text.index("finished step 20"):]
    numbers = re.findall(r"-?\d+\.\d+(?:e-?\d+)?", tail.split("figures in")[0])
    assert numbers and all(len(re.sub(r"\D", "", v.split("e")[0]).lstrip("0")) <= 4
                           for v in numbers), tail
    assert "figures in" in tail and "ring_samples.png" in tail and "losses.png" in tail
    assert not tail.lstrip().startswith("{")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 20 and any(isinstance(r.get("loss/D"), float) for r in rows)


def test_critic_map_fills_its_axes_and_the_field_is_labelled(tmp_path, monkeypatch):
    """The grid's heat map filled only the middle of its axes; the gradient-field dots (and
    arrows) were unlabelled."""
    from gankit.plots.toy import Toy2DView
    from gankit.train.trainer import Trainer

    trainer = Trainer(build_config("grid", QUIET + ["train.steps=1"]), None)
    created = _capture_figures(monkeypatch)
    Toy2DView()._critic_and_field(trainer, tmp_path, [])
    heat, field = [a for a in created[0].axes if a.get_title()][:2]
    (image,) = heat.get_images()
    x0, x1, y0, y1 = image.get_extent()
    assert (x0, x1) == pytest.approx(heat.get_xlim()) and (y0, y1) == pytest.approx(heat.get_ylim())
    assert "generated" in [t.get_text() for t in heat.get_legend().get_texts()]
    labels = [t.get_text() for t in field.get_legend().get_texts()]
    assert "data" in labels and any(t.startswith("-grad L_G") for t in labels)


def test_w1_estimate_sits_on_its_own_panel(tmp_path, monkeypatch):
    """The critic's W1 estimate sat under 'discriminator scores'."""
    from gankit.plots.common import TITLES, curves
    rows = [{"step": s, "loss/D": -1.0 * s, "loss/G": 2.0, "D(x)": 3.0, "D(G(z))": -2.0,
             "W1_estimate": 5.0 / s} for s in (10, 20)]
    created = _capture_figures(monkeypatch)
    curves(rows, tmp_path / "losses.png")
    panels = {a.get_title(): a for a in created[0].axes if a.get_visible()}
    assert TITLES["W1_estimate"] in panels
    scores = panels["discriminator outputs"]
    assert "W1_estimate" not in [t.get_text() for t in scores.get_legend().get_texts()]


def test_infogan_checkpoint_holds_weights_adam_moments_and_little_else(tmp_path, data_root):
    """InfoGAN checkpoints were 160 MB each: the paper's networks (two 6.4M-weight fully
    connected layers, ~53 MB in float32) plus Adam's two moments per weight, which an exact
    resume needs; anything beyond that (data order, RNG, fixed noise) must stay small."""
    from safetensors import safe_open

    from gankit.train import checkpoint as ckpt
    cfg = build_config("infogan-mnist", QUIET + ["train.steps=1", "train.batch_size=8",
                                                 "log.sample_at=[1]", "eval.metrics=[]",
                                                 "eval.best_metric=null"])
    run = api.train(cfg, tmp_path / "run")
    _, trainer, _ = api.load_trainer(run.path)
    weights = sum(p.numel() * p.element_size() for p in trainer.nets.parameters())
    buffers = sum(b.numel() * b.element_size() for b in trainer.nets.buffers())
    (path,) = ckpt.list_checkpoints(run.path / "checkpoints")
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
    assert not [k for k in keys if "ema" in k.split(".")[0]]          # no EMA copy kept
    rest = path.stat().st_size - 3 * weights - buffers                # weights + 2 moments
    assert 0 <= rest < 2_000_000, (path.stat().st_size, weights)
