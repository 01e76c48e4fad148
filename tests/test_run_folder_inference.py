"""Inference needs only the run folder (issue 20, section 5): ``gankit sample``, ``plot`` and
``eval`` of generated samples (and ``api.sample`` / ``plot`` / ``evaluate``) work after the
training data moved or were deleted, from a copy of the folder elsewhere, and on a CPU for a
run configured for CUDA. Only what needs real data asks for them: FID stops in one line, the
nearest-training-images figure is skipped with a one-line note."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_runner import run_cli
from gankit import api
from gankit.config import build_config
from gankit.train import checkpoint as ckpt
from gankit.train.model import DATA_INFO

FOLDER_RUN = ["data.size=28", "data.channels=1", "data.labels=true", "data.holdout=0.25",
              "objective=cgan", "train.reuse_fakes=false", "train.steps=2",
              "train.batch_size=4", "model.ngf=8", "model.ndf=8", "model.z_dim=8",
              "train.threads=1", "log.progress=false", "log.sample_at=[1]",
              "log.figures=false", "train.channels_last=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished class-conditional run on a two-class image folder (28 px, 2 steps)."""
    root = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (root / "images" / label).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(
                root / "images" / label / f"{i}.png")
    cfg = build_config("dcgan-folder", FOLDER_RUN + [f"data.path={root / 'images'}"])
    api.train(cfg, root / "run")
    return root


@pytest.fixture
def run(trained, tmp_path) -> tuple[Path, Path]:
    """(a copy of the run folder, a copy of its images folder) for one test to change."""
    shutil.copytree(trained / "run", tmp_path / "run")
    shutil.copytree(trained / "images", tmp_path / "images")
    cfg = api.RunDir.open(tmp_path / "run").read_config()
    data = cfg.data.model_copy(update={"path": str(tmp_path / "images")})
    api.RunDir(tmp_path / "run").write_config(cfg.model_copy(update={"data": data}))
    return tmp_path / "run", tmp_path / "images"


@pytest.fixture
def weights(monkeypatch, tmp_path) -> Path:
    """A weights file for the Inception metrics' check, whose features come from the tests'
    cheap stand-in extractor (what is tested here is which metrics read real data)."""
    from conftest import FakeInception
    from gankit.eval import api as eval_api

    monkeypatch.setattr(eval_api, "get_extractor", lambda *a, **k: FakeInception())
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    path.write_bytes(b"stand-in")
    return path


def _ok(args: list[str]) -> str:
    code, out, err = run_cli(args)
    assert code == 0, err
    return out


