"""Periodic work around training: logging, fixed-noise samples, checkpoints, evaluation."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from tqdm.auto import tqdm

from gankit.core import capabilities as caps
from gankit.run import RunDir
from gankit.train.trainer import Callback, Trainer, every


def sample_steps(step: int, at: list[int], period: int) -> bool:
    """The slides' schedule: after 1, 100, 1k, 2k, 5k, 10k updates, then every ``period``."""
    return step in at or (step > max(at, default=0) and every(step, period))


class MetricsLogger(Callback):
    """One JSON object per logged step in metrics.jsonl, means over the interval (and over
    the ranks: every rank takes part, rank 0 writes)."""

    all_ranks = True

    def __init__(self, run: RunDir, sinks: list = ()):
        self.run = run
        self.sinks = list(sinks)             # more places for each record (TensorBoard)
        self.t0 = time.perf_counter()
        self.elapsed0 = 0.0
        self.last: dict[str, Any] = {}       # the newest record (progress shows its losses)

    def on_start(self, trainer):
        self.elapsed0 = trainer.c.extra.get("seconds", 0.0)
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t0

    def on_step(self, trainer):
        if every(trainer.c.step, trainer.cfg.log.every) or trainer.c.step == trainer.cfg.train.steps:
            self.write(trainer, trainer.pop_scalars())

    def write(self, trainer: Trainer, values: dict[str, Any]) -> None:
        trainer.c.extra["seconds"] = self.seconds()
        record = {"step": trainer.c.step, "images_seen": trainer.c.images_seen,
                  "seconds": round(self.seconds(), 3)}
        for name, ph in ((p.name, p) for p in trainer.phases):
            record[f"lr/{name}"] = trainer.optims[name].param_groups[0]["lr"]
        if trainer.c.bad_total:
            record["skipped_updates"] = trainer.c.bad_total
        self.last = self.last | record | values
        if trainer.dist.is_main:
            self.run.log(record | values)
            for sink in self.sinks:
                sink.scalars(trainer.c.step, record | values)


class SampleGrids(Callback):
    """Fixed-noise samples at the slides' steps, through the data kind's view (with each
    image's label for class-conditional models); a view with a ``snapshot(trainer, folder)``
    method also keeps its data of that step under ``snapshots/`` (e.g. the 1-D strip).
    ``sinks`` get each picture too (``sink.image(tag, path, step)``: TensorBoard)."""

    def __init__(self, run: RunDir, view, sinks: list = ()):
        self.run, self.view, self.sinks = run, view, list(sinks)

    def on_step(self, trainer):
        log = trainer.cfg.log
        if sample_steps(trainer.c.step, log.sample_at, log.sample_every):
            self.save(trainer)

    def on_end(self, trainer):
        self.save(trainer)

    def save(self, trainer):
        inputs = trainer.fixed_inputs
        x = trainer.generate(inputs).float().cpu()
        path = self.run.sub("samples") / f"step-{trainer.c.step:08d}.png"
        if caps.LABELS in trainer.objective.offers:         # the grid says each image's class
            self.view.save_samples(x, path, trainer=trainer, labels=inputs["y"].cpu())
        else:
            self.view.save_samples(x, path, trainer=trainer)
        for sink in self.sinks:
            sink.image("samples", path, trainer.c.step)
        snapshot = getattr(self.view, "snapshot", None)     # a view's data for later figures
        if snapshot is not None:
            snapshot(trainer, self.run.sub("snapshots"))


class Checkpointer(Callback):
    def __init__(self, every_n: int):
        self.every_n = every_n

    def on_step(self, trainer):
        if every(trainer.c.step, self.every_n):
            trainer.save()

    def on_end(self, trainer):
        trainer.save()


def short(value: Any) -> str:
    """4 significant digits for floats (progress and summaries), as is otherwise."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)


def loss_text(record: dict[str, Any]) -> str:
    """'loss/D 1.234  loss/G 0.5678' from a metrics record."""
    return "  ".join(f"{k} {short(v)}" for k, v in record.items() if k.startswith("loss/"))


class ProgressBar(Callback):
    """Progress with the latest logged losses: a tqdm bar on a terminal; elsewhere (a pipe,
    nohup, a notebook's captured output) one line on stdout every ``seconds``."""

    def __init__(self, enabled: bool, logger: MetricsLogger | None = None,
                 seconds: float = 10.0, stream=None):
        self.enabled, self.logger, self.seconds = enabled, logger, seconds
        self.stream = stream or sys.stdout
        self.bar, self.next_line, self.t0, self.step0 = None, 0.0, 0.0, 0

    def on_start(self, trainer):
        self.t0, self.step0 = time.perf_counter(), trainer.c.step
        self.next_line = self.t0 + self.seconds
        if self.enabled and sys.stderr.isatty():
            self.bar = tqdm(total=trainer.cfg.train.steps, initial=trainer.c.step, unit="step",
                            dynamic_ncols=True)

    def losses(self) -> str:
        return loss_text(self.logger.last) if self.logger else ""

    def on_step(self, trainer):
        if self.bar is not None:
            self.bar.update(1)
            if self.logger and self.logger.last.get("step") == trainer.c.step:
                self.bar.set_postfix_str(self.losses(), refresh=False)
        elif self.enabled and time.perf_counter() >= self.next_line:
            self.next_line = time.perf_counter() + self.seconds
            self.line(trainer)

    def line(self, trainer) -> None:
        step, total = trainer.c.step, trainer.cfg.train.steps
        elapsed = time.perf_counter() - self.t0
        rate = (step - self.step0) / elapsed if elapsed > 0 else 0.0
        eta = (total - step) / rate if rate > 0 else float("nan")
        print(f"step {step}/{total} ({100 * step / total:.0f}%)  {rate:.1f} steps/s  "
              f"eta {format_seconds(eta)}  {self.losses()}".rstrip(), file=self.stream,
              flush=True)

    def on_rollback(self, trainer):
        if self.bar is not None:
            self.bar.reset(total=trainer.cfg.train.steps)
            self.bar.update(trainer.c.step)

    def on_end(self, trainer):
        if self.bar is not None:
            self.bar.close()


def format_seconds(s: float) -> str:
    """'1h02m', '3m20s', '45s' ('?' when unknown)."""
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
