"""The ``image`` view: grids, interpolation maths, and the files a run writes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from gankit import api
from gankit.config import build_config
from gankit.plots import VIEWS
from gankit.plots.images import (HEADER, PAD, ROW_LABELS_KEY, ImageView, lerp, make_grid, slerp,
                                  to_uint8)

from test_conditional import image_folder


def test_registered_for_images():
    assert VIEWS.get("image") is ImageView


def test_to_uint8_and_grid_layout():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3).expand(5, 1, 2, 3)
    u = to_uint8(x)
    assert u.shape == (5, 2, 3, 1) and u[0, 0, :, 0].tolist() == [0, 128, 255]
    grid = make_grid(torch.zeros(5, 3, 4, 4), ncol=3)
    assert grid.shape == (2 * (4 + PAD) + PAD, 3 * (4 + PAD) + PAD, 3)
    assert (grid[PAD:PAD + 4, PAD:PAD + 4] == 128).all()          # first cell
    assert (grid[-PAD - 4:-PAD, -PAD - 4:-PAD] == 255).all()       # empty 6th cell: padding


def test_lerp_and_slerp_closed_forms():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(lerp(a, b, t)[0, 1], torch.tensor([0.5, 0.5]))
    s = slerp(a, b, t)[0]
    assert torch.allclose(s[0], a[0]) and torch.allclose(s[2], b[0], atol=1e-6)
    assert torch.allclose(s[1], torch.tensor([1.0, 1.0]) / math.sqrt(2))   # on the circle
    z = torch.randn(4, 16)
    w = torch.randn(4, 16)
    w = w / w.norm(dim=1, keepdim=True) * z.norm(dim=1, keepdim=True)     # equal norms
    path = slerp(z, w, torch.linspace(0, 1, 7))
    assert torch.allclose(path.norm(dim=2), z.norm(dim=1, keepdim=True).expand(4, 7), rtol=1e-4)
    same = slerp(a, a, t)                                                   # parallel: lerp
    assert torch.isfinite(same).all() and torch.allclose(same[0], a.expand(3, 2))


@pytest.mark.parametrize("objective,expected", [
    ("nonsaturating", set()),
    ("cgan", {"class_grid.png"}),
    ("infogan", {"infogan_c1.png", "infogan_c2.png", "infogan_c3.png"}),
])
def test_a_run_writes_the_pictures(objective, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    folder = image_folder(tmp_path / "images", 28, 1, classes=3)
    cfg = build_config("dcgan-folder", [
        f"data={{name: folder, path: {folder}, size: 28, channels: 1}}",
        f"objective={objective}", "model.ngf=4", "model.ndf=4", "model.z_dim=8",
        "train.steps=3", "train.batch_size=4", "log.progress=false", "log.sample_at=[1, 2]"])
    run = api.train(cfg, tmp_path / "run")
    samples = sorted(p.name for p in (run.path / "samples").glob("*.png"))
    assert samples == ["step-00000001.png", "step-00000002.png", "step-00000003.png"]
    with Image.open(run.path / "samples" / samples[0]) as im:      # 64 fixed samples, 8 x 8,
        side = 2 * (8 * (28 + PAD) + PAD)                          # each zoomed to 56 px,
        if objective == "cgan":         # one row block per class (tests/test_demo_figures.py)
            assert len([t for t in json.loads(im.text[ROW_LABELS_KEY]) if t]) == 3
        else:
            assert im.size == (side, HEADER + side)                # under a title strip
        assert np.asarray(im.convert("L"))[:HEADER].min() < 100    # with text in it
    plots = {p.name for p in (run.path / "plots").glob("*.png")}
    base = {"evolution.png", "losses.png", "interpolation.png", "nearest_training.png"}
    assert plots == base | expected
    for name in plots:
        with Image.open(run.path / "plots" / name) as im:
            assert min(im.size) > 50 and np.asarray(im).std() > 0


def test_curves_read_on_their_own_scales(tmp_path):
    """One panel per loss (a weighted loss does not flatten the others), the D = 1/2 line
    for probabilities, and a single logged point still drawn as a point."""
    from gankit.plots.common import TITLES, curves, metric_curves, upscale_for

    rows = [{"step": 50, "loss/D": 1.3, "loss/G": 900.0, "D(x)": 0.6, "D(G(z))": 0.4,
             "modes": 8, "hq_fraction": 0.9}]
    import matplotlib.pyplot as plt
    created = []
    real_save = plt.Figure.savefig

    def keep(fig, *a, **k):
        created.append(fig)
        return real_save(fig, *a, **k)
    plt.Figure.savefig = keep
    try:
        curves(rows, tmp_path / "losses.png")
        metric_curves(rows, ["modes", "hq_fraction"], tmp_path / "modes.png")
    finally:
        plt.Figure.savefig = real_save
    axes = [a for a in created[0].axes if a.get_visible()]
    assert [a.get_title() for a in axes] == ["loss/D", "loss/G", "discriminator outputs"]
    assert all(line.get_marker() == "o" for a in axes for line in a.lines[:1])
    assert any(line.get_ydata()[0] == 0.5 for line in axes[2].lines)    # the D = 1/2 line
    assert "up to step 50" in created[0]._suptitle.get_text()
    assert [a.get_title() for a in created[1].axes] == [TITLES["modes"], TITLES["hq_fraction"]]
    assert upscale_for(28) * 28 >= 48 and upscale_for(64) == 1


def test_interpolation_labels_are_tenths(tmp_path):
    import inspect
    assert inspect.signature(ImageView.interpolation).parameters["steps"].default == 11
    labels = [f"{v:.1f}" for v in torch.linspace(0, 1, 11).tolist()]
    assert labels == [f"{i / 10:.1f}" for i in range(11)]            # 0.5 included
