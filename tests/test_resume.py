"""Checkpoints hold everything: N + N resumed steps == 2N uninterrupted steps, bit for bit."""

import pytest
import torch

from gankit import api
from gankit.config import build_config
from gankit.errors import CheckpointError, GankitError
from gankit.train import checkpoint as ckpt

SMALL = ["model.g_hidden=32", "model.d_hidden=32", "train.batch_size=64", "log.progress=false",
         "log.every=5", "log.ckpt_every=1000", "eval.metrics=[]", "log.sample_at=[]",
         "log.sample_every=100000", "optim.G.schedule=constant", "optim.D.schedule=constant",
         "log.figures=false"]


def _weights(run_path):
    _, state, _ = ckpt.newest_intact(run_path / "checkpoints")
    return state


def _assert_same_state(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k in ("seconds",):
                continue
            _assert_same_state(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f"{path}/{i}")
    else:
        assert a == b, path


@pytest.mark.parametrize("variant", [
    ["objective=nonsaturating"],
    ["objective=wgan-gp", "train.d_steps=2", "train.ema_beta=0.9"],
    ["objective=wgan", "train.ema_beta=0.99"],
    ["objective=nonsaturating", "train.reuse_fakes=true"],
])
def test_resume_is_bit_identical(tmp_path, variant):
    n = 12
    full = build_config("ring", SMALL + variant + [f"train.steps={2 * n}"])
    api.train(full, tmp_path / "full")
    half = build_config("ring", SMALL + variant + [f"train.steps={n}"])
    api.train(half, tmp_path / "half")
    # linear schedules depend on the planned length: extend the run the same way
    api.resume(tmp_path / "half", steps=n)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    for key in ("nets", "ema", "optim", "objective", "data", "rng"):
        _assert_same_state(a[key], b[key], key)
    assert a["counters"]["step"] == b["counters"]["step"] == 2 * n


def test_interrupted_run_resumes_exactly_with_schedules(tmp_path):
    """A run stopped half-way (as by SIGINT) and resumed equals the uninterrupted run, even
    with schedules that depend on the planned length (CycleGAN's linear decay)."""
    extra = SMALL + ["train.steps=16", "optim.G.schedule=linear", "optim.D.schedule=linear",
                     "optim.G.decay_start=0.5", "optim.D.decay_start=0.5"]
    api.train(build_config("ring", extra), tmp_path / "full")
    api.train(build_config("ring", extra), tmp_path / "cut", until=7)
    assert _weights(tmp_path / "cut")["counters"]["step"] == 7
    api.resume(tmp_path / "cut")
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for key in ("nets", "optim", "data", "rng"):
        _assert_same_state(a[key], b[key], key)


def test_resume_refuses_changed_architecture(tmp_path):
    cfg = build_config("ring", SMALL + ["train.steps=3"])
    run = api.train(cfg, tmp_path / "r")
    text = run.config_path.read_text().replace("g_hidden: 32", "g_hidden: 48")
    run.config_path.write_text(text)
    with pytest.raises(CheckpointError, match="model.g_hidden"):
        api.resume(tmp_path / "r", steps=2)


def test_resume_refuses_changed_objective(tmp_path):
    cfg = build_config("ring", SMALL + ["train.steps=3"])
    api.train(cfg, tmp_path / "r")
    with pytest.raises(GankitError, match="objective"):
        api.resume(tmp_path / "r", steps=2, overrides=["objective=hinge"])


def test_resume_allows_logging_changes(tmp_path):
    cfg = build_config("ring", SMALL + ["train.steps=3"])
    api.train(cfg, tmp_path / "r")
    api.resume(tmp_path / "r", steps=2, overrides=["log.every=1"])
    assert _weights(tmp_path / "r")["counters"]["step"] == 5


def test_same_seed_same_run(tmp_path):
    for name in ("a", "b"):
        api.train(build_config("ring", SMALL + ["train.steps=5", "seed=7"]), tmp_path / name)
    _assert_same_state(_weights(tmp_path / "a")["nets"], _weights(tmp_path / "b")["nets"])


def test_train_refuses_existing_run(tmp_path):
    cfg = build_config("ring", SMALL + ["train.steps=2"])
    api.train(cfg, tmp_path / "r")
    with pytest.raises(GankitError, match="not empty"):
        api.train(cfg, tmp_path / "r")
