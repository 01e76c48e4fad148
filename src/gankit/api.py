"""The Python API: ``train``, ``resume``, ``sample``, ``evaluate``, ``load_trainer``.

The CLI, benchmarks and notebooks share these; each raises ``gankit.errors.GankitError``
subclasses (ConfigError, DataError, CheckpointError) with a one-line message for a user's
mistake::

    from gankit import api
    from gankit.config import build_config

    run = api.train(build_config("ring", ["train.steps=500"]), "runs/ring")
    x = api.sample("runs/ring", n=1000, seed=0)        # (1000, 2) float32 tensor
    scores = api.evaluate("runs/ring", ["toy2d"], n=2500)
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from torch import Tensor

from gankit.config import RunConfig, incompatible_keys
from gankit.errors import CheckpointError, GankitError
from gankit.fileio import atomic_write
from gankit.log import note
from gankit.plots import VIEWS
from gankit.registry import METRICS
from gankit.run import RunDir
from gankit.train import checkpoint as ckpt
from gankit.train import distributed
from gankit.train.callbacks import Checkpointer, MetricsLogger, ProgressBar, SampleGrids
from gankit.train.evaluation import EvaluationCallback
from gankit.train.trainer import Trainer, resolve_device


def callbacks_for(run: RunDir, trainer: Trainer) -> list:
    logger = MetricsLogger(run)
    log = trainer.cfg.log
    view = VIEWS.get(trainer.data.info.kind)()
    return [logger, EvaluationCallback.from_config(logger, trainer), SampleGrids(run, view),
            Checkpointer(log.ckpt_every), ProgressBar(log.progress, logger, log.progress_seconds),
            *([FinalPlots(run, view)] if log.figures else [])]


class FinalPlots:
    def __init__(self, run: RunDir, view):
        self.run, self.view = run, view

    def on_start(self, trainer): ...
    def on_step(self, trainer): ...
    def on_rollback(self, trainer): ...

    def on_end(self, trainer):
        self.view.final_plots(trainer, self.run.sub("plots"), self.run.read_metrics())


def train(cfg: RunConfig, out: Path | str, until: int | None = None, live=None) -> RunDir:
    """Train a new run of ``cfg`` (a validated config, e.g. ``gankit.config.build_config``)
    into the run folder ``out``, which must not exist or be empty; returns the ``RunDir``.

    Data and networks are built before the folder is created, so a config that cannot be
    built writes nothing. Under torchrun every rank calls this and rank 0 writes. ``until``
    stops at that step with a checkpoint, as an interruption would, so that ``resume``
    continues the same planned run. ``live`` (a ``gankit.live.session.Live``, one process
    only) serves the live view of the run while it trains. Raises GankitError (ConfigError,
    DataError, ...) with a one-line message; ``Interrupted`` after a signal (a checkpoint is
    saved first)."""
    out = Path(out)
    with distributed.session(resolve_device(cfg.train.device)) as dist:
        out = Path(dist.broadcast_text(str(out)))    # ranks may name a default folder apart
        _on_main(dist, lambda: RunDir.check_new(out), out)
        # Data and networks are built before the folder exists: a bad data set, network or
        # role combination stops here with nothing written.
        trainer = Trainer(cfg, out / "checkpoints")
        prepare_metrics(cfg)                          # e.g. the Inception weights, found now
        run = _on_main(dist, lambda: RunDir.create(out, cfg), out) or RunDir(out)
        note(f"run folder: {run.path}")
        _fit(trainer, run, until, live)
    return run


def prepare_metrics(cfg: RunConfig) -> None:
    """What the run's ``eval.metrics`` need beyond the run (weights files), checked before
    anything is written; GankitError (one line) when something is missing."""
    from gankit.metrics.protocol import EvalOptions, metric

    options = EvalOptions.from_config(cfg.eval)
    for name in cfg.eval.metrics:
        metric(name).prepare(options)


def _on_main(dist, action, out: Path):
    """Run ``action`` on rank 0; if it fails there, every rank stops with its error."""
    result, error = None, None
    if dist.is_main:
        try:
            result = action()
        except GankitError as e:
            error = e
    if dist.any(error is not None):               # every rank stops, not only rank 0
        raise error or GankitError(f"rank 0 could not create the run folder {out}")
    return result


def load_trainer(run_path: Path | str, cfg: RunConfig | None = None,
                 best: bool = False) -> tuple[RunDir, Trainer, list[str]]:
    """(run folder, trainer, skipped checkpoints): a trainer restored from the newest intact
    checkpoint of a run, or with ``best`` from ``checkpoints/best.safetensors`` (kept when
    training named an ``eval.best_metric``). GankitError when the folder is not a run,
    CheckpointError when no checkpoint fits its config."""
    run = RunDir.open(run_path)
    saved = run.read_config()
    cfg = cfg or saved
    if best:
        return run, _best_trainer(run, run_path, cfg), []
    if not ckpt.list_checkpoints(run.checkpoints):
        # stopped before its first checkpoint: nothing to lose, start it again
        return run, Trainer(cfg, run.checkpoints), []
    path, state, skipped = ckpt.newest_intact(run.checkpoints)
    from gankit.config import from_saved
    ckpt_cfg = from_saved(state["config"])
    bad = incompatible_keys(ckpt_cfg, cfg)
    if bad:
        raise CheckpointError(f"cannot resume {run_path}: config differs from the checkpoint in "
                              f"{', '.join(bad[:6])}" + (" ..." if len(bad) > 6 else ""))
    trainer = Trainer(cfg, run.checkpoints)
    trainer.load(state)
    return run, trainer, skipped


def sample(run_path: Path | str, n: int = 64, seed: int = 0, best: bool = False,
           label: int | None = None) -> Tensor:
    """``n`` samples of a run's generator (its EMA weights when kept) as a float32 CPU tensor
    (n, *data shape) (images in [-1, 1]); ``best`` uses the best checkpoint; ``label`` draws
    that class only (class-conditional models; ConfigError otherwise). The same seed gives
    the same samples."""
    trainer = load_trainer(run_path, best=best)[1]
    with trainer.fixed_label(label):
        return trainer.sample(n, seed=seed)


def evaluate(run_path: Path | str, metrics: list[str] | None = None, n: int = 10000,
             seed: int | None = None,
             best: bool = False, inception_weights: str | Path | None = None,
             fid_method: str = "sqrtm", save: bool = False) -> dict[str, Any]:
    """Registered ``metrics`` (``gankit list``; None: every one that applies to the run) of a
    run's generator on ``n`` samples:
    ``{"step", [checkpoint], values..., "protocol": {metric: how it measured}}``.

    ``seed`` None takes each metric's fixed seed. ``save`` also writes
    ``eval-[best-]STEP.json`` into the run folder. Raises ConfigError before loading anything
    when a metric is unknown or does not apply to the run (its data and objective), and
    GankitError when a metric lacks what it needs (e.g. the Inception weights)."""
    from gankit.metrics import protocol

    facts = protocol.RunFacts.from_config(RunDir.open(run_path).read_config())
    if metrics is None:
        metrics = [m for m in METRICS.names() if protocol.metric(m).check(facts) is None]
    names = list(dict.fromkeys(metrics))
    if not names:
        raise GankitError("no metrics to evaluate (--metrics is empty)")
    for name in names:
        protocol.metric(name)                   # unknown names fail before anything is read
    options = protocol.EvalOptions(
        inception_weights=str(inception_weights) if inception_weights else None,
        fid_method=fid_method)
    protocol.check_applicable(names, facts)
    for name in names:
        protocol.metric(name).prepare(options)
    run, trainer, _ = load_trainer(run_path, best=best)
    values, described = protocol.evaluate_metrics(trainer, names, n, seed, options)
    result = ({"step": trainer.c.step} | ({"checkpoint": "best"} if best else {}) | values
              | {"protocol": described})
    if save:
        name = f"eval-{'best-' if best else ''}{trainer.c.step:08d}.json"
        atomic_write(run.path / name, (json.dumps(result) + "\n").encode())
    return result


def _best_trainer(run: RunDir, run_path: Path, cfg: RunConfig) -> Trainer:
    from gankit.train.evaluation import BEST_NAME

    path = run.checkpoints / BEST_NAME
    if not path.exists():
        raise CheckpointError(f"{run_path} has no best checkpoint ({BEST_NAME} is kept when "
                              "training sets eval.best_metric)")
    trainer = Trainer(cfg, run.checkpoints)
    trainer.load(ckpt.load_checkpoint(path))
    return trainer


def resume(run_path: Path | str, steps: int | None = None, overrides: list[str] = (),
           live=None) -> RunDir:
    """Continue the run in ``run_path`` from its newest intact checkpoint, exactly as if it
    had never stopped; ``steps`` trains that many more steps; ``overrides`` (``key=value``)
    may change only run length, logging and evaluation (CheckpointError names other keys).
    ``live`` as for ``train``. GankitError when the run already finished its steps."""
    from gankit.config import apply_overrides, validate
    run = RunDir.open(run_path)
    raw = run.read_config().to_dict()
    cfg = validate(apply_overrides(raw, list(overrides)))
    done = 0
    if ckpt.list_checkpoints(run.checkpoints):
        done = int(ckpt.newest_intact(run.checkpoints)[1]["counters"]["step"])
    if steps is not None:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": done + steps})})
    with distributed.session(resolve_device(cfg.train.device)) as dist:
        run, trainer, skipped = load_trainer(run_path, cfg)
        for msg in skipped if dist.is_main else ():
            print(f"warning: skipped {msg}")
        if trainer.c.step >= cfg.train.steps:
            raise GankitError(f"{run_path} already finished {trainer.c.step} steps; "
                              "use --steps N to train N more")
        if dist.is_main:
            run.write_config(cfg)
            run.truncate_metrics(trainer.c.step)
        note(f"resuming {run.path} at step {trainer.c.step} of {cfg.train.steps}")
        _fit(trainer, run, live=live)
    return run


def _fit(trainer: Trainer, run: RunDir, until: int | None = None, live=None) -> None:
    if live is not None:
        live.attach(trainer, run.path)
    try:
        with graceful_interrupts(trainer):
            finished = trainer.fit(callbacks_for(run, trainer), until=until)
    finally:
        if live is not None:
            live.close()
    if until is not None and trainer.c.step == until:
        trainer.save()
    elif not finished:
        err = Interrupted(f"stopped by {trainer.stop_reason} at step {trainer.c.step}; "
                          f"checkpoint saved, continue with `gankit resume {run.path}`")
        sig = getattr(signal.Signals, str(trainer.stop_reason), None)
        err.exit_code = 128 + int(sig) if sig else 1      # the shell's convention for signals
        raise err


class graceful_interrupts:
    """SIGINT/SIGTERM ask the trainer to stop after the current step and checkpoint; a second
    signal gets the default behaviour (SIGINT: KeyboardInterrupt at once)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.old: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[sig] = signal.signal(sig, self._handle)
            except ValueError:      # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        for sig, old in self.old.items():
            signal.signal(sig, old)
        self.trainer.request_stop(signal.Signals(signum).name)

    def __exit__(self, *exc):
        for sig, old in self.old.items():
            signal.signal(sig, old)
        return False


class Interrupted(GankitError):
    """Training stopped by a signal after saving a checkpoint."""

    exit_code = 1
