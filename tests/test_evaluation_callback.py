"""Training-time evaluation: metric logging, best checkpoint, early stopping."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gankit.config import build_config
from gankit.errors import GankitError
from gankit.run import RunDir
from gankit.train.callbacks import MetricsLogger
from gankit.train.checkpoint import list_checkpoints, load_checkpoint
from gankit.metrics.protocol import declared_direction
from gankit.train.evaluation import BEST_NAME, EXTRA_KEY, BestTracker, EvaluationCallback
from gankit.train.trainer import Counters, Trainer


@pytest.mark.parametrize("name, direction", [
    ("fid", "min"), ("kid_mean", "min"), ("cfd_mnist", "min"), ("class_kl_mnist", "min"),
    ("cfd_fashion_mnist", "min"), ("stacked_kl", "min"), ("kl", "min"), ("is_mean", "max"),
    ("conditional_accuracy", "max"), ("class_agreement", "max"), ("stacked_modes", "max"),
    ("modes", "max"), ("precision", "max"), ("coverage", "max"), ("hq_fraction", "max"),
])
def test_declared_direction(name, direction):
    """Directions come from what the registered metrics declare."""
    assert declared_direction(name) == direction


@pytest.mark.parametrize("name", ["mystery_score", "fid_custom", "my_accuracy", "is_std",
                                  "stacked_modes_ideal"])
def test_undeclared_direction_asks_for_mode(name):
    # No guessing from words of the name; spreads and reference values are not scores.
    with pytest.raises(GankitError, match="eval.mode"):
        declared_direction(name)
    EvaluationCallback(FakeLogger(), [], every_n=1, n=1, best_metric=name, mode="min")


def test_best_tracker_min_and_max_with_min_delta():
    t = BestTracker("fid", "min", min_delta=0.5)
    assert t.update(10.0, 1) and t.best == 10.0
    assert not t.update(9.8, 2)                 # better, but by less than min_delta
    assert t.update(9.0, 3) and (t.best, t.best_step, t.since_best) == (9.0, 3, 0)
    assert not t.update(float("nan"), 4) and t.since_best == 1
    t = BestTracker("acc", "max")
    assert t.update(0.5, 1) and not t.update(0.5, 2) and t.update(0.6, 3)
    assert not t.update(0.1, 4) and t.since_best == 1


# ------------------------------------------------------------------ with a stand-in trainer
class FakeLogger:
    def __init__(self):
        self.lines = []

    def write(self, trainer, values):
        self.lines.append({"step": trainer.c.step, **values})


class FakeTrainer:
    """What the callback touches: counters, state(), stop_early()."""

    def __init__(self, ckpt_dir=None):
        self.c = Counters()
        self.ckpt_dir = ckpt_dir
        self.stopped = None
        self.w = torch.zeros(3)

    def state(self):
        return {"counters": dict(vars(self.c)), "w": self.w.clone()}

    def stop_early(self, reason):
        self.stopped = reason


def _run(cb, trainer, steps):
    cb.on_start(trainer)
    for _ in range(steps):
        if trainer.stopped:
            break
        trainer.c.step += 1
        trainer.w += 1
        cb.on_step(trainer)
    cb.on_end(trainer)


def scripted(values):
    """A metric returning the next value of a script at each evaluation."""
    it = iter(values)
    return lambda trainer, n: {"fid": next(it), "other": 1.0}


def test_logs_saves_best_and_stops_after_patience(tmp_path):
    trainer, logger = FakeTrainer(tmp_path), FakeLogger()
    cb = EvaluationCallback(logger, [scripted([5.0, 3.0, 4.0, 3.5, 3.2, 9.0])], every_n=10,
                            n=100, best_metric="fid", patience=3, ckpt_dir=tmp_path)
    _run(cb, trainer, 100)
    assert [line["step"] for line in logger.lines] == [10, 20, 30, 40, 50]
    assert [line["fid"] for line in logger.lines] == [5.0, 3.0, 4.0, 3.5, 3.2]
    assert trainer.stopped.startswith("early stop: fid has not improved for 3 evaluations")
    assert "best 3 at step 20" in trainer.stopped
    best = load_checkpoint(tmp_path / BEST_NAME)
    assert best["counters"]["step"] == 20 and torch.equal(best["w"], torch.full((3,), 20.0))
    assert best["counters"]["extra"][EXTRA_KEY]["best"] == 3.0
    assert list_checkpoints(tmp_path) == []        # not part of the ckpt-XXXXXXXX rotation


def test_max_mode_and_no_patience_runs_to_the_end(tmp_path):
    trainer, logger = FakeTrainer(tmp_path), FakeLogger()
    metric = iter([0.2, 0.1, 0.1, 0.05, 0.3, 0.0])
    cb = EvaluationCallback(logger, [lambda t, n: {"conditional_accuracy": next(metric)}],
                            every_n=10, n=10, best_metric="conditional_accuracy",
                            ckpt_dir=tmp_path)
    _run(cb, trainer, 55)                         # evaluations at 10..50, then at the end
    assert trainer.stopped is None
    assert [line["step"] for line in logger.lines] == [10, 20, 30, 40, 50, 55]
    assert load_checkpoint(tmp_path / BEST_NAME)["counters"]["step"] == 50
    assert trainer.c.extra[EXTRA_KEY] == {"metric": "conditional_accuracy", "mode": "max",
                                          "best": 0.3, "step": 50, "since_best": 1}


def test_tracking_state_survives_resume(tmp_path):
    trainer, logger = FakeTrainer(tmp_path), FakeLogger()
    cb = EvaluationCallback(logger, [scripted([2.0, 3.0])], every_n=10, n=1,
                            best_metric="fid", patience=2, ckpt_dir=tmp_path)
    _run(cb, trainer, 20)
    saved = trainer.c.extra[EXTRA_KEY]
    assert saved["since_best"] == 1 and trainer.stopped is None
    # A new process: a fresh callback, counters restored from a checkpoint.
    resumed = FakeTrainer(tmp_path)
    resumed.c = Counters(step=20, extra={EXTRA_KEY: dict(saved)})
    cb2 = EvaluationCallback(logger, [scripted([2.5])], every_n=10, n=1,
                             best_metric="fid", patience=2, ckpt_dir=tmp_path)
    _run(cb2, resumed, 10)
    assert resumed.stopped and "best 2 at step 10" in resumed.stopped
    # Tracking another metric (or direction) starts afresh.
    cb3 = EvaluationCallback(logger, [lambda t, n: {"kl": 1.0}], every_n=10, n=1,
                             best_metric="kl")
    other = FakeTrainer()
    other.c = Counters(step=30, extra={EXTRA_KEY: dict(saved)})
    _run(cb3, other, 10)
    assert other.c.extra[EXTRA_KEY]["metric"] == "kl" and other.stopped is None


def test_missing_best_metric_is_a_clear_error():
    cb = EvaluationCallback(FakeLogger(), [lambda t, n: {}], every_n=1, n=1, best_metric="fid")
    with pytest.raises(GankitError, match="'fid' was not computed"):
        _run(cb, FakeTrainer(), 1)
    with pytest.raises(GankitError, match="needs eval.best_metric"):
        EvaluationCallback(FakeLogger(), [], every_n=1, n=1, patience=3)


def test_without_metrics_does_nothing():
    logger = FakeLogger()
    _run(EvaluationCallback(logger, [], every_n=1, n=1), FakeTrainer(), 5)
    assert logger.lines == []


# ------------------------------------------------------------------ a real tiny toy run
class EarlyStoppingTrainer(Trainer):
    """The proposed ``Trainer.stop_early``: note the reason, end ``fit`` after this step."""

    def stop_early(self, reason):
        self.c.extra["early_stop"] = reason
        self.request_stop(reason)


def test_toy_run_keeps_best_checkpoint(tmp_path):
    cfg = build_config("ring", ["train.steps=40", "train.batch_size=32", "model.g_hidden=16",
                                "model.d_hidden=16", "log.progress=false", "eval.n=200"])
    run = RunDir.create(tmp_path / "run", cfg)
    trainer = EarlyStoppingTrainer(cfg, run.checkpoints)
    logger = MetricsLogger(run)
    cb = EvaluationCallback(logger, ["toy2d"], every_n=10, n=200, best_metric="kl",
                            patience=1, ckpt_dir=run.checkpoints)
    trainer.fit([logger, cb])
    lines = [m for m in run.read_metrics() if "kl" in m]
    assert lines and all(m["step"] % 10 == 0 for m in lines)
    best = trainer.c.extra[EXTRA_KEY]
    assert best["best"] == min(m["kl"] for m in lines)
    saved = load_checkpoint(run.checkpoints / BEST_NAME)
    assert saved["counters"]["step"] == best["step"]
    # The saved generator reproduces the best value.
    again = Trainer(cfg)
    again.load(saved)
    from gankit.registry import METRICS
    assert METRICS.get("toy2d").evaluate(again, 200)["kl"] == pytest.approx(best["best"])
    if trainer.c.step < 40:                        # patience 1: stopped at the first non-improvement
        assert trainer.c.extra["early_stop"].startswith("early stop: kl")


def test_from_config_reads_eval_section(tmp_path):
    cfg = build_config("ring", ["eval.every=7", "eval.n=123"])
    trainer = SimpleNamespace(cfg=cfg, ckpt_dir=tmp_path)
    cb = EvaluationCallback.from_config(FakeLogger(), trainer)
    assert (cb.every_n, cb.n, len(cb.metrics)) == (7, 123, 1)
    assert cb.tracker is None and cb.best_path == tmp_path / BEST_NAME
