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


# ------------------------------------------------------------------ extending a finished run
DECAY = ["optim.G.schedule=cosine", "optim.D.schedule=cosine", "optim.G.lr=4e-4",
         "optim.D.lr=4e-4", "optim.G.min_lr=3.3e-5", "optim.D.min_lr=3.3e-5"]


def _rates(run_path, phase="G"):
    import json
    rows = [json.loads(line) for line in (run_path / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r[f"lr/{phase}"] for r in rows if f"lr/{phase}" in r}


def test_extending_a_finished_run_keeps_the_schedule_end(tmp_path, capsys):
    """Issue 20 section 7: a finished 60-step run extended by 20 went from 3.3e-5 at step 60
    back to 4e-4 at step 65 (the decay re-stretched over 80 steps). Now the schedule keeps
    its end: the extension runs at the final rate (min_lr), says so, and equals a run planned
    for 80 steps whose schedule ends at step 60, bit for bit."""
    steps = SMALL + DECAY + ["log.every=5"]
    api.train(build_config("ring", steps + ["train.steps=60"]), tmp_path / "a")
    capsys.readouterr()
    api.resume(tmp_path / "a", steps=20)
    said = capsys.readouterr().out
    assert "at step 60 of 80; learning rate D 3.3e-05, G 3.3e-05 (the schedules ended at " \
           "step 60" in said, said
    rates = _rates(tmp_path / "a")
    assert rates[55] == pytest.approx(3.3e-5) and rates[50] > 3.3e-5
    assert all(rates[s] == pytest.approx(3.3e-5) for s in (60, 65, 70, 75, 80))
    saved = api.RunDir.open(tmp_path / "a").read_config().train
    assert (saved.steps, saved.schedule_steps) == (80, 60)
    api.train(build_config("ring", steps + ["train.steps=80", "train.schedule_steps=60"]),
              tmp_path / "planned")
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "planned")
    for key in ("nets", "optim", "data", "rng"):
        _assert_same_state(a[key], b[key], key)


def test_an_extension_at_learning_rate_zero_is_refused_until_the_schedule_moves(tmp_path):
    """The ring preset decays linearly to 0: more steps past its end would not train; the
    refusal names train.schedule_steps, leaves the run as it was, and that key re-plans it."""
    from cli_runner import run_cli

    extra = SMALL + ["optim.G.schedule=linear", "optim.D.schedule=linear", "train.steps=10",
                     "log.every=1"]
    api.train(build_config("ring", extra), tmp_path / "r")
    before = (tmp_path / "r" / "config.yaml").read_text()
    code, _, err = run_cli(["resume", str(tmp_path / "r"), "--steps", "5"])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "runs past train.schedule_steps=10" in err and "train.schedule_steps=15" in err
    assert (tmp_path / "r" / "config.yaml").read_text() == before
    api.resume(tmp_path / "r", steps=5, overrides=["train.schedule_steps=15"])
    rates = _rates(tmp_path / "r")
    assert rates[10] < rates[11] and rates[15] > 0        # re-planned: the rate rises again


def test_a_shorter_or_longer_interrupted_run_keeps_its_plan(tmp_path):
    """--steps on an interrupted run changes how long it trains, not its schedule: the steps
    it trains have the rates of the run as first planned."""
    extra = SMALL + ["train.steps=16", "optim.G.schedule=linear", "optim.D.schedule=linear",
                     "optim.G.decay_start=0.5", "optim.D.decay_start=0.5", "log.every=1"]
    api.train(build_config("ring", extra), tmp_path / "full")
    api.train(build_config("ring", extra), tmp_path / "cut", until=7)
    api.resume(tmp_path / "cut", steps=5)
    full, cut = _rates(tmp_path / "full"), _rates(tmp_path / "cut")
    assert max(cut) == 12 and all(cut[s] == full[s] for s in cut)