def _refused(args: list[str], message: str) -> None:
    code, out, err = run_cli(args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, (out, err)


def test_sample_and_plot_after_the_data_folder_is_deleted(run, tmp_path):
    """Before: sample and plot rebuilt the whole trainer, data included, and refused."""
    run, images = run
    before = api.sample(run, n=6, seed=3, label=1)
    shutil.rmtree(images)
    assert torch.equal(api.sample(run, n=6, seed=3, label=1), before)
    _ok(["sample", str(run), "--n", "10", "--out", str(tmp_path / "s.png")])
    _ok(["sample", str(run), "--n", "10", "--out", str(tmp_path / "s.npz"), "--label", "0"])
    assert np.load(tmp_path / "s.npz")["samples"].shape == (10, 1, 28, 28)
    with Image.open(tmp_path / "s.png") as pic:           # one labelled row block per class
        assert json.loads(pic.text["gankit:row_labels"]) == ["y=0 cats", "y=1 dogs"]
    out = _ok(["plot", str(run)])
    drawn = {Path(line).name for line in out.splitlines() if line.endswith(".png")}
    assert {"evolution.png", "losses.png", "interpolation.png", "class_grid.png"} <= drawn
    skipped = [line for line in out.splitlines() if "nearest_training" in line]
    assert len(skipped) == 1 and "needs the run's training data (folder)" in skipped[0]
    assert "nearest_training.png" not in drawn


def test_a_changed_data_folder_does_not_matter(run):
    """A folder that gained files no longer fits the checkpoint's data stream; sampling does
    not read it."""
    run, images = run
    before = api.sample(run, n=4, seed=0)
    Image.new("L", (28, 28), 7).save(images / "cats" / "new.png")
    assert torch.equal(api.sample(run, n=4, seed=0), before)


def test_a_run_folder_copied_elsewhere_works(run, tmp_path):
    run, images = run
    before = api.sample(run, n=5, seed=1)
    elsewhere = tmp_path / "archive" / "deeper" / "copy"
    shutil.copytree(run, elsewhere)
    shutil.rmtree(run)
    shutil.rmtree(images)
    assert torch.equal(api.sample(elsewhere, n=5, seed=1), before)
    assert {p.name for p in api.plot(elsewhere, device="cpu")} >= {"class_grid.png"}
    _ok(["sample", str(elsewhere), "--out", str(tmp_path / "x.npy"), "--device", "cpu"])


def _say_cuda(run: Path) -> None:
    """Make the run look trained with --device cuda: its config and its checkpoints."""
    cfg = api.RunDir.open(run).read_config()
    cuda = cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": "cuda"})})
    api.RunDir(run).write_config(cuda)
    for path in ckpt.list_checkpoints(run / "checkpoints"):
        state = ckpt.load_checkpoint(path)
        state["config"]["train"]["device"] = "cuda"
        ckpt.save_checkpoint(path, state)


def test_a_cuda_run_samples_plots_and_evaluates_on_a_cpu(run, tmp_path, monkeypatch, weights):
    """Before: 'train.device=cuda but no CUDA device is available', and no --device."""
    run, _ = run
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _say_cuda(run)
    _ok(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png")])
    _ok(["sample", str(run), "--n", "4", "--out", str(tmp_path / "c.png"), "--device", "cpu"])
    assert "class_grid.png" in _ok(["plot", str(run), "--device", "cpu"])
    out = _ok(["eval", str(run), "--metrics", "is", "--n", "8", "--device", "cpu",
               "--inception-weights", str(weights)])
    assert json.loads(out)["step"] == 2
    assert api.sample(run, n=3, device="cpu").shape == (3, 1, 28, 28)
    _refused(["sample", str(run), "--out", str(tmp_path / "g.png"), "--device", "cuda"],
             "--device=cuda but no CUDA device is available")
    # was a traceback from torch ("not linked with support for mps devices")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    _refused(["sample", str(run), "--out", str(tmp_path / "m.png"), "--device", "mps"],
             "--device=mps but no MPS (Apple GPU) device is available")


def test_eval_reads_real_data_only_for_metrics_that_compare_with_them(run, weights):
    run, images = run
    shutil.rmtree(images)
    given = ["--inception-weights", str(weights)]
    out = _ok(["eval", str(run), "--metrics", "is", "--n", "8", *given])
    assert set(json.loads(out)) >= {"is_mean", "step", "protocol"}
    _refused(["eval", str(run), "--metrics", "fid", "--n", "8", *given],
             "metric fid needs the run's training data (folder), which cannot be read")
    result = api.evaluate(run, ["is"], n=8, inception_weights=weights, device="cpu")
    assert result["step"] == 2


def test_an_older_run_folder_is_described_once_from_its_data(run, tmp_path):
    """A run folder without data-info.safetensors (an older gankit) reads its data once,
    keeps their description, and from then on needs only itself."""
    run, images = run
    (run / DATA_INFO).unlink()
    moved = tmp_path / "moved"
    images.rename(moved)
    _refused(["sample", str(run), "--out", str(tmp_path / "a.png")],
             f"has no {DATA_INFO} (it was trained by an older gankit), so its data are "
             "needed once")
    moved.rename(images)
    before = api.sample(run, n=4, seed=2)
    assert (run / DATA_INFO).exists()
    shutil.rmtree(images)
    assert torch.equal(api.sample(run, n=4, seed=2), before)


def test_a_run_without_a_checkpoint_says_so(tmp_path):
    cfg = build_config("ring", ["train.steps=5", "log.ckpt_every=1000", "log.progress=false",
                                "log.figures=false", "eval.metrics=[]", "train.threads=1"])
    api.train(cfg, tmp_path / "r", until=0)
    for path in ckpt.list_checkpoints(tmp_path / "r" / "checkpoints"):
        path.unlink()
    _refused(["sample", str(tmp_path / "r"), "--out", str(tmp_path / "a.png")],
             "has no checkpoint in")


def test_a_trained_run_whose_checkpoints_went_is_not_restarted(tmp_path):
    """Resume would start a run without checkpoints over and drop its log: refused when it
    logged steps; a run that stopped before its first checkpoint still starts again."""
    cfg = build_config("ring", ["train.steps=3", "log.every=1", "log.progress=false",
                                "log.figures=false", "eval.metrics=[]", "train.threads=1"])
    api.train(cfg, tmp_path / "r")
    for path in ckpt.list_checkpoints(tmp_path / "r" / "checkpoints"):
        path.unlink()
    log = (tmp_path / "r" / "metrics.jsonl").read_bytes()
    _refused(["resume", str(tmp_path / "r"), "--steps", "2"], "logged 3 steps but has no "
             "checkpoint")
    assert (tmp_path / "r" / "metrics.jsonl").read_bytes() == log


def test_seeds_beyond_torchs_range_wrap_and_those_within_are_unchanged():
    from gankit.data.base import make_generator
    draw = lambda g: torch.rand(3, generator=g)                          # noqa: E731
    for seed in (0, 7, 2**63 - 1, 2**63, 2**64 - 1, -1, -2**63):
        assert torch.equal(draw(make_generator(seed)), draw(torch.Generator().manual_seed(seed)))
    assert torch.equal(draw(make_generator(2**64 + 5)), draw(make_generator(5)))


def test_a_toy_run_copied_elsewhere_plots_on_the_cpu(tmp_path):
    cfg = build_config("ring", ["train.steps=3", "model.g_hidden=16", "model.d_hidden=16",
                                "train.batch_size=32", "log.progress=false",
                                "log.figures=false", "eval.metrics=[]", "train.threads=1"])
    api.train(cfg, tmp_path / "r")
    shutil.copytree(tmp_path / "r", tmp_path / "copy")
    shutil.rmtree(tmp_path / "r")
    drawn = {p.name for p in api.plot(tmp_path / "copy", device="cpu")}
    assert {"ring_samples.png", "critic_and_gradient_field.png", "losses.png"} <= drawn


@pytest.mark.slow          # ~8 s: the MNIST strokes domains are computed once
def test_a_translation_run_shows_its_kept_examples_without_its_data(tmp_path, monkeypatch,
                                                                   data_root):
    """Translation pictures translate fixed held-out examples: the run folder keeps them
    (uint8, in data-info.safetensors), so sample pages and plots need no MNIST files."""
    monkeypatch.setenv("GANKIT_DATA", str(data_root))
    cfg = build_config("cyclegan-strokes", [
        "data.split=test", "data.n_examples=8", "model.ngf=4", "model.ndf=4",
        "model.n_blocks=1", "train.steps=1", "train.batch_size=2", "log.progress=false",
        "log.sample_at=[]", "log.figures=false"])
    api.train(cfg, tmp_path / "run")
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "nothing here"))
    out = _ok(["plot", str(tmp_path / "run"), "--device", "cpu"])
    assert "translations.png" in out
    x = api.sample(tmp_path / "run", n=3)
    assert x.shape == (3, 1, 28, 28)
    _ok(["sample", str(tmp_path / "run"), "--n", "4", "--out", str(tmp_path / "t.png")])
