"""SIGKILL a training process at 20 moments (some inside a checkpoint write) and resume each
time: every resume starts from an intact checkpoint and the final weights equal those of an
uninterrupted run with the same seed."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gankit import api
from gankit.config import build_config
from gankit.train import checkpoint as ckpt

SETTINGS = ["model.g_hidden=256", "model.d_hidden=256", "train.batch_size=32", "train.steps=150",
            "log.progress=false", "log.ckpt_every=1", "log.keep_ckpts=2", "eval.metrics=[]",
            "log.sample_at=[]", "log.sample_every=100000", "log.every=10", "seed=5",
            "log.figures=false"]


def _start(run: Path, first: bool) -> subprocess.Popen:
    if first:
        args = ["train", "ring", "--out", str(run)] + [a for s in SETTINGS for a in ("--set", s)]
    else:
        args = ["resume", str(run)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "gankit", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finished(run: Path) -> bool:
    """Whether the run's newest intact checkpoint is its last step (a resume would refuse)."""
    if not ckpt.list_checkpoints(run / "checkpoints"):
        return False
    return ckpt.newest_intact(run / "checkpoints")[1]["counters"]["step"] >= 150


def _wait_for_training(proc, run: Path, timeout=120.0) -> bool:
    """Until the process has written a checkpoint of its own (it is training), or exited."""
    start_ckpts = set(ckpt.list_checkpoints(run / "checkpoints"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if set(ckpt.list_checkpoints(run / "checkpoints")) - start_ckpts:
            return True
        time.sleep(0.005)
    raise AssertionError("training did not start")


def _kill_during_write(proc, run: Path, timeout=20.0) -> bool:
    """SIGKILL as soon as a checkpoint's temporary file exists (mid-write)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any((run / "checkpoints").glob(".ckpt-*.tmp")):
            proc.send_signal(signal.SIGKILL)
            return True
    return False


def test_sigkill_twenty_times_then_equal_weights(tmp_path):
    reference = api.train(build_config("ring", SETTINGS), tmp_path / "reference")
    want = ckpt.newest_intact(reference.checkpoints)[1]["nets"]

    run, rng = tmp_path / "run", random.Random(1234)
    kills = mid_write = attempts = 0
    first = True
    while True:
        attempts += 1
        assert attempts < 60, "the run never finished"
        if not first and _finished(run):
            break               # the last kill came after the final checkpoint, at exit
        proc = _start(run, first)
        first = False
        if kills < 20 and _wait_for_training(proc, run):
            if kills % 3 == 0:
                mid_write += _kill_during_write(proc, run)
            else:
                time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.returncode == -signal.SIGKILL:
                kills += 1
                # every resume must find an intact checkpoint
                ckpt.newest_intact(run / "checkpoints")
            continue
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
        break
    assert kills == 20 and mid_write >= 3
    got = ckpt.newest_intact(run / "checkpoints")[1]
    assert got["counters"]["step"] == 150
    for net, params in want.items():
        for k, v in params.items():
            assert torch.equal(v, got["nets"][net][k]), f"{net}.{k}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_a_checkpoint_and_exits_cleanly(tmp_path, sig):
    run = tmp_path / "run"
    proc = _start(run, first=True)
    assert _wait_for_training(proc, run)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err.decode()
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "checkpoint saved" in lines[0], lines
    state = ckpt.newest_intact(run / "checkpoints")[1]
    assert 0 < state["counters"]["step"] < 150
    # the saved step is complete: resuming continues the same run
    api.resume(run, steps=1)


def test_second_sigint_exits_at_once(tmp_path):
    run = tmp_path / "run"
    proc = _start(run, first=True)
    assert _wait_for_training(proc, run)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, 128 + signal.SIGINT), err.decode()
    assert "Traceback" not in err.decode()
