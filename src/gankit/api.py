"""The Python API: ``train``, ``resume``, ``sample``, ``plot``, ``evaluate``, ``load_model``,
``load_trainer``.

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
from gankit.errors import CheckpointError, ConfigError, GankitError
from gankit.log import note
from gankit.plots import VIEWS
from gankit.registry import METRICS
from gankit.report.pages import write_report_quietly
from gankit.run import RunDir
from gankit.train import checkpoint as ckpt
from gankit.train import distributed
from gankit.train.callbacks import Checkpointer, MetricsLogger, ProgressBar, SampleGrids
from gankit.train import tensorboard
from gankit.train.evaluation import EvaluationCallback
from gankit.train.model import (Model, load_data_info, load_run_model, resolve_device,
                                run_data, save_data_info)
from gankit.train.tensorboard import TensorBoardLog
from gankit.train.trainer import Trainer


def callbacks_for(run: RunDir, trainer: Trainer) -> list:
    log = trainer.cfg.log
    sinks = [TensorBoardLog(run.path)] if tensorboard.wanted(log.tensorboard) else []
    logger = MetricsLogger(run, sinks)
    view = VIEWS.get(trainer.data.info.kind)()
    return [logger, EvaluationCallback.from_config(logger, trainer), SampleGrids(run, view, sinks),
            Checkpointer(log.ckpt_every), ProgressBar(log.progress, logger, log.progress_seconds),
            *([FinalPlots(run, view)] if log.figures else []), *sinks]


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
        tensorboard.wanted(cfg.log.tensorboard)       # true without the package: stop now
        run = _on_main(dist, lambda: _create(out, cfg, trainer), out) or RunDir(out)
        note(f"run folder: {run.path}")
        _fit(trainer, run, until, live)
    return run


def _create(out: Path, cfg: RunConfig, trainer: Trainer) -> RunDir:
    """The new run folder: its config and the description of its data (``DATA_INFO``), so
    that sampling, figures and evaluation later need only the folder."""
    run = RunDir.create(out, cfg)
    save_data_info(run.path, trainer.data.info)
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
        logged = max((r.get("step", 0) for r in run.read_metrics()), default=0)
        if logged > 0:      # trained, then its checkpoints went: starting over would drop it
            raise CheckpointError(f"{run_path} logged {logged} steps but has no checkpoint in "
                                  f"{run.checkpoints} (removed or moved?); resuming would start "
                                  "over: put them back, or train a new run")
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


def load_model(run_path: Path | str, best: bool = False,
               device: str = "auto") -> tuple[RunDir, Model]:
    """(run folder, model): a run's networks for inference (``gankit.train.model``) from its
    newest intact checkpoint, or with ``best`` from ``checkpoints/best.safetensors``, on
    ``device`` ("auto": CUDA, else MPS, else CPU; any device loads any run). Needs only the
    run folder, wherever it now lives: not the training data, nor the device it trained on.
    GankitError when the folder is not a run or ``device`` is missing, CheckpointError when
    it has no (fitting) checkpoint, DataUnavailable for an older run folder without its data
    description whose data cannot be read."""
    state = _best_state(RunDir.open(run_path), run_path) if best else None
    return load_run_model(run_path, device, state)


def sample(run_path: Path | str, n: int = 64, seed: int = 0, best: bool = False,
           label: int | None = None, device: str = "auto",
           caption: str | None = None, truncation: float | None = None,
           mix_seed: int | None = None, mix_layers: str | None = None) -> Tensor:
    """``n`` samples of a run's generator (its EMA weights when kept) as a float32 CPU tensor
    (n, *data shape) (images in [-1, 1]); ``best`` uses the best checkpoint; ``label`` draws
    that class only (class-conditional models; ConfigError otherwise); ``caption`` draws
    images of that sentence (caption models, e.g. GAN-CLS; ConfigError otherwise, or for a
    word outside the run's vocabulary); ``device`` as ``load_model`` (the run folder alone is
    needed). The same seed gives the same samples on the same device.

    Style-based generators (objective ``stylegan``; ConfigError otherwise): ``truncation``
    psi pulls every w towards the tracked average (Karras et al. 2019, section 4.1);
    ``mix_seed`` gives sample i the styles ``mix_layers`` ("coarse", "middle", "fine" or
    "i-j", w indices; None: "coarse") of sample i of seed ``mix_seed`` (style mixing,
    section 3.1; ``mix_layers`` without ``mix_seed`` is a ConfigError)."""
    model = load_model(run_path, best=best, device=device)[1]
    with model.fixed_label(label), model.fixed_caption(caption), \
            model.styled(truncation, mix_seed, mix_layers):
        return model.sample(n, seed=seed)


def plot(run_path: Path | str, device: str = "auto") -> list[Path]:
    """Redraw a run's figures into its ``plots/`` folder from its newest checkpoint and
    metrics (the run folder alone is needed; ``device`` as ``load_model``); returns the files
    written. Figures that show real data are skipped with a one-line note when the data
    cannot be read."""
    run, model = load_model(run_path, device=device)
    view = VIEWS.get(model.data.info.kind)()
    return view.final_plots(model, run.sub("plots"), run.read_metrics())


def evaluate(run_path: Path | str, metrics: list[str] | None = None, n: int = 10000,
             seed: int | None = None,
             best: bool = False, inception_weights: str | Path | None = None,
             fid_method: str = "sqrtm", save: bool = False,
             device: str = "auto", iw_samples: int | None = None) -> dict[str, Any]:
    """Registered ``metrics`` (``gankit list``; None: every one that applies to the run) of a
    run's generator on ``n`` samples:
    ``{"step", [checkpoint], values..., "protocol": {metric: how it measured}}``.

    ``seed`` None takes each metric's fixed seed; ``iw_samples``: the importance samples k
    of an estimated likelihood (metric nll of a VAE; None: the model's default; ConfigError
    when no metric of the evaluation uses them). With ``metrics`` None, a metric that lacks
    what it needs (e.g. the Inception weights, offline) is skipped with a one-line note
    naming it and why; a metric asked for by name stops the evaluation. ``save`` also writes
    ``eval-[best-]STEP.json`` into the run folder (:func:`save_evaluation`). The model runs on ``device`` from the run
    folder alone (``load_model``); only metrics that compare with real data read them.
    Raises ConfigError before loading anything when a metric is unknown or does not apply to
    the run (its data and objective), GankitError when a metric lacks what it needs (e.g.
    the Inception weights), DataUnavailable when it needs real data that cannot be read."""
    from gankit.metrics import protocol

    facts = protocol.RunFacts.from_config(RunDir.open(run_path).read_config())
    default = metrics is None
    if default:
        metrics = [m for m in METRICS.names() if protocol.metric(m).check(facts) is None]
    names = list(dict.fromkeys(metrics))
    if not names and default:
        raise GankitError(f"no registered metric applies to {run_path}, which trains on "
                          f"{facts.trains_on()} (`gankit list` shows the metrics)")
    if not names:
        raise GankitError("no metrics to evaluate (--metrics is empty)")
    for name in names:
        protocol.metric(name)                   # unknown names fail before anything is read
    if inception_weights is not None and not Path(inception_weights).is_file():
        raise GankitError(f"--inception-weights {inception_weights}: no such file")
    options = protocol.EvalOptions(
        inception_weights=str(inception_weights) if inception_weights else None,
        fid_method=fid_method, iw_samples=iw_samples)
    protocol.check_applicable(names, facts)
    names = _prepare_metrics(names, options, skip=default)
    _refuse_unused_iw_samples(names, iw_samples)
    run, model = load_model(run_path, best=best, device=device)
    _refuse_unused_iw_samples(names, iw_samples, model)
    values, described = protocol.evaluate_metrics(model, names, n, seed, options)
    result = ({"step": model.c.step} | ({"checkpoint": "best"} if best else {}) | values
              | {"protocol": described})
    if save:
        save_evaluation(run_path, result)
    return result


def _prepare_metrics(names: list[str], options, skip: bool) -> list[str]:
    """``names`` whose ``prepare`` finds what they need beyond the run (e.g. the Inception
    weights). A metric that lacks it stops the evaluation with its one-line GankitError,
    unless ``skip`` (the default set, which nobody chose metric by metric): then it is left
    out with one note saying which were skipped and why; GankitError when none is left."""
    from gankit.metrics import protocol

    kept, why = [], {}
    for name in names:
        try:
            protocol.metric(name).prepare(options)
        except GankitError as e:
            if not skip:
                raise
            why.setdefault(" ".join(str(e).split()), []).append(name)
        else:
            kept.append(name)
    if why:
        skipped = "; ".join(f"{', '.join(ns)}: {reason}" for reason, ns in why.items())
        if not kept:
            raise GankitError(f"no metric of the default set can run (skipped {skipped}); "
                              "pass --metrics to choose")
        note(f"skipped {skipped}; pass --metrics to choose")
    return kept


def _refuse_unused_iw_samples(names: list[str], iw_samples: int | None,
                              model: Model | None = None) -> None:
    """ConfigError when ``iw_samples`` is given but would change nothing: no metric of
    ``names`` scores a likelihood, or (given the loaded ``model``) its likelihood is not an
    importance-sampled estimate (its ``likelihood_protocol`` records no ``iw_samples``)."""
    from gankit.core import capabilities as caps
    from gankit.metrics import protocol
    from gankit.metrics.likelihood import importance_sampled

    if iw_samples is None:
        return
    if not any(caps.LIKELIHOOD in protocol.metric(n).needs for n in names):
        raise ConfigError(f"--iw-samples: none of the metrics {', '.join(names)} uses "
                          "importance samples (they are for nll of a model whose likelihood "
                          "is an estimate, e.g. a VAE)")
    if model is not None and not importance_sampled(model.objective):
        raise ConfigError(f"--iw-samples: the {model.cfg.objective.name} model's likelihood is "
                          "not an importance-sampled estimate, so importance samples would "
                          "change nothing")


def score(run_path: Path | str, inputs: list[str], **options: Any):
    """One anomaly score per image (higher = more anomalous) of the images of ``inputs``
    (folders, ``.npz`` files, built-in splits such as ``"mnist:test"``) by the trained run,
    with AUROC / AUPRC when the truth is known: :func:`gankit.outlier.score.score_images`
    (options ``outliers``, ``method``, ``background``, ``normal_classes``, ``resize``,
    ``iw_samples``, ``limit``, ``out``, ``device``). Returns its ``Scored`` result.
    GankitError (one line) for a method the model does not offer, images of another shape
    without ``resize``, and unreadable inputs."""
    from gankit.outlier.score import score_images
    return score_images(run_path, inputs, **options)


def save_evaluation(run_path: Path | str, result: dict[str, Any]) -> Path:
    """Write an ``evaluate`` result into the run folder as ``eval-[best-]STEP.json`` (strict
    JSON), or as ``eval-...-2.json``, ``-3``, ... when an earlier, different result holds
    that name (``gankit.outputs.keep_both``: nothing is overwritten); returns the path."""
    from gankit.outputs import keep_both

    run = RunDir.open(run_path)
    best = "best-" if result.get("checkpoint") == "best" else ""
    data = (json.dumps(result, allow_nan=False) + "\n").encode()
    return keep_both(run.path / f"eval-{best}{int(result['step']):08d}.json", data)


def _best_trainer(run: RunDir, run_path: Path, cfg: RunConfig) -> Trainer:
    state = _best_state(run, run_path)
    trainer = Trainer(cfg, run.checkpoints)
    trainer.load(state)
    return trainer


def _best_state(run: RunDir, run_path: Path | str) -> dict[str, Any]:
    """The state in ``checkpoints/best.safetensors``; CheckpointError when there is none."""
    from gankit.train.evaluation import BEST_NAME

    path = run.checkpoints / BEST_NAME
    if not path.exists():
        raise CheckpointError(f"{run_path} has no best checkpoint ({BEST_NAME} is kept when "
                              "training sets eval.best_metric)")
    return ckpt.load_checkpoint(path)


def resume(run_path: Path | str, steps: int | None = None, overrides: list[str] = (),
           live=None) -> RunDir:
    """Continue the run in ``run_path`` from its newest intact checkpoint, exactly as if it
    had never stopped; ``steps`` trains that many more steps; ``overrides`` (``key=value``)
    may change only run length, logging and evaluation (CheckpointError names other keys).
    ``live`` as for ``train``.

    The learning-rate schedules keep their end when the length changes (``resume_config``):
    a finished run extended continues at the rates its schedules ended with, as a run that
    never stopped would past its planned end; the rates it continues with are printed.
    GankitError when the run already finished its steps; ConfigError when the extension
    would run at learning rate 0 (a schedule decayed to 0 that ``train.schedule_steps``
    does not move)."""
    run = RunDir.open(run_path)
    done = 0
    if ckpt.list_checkpoints(run.checkpoints):
        done = int(ckpt.newest_intact(run.checkpoints)[1]["counters"]["step"])
    cfg = resume_config(run.read_config(), done, steps, overrides)
    tensorboard.wanted(cfg.log.tensorboard)
    with distributed.session(resolve_device(cfg.train.device)) as dist:
        run, trainer, skipped = load_trainer(run_path, cfg)
        for msg in skipped if dist.is_main else ():
            note(f"warning: skipped {msg}")       # a damaged checkpoint, left as it is
        if trainer.c.step >= cfg.train.steps:
            raise GankitError(f"{run_path} already finished {trainer.c.step} steps; "
                              "use --steps N to train N more")
        if dist.is_main:
            run.write_config(cfg)
            run.truncate_metrics(trainer.c.step)
            if load_data_info(run.path) is None:        # a run folder of an older gankit
                save_data_info(run.path, trainer.data.info)
        note(f"resuming {run.path} at step {trainer.c.step} of {cfg.train.steps}; "
             f"{rates_text(trainer)}")
        _fit(trainer, run, live=live)
    return run


def resume_config(saved: RunConfig, done: int, steps: int | None,
                  overrides: list[str] = ()) -> RunConfig:
    """The config a resume trains with: ``saved`` (the run folder's) with ``overrides``, and
    with ``steps`` more steps than the ``done`` ones when given.

    The rule for a run whose length changes: its schedules keep their end. When
    ``train.steps`` differs from the saved one, ``train.schedule_steps`` is pinned to the
    saved length (unless it was set already, or the overrides set it: ``=N`` moves the end
    to step N, ``=null`` spreads the schedules over the new length, the rate then jumping to
    where a run planned that long would be). ConfigError for invalid or non-resumable keys."""
    from gankit.config import apply_overrides, parse_override, validate

    raw = apply_overrides(saved.to_dict(), list(overrides))
    # saved: a resume keeps the run's data and objective (``incompatible_keys``), so what
    # new runs must not combine (``check_data``) does not strand a run that began before
    if not isinstance(raw.get("train"), dict):
        return validate(raw, saved=True)         # says what is wrong with it
    if steps is not None:
        raw["train"]["steps"] = done + steps
    given = any(parse_override(o)[0] == ["train", "schedule_steps"] for o in overrides)
    if raw["train"].get("steps") != saved.train.steps and not given \
            and saved.train.schedule_steps is None:
        raw["train"]["schedule_steps"] = saved.train.steps
    return validate(raw, saved=True)


def rates_text(trainer: Trainer) -> str:
    """'learning rate G 3e-05, D 3e-05 (the schedules ended at step 60; they stay at their
    final rates)': each phase's rate at the trainer's step."""
    rates = ", ".join(f"{ph} {trainer.lr(ph):.3g}" for ph in trainer.optims)
    end = trainer.cfg.train.schedule_end
    past = trainer.c.step >= end and any(o.schedule != "constant"
                                         for o in trainer.cfg.optim.values())
    return f"learning rate {rates}" + (f" (the schedules ended at step {end}; they stay at "
                                       "their final rates)" if past else "")


def _fit(trainer: Trainer, run: RunDir, until: int | None = None, live=None) -> None:
    """Train with the run's callbacks (and ``live``, a live view to attach, see
    ``gankit.live``); then, finished or stopped, ``report.html``."""
    callbacks = callbacks_for(run, trainer)
    if live is not None:
        live.attach(trainer, run.path)
    try:
        with graceful_interrupts(trainer):
            finished = trainer.fit(callbacks, until=until)
        paused = until is not None and trainer.c.step == until     # to be resumed
        if paused:
            trainer.save()
    finally:
        if live is not None:
            live.close()
        for cb in callbacks:                 # stopped early, on_end did not close them
            if hasattr(cb, "close"):
                cb.close()
    if trainer.dist.is_main:
        write_report_quietly(run.path, curves=trainer.cfg.log.figures)
    if not finished and not paused:
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
