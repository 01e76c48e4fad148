"""Runs survive divergence, hostile files, full disks and bad input."""

import os
import pickle  # noqa: F401  (only to build a hostile file for the test)
import re
from pathlib import Path

import pytest
import torch

from gankit import api
from cli_runner import run_cli
from gankit.config import build_config
from gankit.errors import CheckpointError
from gankit.train import checkpoint as ckpt
from gankit.train.trainer import Trainer, TrainingDiverged

SMALL = ["model.g_hidden=16", "model.d_hidden=16", "train.batch_size=32", "log.progress=false",
         "eval.metrics=[]", "log.sample_at=[]", "log.sample_every=100000",
         "optim.G.schedule=constant", "optim.D.schedule=constant", "log.figures=false"]


def _inject_nan(trainer: Trainer, steps: set[int]) -> dict:
    """Make the discriminator loss NaN at the given (generator) steps, once each."""
    original, hits = trainer.objective.loss_D, {"n": 0}

    def loss_D(ctx):
        loss, scalars = original(ctx)
        if trainer.c.step in steps:
            steps.discard(trainer.c.step)
            hits["n"] += 1
            loss = loss * float("nan")
        return loss, scalars

    trainer.objective.loss_D = loss_D
    return hits


def test_nan_guard_stops_with_step_and_quantity(tmp_path):
    cfg = build_config("ring", SMALL + ["train.steps=30", "train.nan_policy=stop",
                                       "train.max_bad_steps=3"])
    trainer = Trainer(cfg, tmp_path)
    _inject_nan(trainer, {10, 11, 12})
    with pytest.raises(TrainingDiverged, match=r"loss/D was nan at step 12 \(3 bad steps"):
        trainer.fit()
    assert trainer.c.bad_total == 3


def test_nan_guard_skips_isolated_bad_steps(tmp_path):
    cfg = build_config("ring", SMALL + ["train.steps=20", "train.max_bad_steps=3"])
    trainer = Trainer(cfg, tmp_path)
    before = {k: v.clone() for k, v in trainer.nets["D"].state_dict().items()}
    _inject_nan(trainer, {0, 5, 9})
    trainer.fit()
    assert trainer.c.step == 20 and trainer.c.bad_total == 3
    assert all(torch.isfinite(p).all() for p in trainer.nets.parameters())
    assert any(not torch.equal(before[k], v) for k, v in trainer.nets["D"].state_dict().items())


def test_nan_guard_rolls_back_with_lower_lr(tmp_path):
    cfg = build_config("ring", SMALL + ["train.steps=30", "train.nan_policy=rollback",
                                       "train.max_bad_steps=2", "log.ckpt_every=5"])
    run = api.RunDir.create(tmp_path / "run", cfg)
    trainer = Trainer(cfg, run.checkpoints)
    hits = _inject_nan(trainer, {17, 18})
    trainer.fit(api.callbacks_for(run, trainer))
    assert hits["n"] == 2
    assert trainer.c.extra["rollbacks"] == 1
    assert trainer.c.lr_scale == 0.5
    assert trainer.c.step == 30
    assert trainer.optims["D"].param_groups[0]["lr"] == pytest.approx(0.5 * cfg.optim["D"].lr)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_malicious_pickle_checkpoint_is_rejected_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = api.train(build_config("ring", SMALL + ["train.steps=2"]), tmp_path / "run")
    newest = ckpt.list_checkpoints(run.checkpoints)[0]
    for writer in (lambda f: pickle.dump({"x": _Payload()}, f),
                   lambda f: torch.save({"x": _Payload()}, f)):
        with open(newest, "wb") as f:
            writer(f)
        with pytest.raises(CheckpointError, match="pickle"):
            ckpt.load_checkpoint(newest)
        with pytest.raises(CheckpointError, match="no intact checkpoint"):
            api.resume(run.path, steps=1)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_resume_falls_back_past_a_corrupt_checkpoint(tmp_path, capsys):
    cfg = build_config("ring", SMALL + ["train.steps=6", "log.ckpt_every=2", "log.keep_ckpts=5"])
    run = api.train(cfg, tmp_path / "run")
    newest = ckpt.list_checkpoints(run.checkpoints)[0]
    data = bytearray(newest.read_bytes())
    data[-5] ^= 0xFF                                       # one flipped bit in a weight
    newest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        ckpt.load_checkpoint(newest)
    path, state, skipped = ckpt.newest_intact(run.checkpoints)
    assert state["counters"]["step"] == 4 and skipped
    api.resume(run.path, steps=1)
    assert "skipped" in capsys.readouterr().out


def test_full_disk_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = build_config("ring", SMALL + ["train.steps=2"])
    trainer = Trainer(cfg, tmp_path)
    good = trainer.save()
    trainer.train_step()
    real_fdopen = os.fdopen

    def full_disk(fd, *a, **k):
        f = real_fdopen(fd, *a, **k)
        def write(_data):
            raise OSError(28, "No space left on device")
        f.write = write
        return f

    monkeypatch.setattr(os, "fdopen", full_disk)
    with pytest.raises(CheckpointError, match="No space left"):
        trainer.save()
    monkeypatch.undo()
    assert ckpt.list_checkpoints(tmp_path) == [good]
    assert ckpt.load_checkpoint(good)["counters"]["step"] == 0
    assert not list(tmp_path.glob(".*.tmp"))


def test_unwritable_run_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["train", "--out", str(blocker / "run"), "--steps", "1"])
    assert code == 2 and err.count("\n") == 1 and "cannot create run folder" in err


def test_sample_and_plot_commands(tmp_path):
    run = api.train(build_config("ring", SMALL + ["train.steps=3"]), tmp_path / "run")
    for out in ("s.npy", "s.png", "s.npz"):
        code, _, _ = run_cli(["sample", str(run.path), "--n", "10", "--out", str(tmp_path / out)])
        assert code == 0
        assert (tmp_path / out).exists()
    code, _, err = run_cli(["sample", str(run.path), "--n", "10", "--out", str(tmp_path / "s.gif")])
    assert code == 2 and "must end in" in err
    assert run_cli(["plot", str(run.path)])[0] == 0
    assert (run.path / "plots" / "critic_and_gradient_field.png").exists()


def test_a_failing_end_of_run_keeps_the_checkpoint_and_figures(tmp_path):
    """An error in one end-of-run callback (e.g. a final evaluation) is raised only after the
    others (checkpoint, figures) have run: a finished run is never lost."""
    from gankit.errors import GankitError
    from gankit.train.callbacks import Checkpointer

    class Failing:
        def on_start(self, trainer): ...
        def on_step(self, trainer): ...
        def on_end(self, trainer):
            raise GankitError("final evaluation failed")

    trainer = Trainer(build_config("ring", SMALL + ["train.steps=3"]), tmp_path)
    with pytest.raises(GankitError, match="final evaluation failed"):
        trainer.fit([Failing(), Checkpointer(1000)])
    assert (tmp_path / "ckpt-00000003.safetensors").exists()
