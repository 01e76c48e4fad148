"""Evaluation during training: metrics every N steps, the best checkpoint, early stopping.

Every ``every`` generator steps (and at the end) the configured metrics are computed and
written to metrics.jsonl through the run's ``MetricsLogger``. When a ``best_metric`` is named,
the trainer state at the best value so far is kept as ``checkpoints/best.safetensors`` (outside
the ``ckpt-XXXXXXXX`` rotation, so it is never pruned nor picked up by ``resume``), and with a
``patience`` the run ends normally once that many evaluations in a row brought no improvement
of more than ``min_delta``.

Metrics follow ``gankit.metrics.protocol``: config validation has already checked that each
applies to the run and that ``best_metric`` is one of their keys; the direction of "better"
is the one the metric declares. The metrics of one evaluation share their generated samples
(and Inception features); real-data statistics are computed once per process.

The tracking state (best value, its step, evaluations since) lives in ``trainer.c.extra``,
which every checkpoint saves: a resumed or rolled-back run continues with the right best and
patience count, and ``best.safetensors`` records which step and value it holds.

With several processes every rank takes part (the samples are generated in shards and
gathered, so every rank computes the same values and takes the same early-stop decision);
rank 0 alone writes metrics.jsonl and ``best.safetensors``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from gankit.errors import GankitError
from gankit.log import note
from gankit.metrics import protocol
from gankit.metrics.finite import NonFiniteError
from gankit.train.checkpoint import save_checkpoint
from gankit.train.trainer import Callback, Trainer, every

BEST_NAME = "best.safetensors"
EXTRA_KEY = "eval_best"


@dataclass
class BestTracker:
    """Best value of one metric and how many evaluations have passed without improving it."""

    metric: str
    mode: Literal["min", "max"]
    min_delta: float = 0.0
    best: float | None = None
    best_step: int = -1
    since_best: int = 0

    def improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        gain = self.best - value if self.mode == "min" else value - self.best
        return gain > self.min_delta

    def update(self, value: float, step: int) -> bool:
        """Record one evaluation; True when it is the new best."""
        if self.improved(value):
            self.best, self.best_step, self.since_best = float(value), step, 0
            return True
        self.since_best += 1
        return False

    def state(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode, "best": self.best,
                "step": self.best_step, "since_best": self.since_best}

    def load(self, state: dict[str, Any]) -> None:
        if state.get("metric") == self.metric and state.get("mode") == self.mode:
            self.best, self.best_step = state.get("best"), int(state.get("step", -1))
            self.since_best = int(state.get("since_best", 0))


MetricFn = Callable[[Trainer, int], dict[str, Any]]


def registered(metric: str | type[protocol.Metric],
               options: protocol.EvalOptions | None = None) -> MetricFn:
    """``fn(trainer, n)`` running a metric of the protocol, given by registered name or class
    (checked: it applies, and it returns its declared keys); ``fn.metric`` is the class."""
    if isinstance(metric, str):
        metric = protocol.metric(metric)

    def fn(trainer: Trainer, n: int) -> dict[str, Any]:
        return protocol.run_metric(metric, trainer, n, options=options)
    fn.metric = metric
    return fn


def _is_metric(m: Any) -> bool:
    return isinstance(m, str) or (isinstance(m, type) and issubclass(m, protocol.Metric))


class EvaluationCallback(Callback):
    """Metrics every ``every`` steps, logged; best checkpoint and early stop on one of them.

    ``metrics`` are registered metric names (``eval.metrics``), metric classes, or, for tests
    and notebooks, callables ``fn(trainer, n) -> dict``. ``best_metric`` is a key of their
    results (e.g. ``cfd_mnist``, ``fid``, ``conditional_accuracy``); ``mode`` "auto" takes the
    direction its metric declares (``gankit.metrics.protocol.declared_direction``; GankitError
    when no registered metric declares one). ``patience`` counts evaluations, not steps; None
    never stops early. ``options``: Inception weights and FID method, for the metrics that use
    them. Raises GankitError for an inconsistent patience.
    """

    all_ranks = True          # sample generation is sharded over the ranks (a collective)

    def __init__(self, logger, metrics: list[str | type[protocol.Metric] | MetricFn],
                 every_n: int, n: int, *,
                 best_metric: str | None = None, mode: Literal["auto", "min", "max"] = "auto",
                 patience: int | None = None, min_delta: float = 0.0,
                 ckpt_dir: Path | None = None, options: protocol.EvalOptions | None = None):
        if patience is not None and best_metric is None:
            raise GankitError("eval.patience needs eval.best_metric: the metric to watch")
        if patience is not None and patience < 1:
            raise GankitError(f"eval.patience must be at least 1, got {patience}")
        self.logger = logger
        self.options = options or protocol.EvalOptions()
        self.metrics = [registered(m, self.options) if _is_metric(m) else m for m in metrics]
        self.every_n, self.n = every_n, n
        self.patience = patience
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir else None
        self.tracker = None
        if best_metric:
            direction = protocol.declared_direction(best_metric) if mode == "auto" else mode
            self.tracker = BestTracker(best_metric, direction, min_delta)
        self.last_step = -1

    @classmethod
    def from_config(cls, logger, trainer: Trainer) -> "EvaluationCallback":
        """From ``trainer.cfg.eval`` (validated: the metrics apply to the run, and
        ``best_metric`` is one of their keys)."""
        ev = trainer.cfg.eval
        return cls(logger, list(ev.metrics), ev.every, ev.n, best_metric=ev.best_metric,
                   mode=ev.mode, patience=ev.patience, min_delta=ev.min_delta,
                   ckpt_dir=trainer.ckpt_dir, options=protocol.EvalOptions.from_config(ev))

    @property
    def best_path(self) -> Path | None:
        return self.ckpt_dir / BEST_NAME if self.ckpt_dir else None

    # ---- hooks --------------------------------------------------------------------------
    def on_start(self, trainer):
        for fn in self.metrics:     # e.g. Inception weights: missing ones fail now, not later
            if hasattr(fn, "metric"):
                fn.metric.prepare(self.options)
        self._restore(trainer)

    def on_rollback(self, trainer):
        self._restore(trainer)                  # counters (and extra) came from a checkpoint

    def on_step(self, trainer):
        if self.metrics and every(trainer.c.step, self.every_n):
            self.evaluate(trainer)

    def on_end(self, trainer):
        if self.metrics and self.last_step != trainer.c.step:
            self.evaluate(trainer)

    # ---- work ---------------------------------------------------------------------------
    def _restore(self, trainer):
        """Start from the tracking state saved with the counters (none: a fresh start)."""
        if self.tracker:
            t = self.tracker
            self.tracker = BestTracker(t.metric, t.mode, t.min_delta)
            self.tracker.load(trainer.c.extra.get(EXTRA_KEY, {}))

    def evaluate(self, trainer) -> dict[str, Any]:
        """Compute every metric (sharing samples), log them, track the best; the values."""
        values: dict[str, Any] = {}
        sharded = getattr(trainer, "sharded_sampling", contextlib.nullcontext)
        with sharded(), protocol.shared_samples():
            for fn in self.metrics:
                values |= self._run(fn, trainer)
        self.last_step = trainer.c.step
        self.logger.write(trainer, values)
        if self.tracker:
            self._track(trainer, values)
        return values

    def _run(self, fn: MetricFn, trainer) -> dict[str, Any]:
        """``fn(trainer, n)``; a registered metric whose samples or values are not finite
        (a diverged generator) is logged as NaN with one note, and training goes on (NaN is
        never a best value)."""
        try:
            return fn(trainer, self.n)
        except NonFiniteError as e:
            if not hasattr(fn, "metric"):
                raise
            note(f"step {trainer.c.step}: {e}")
            facts = protocol.RunFacts.from_config(trainer.cfg)
            return {key: float("nan") for key in fn.metric.keys(facts)}

    def _track(self, trainer, values: dict[str, Any]) -> None:
        t = self.tracker
        if t.metric not in values:
            raise GankitError(f"eval.best_metric {t.metric!r} was not computed at step "
                              f"{trainer.c.step}; the metrics gave: "
                              f"{', '.join(sorted(values)) or 'nothing'}")
        is_best = t.update(float(values[t.metric]), trainer.c.step)
        trainer.c.extra[EXTRA_KEY] = t.state()      # before saving: best.safetensors knows it
        dist = getattr(trainer, "dist", None)
        if is_best and self.best_path and (dist is None or dist.is_main):
            save_checkpoint(self.best_path, trainer.state())
        if self.patience is not None and t.since_best >= self.patience:
            trainer.stop_early(f"early stop: {t.metric} has not improved for {t.since_best} "
                               f"evaluations (best {t.best:.6g} at step {t.best_step})")
