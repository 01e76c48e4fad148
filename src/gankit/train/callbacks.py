"""Periodic work around training: logging, fixed-noise samples, checkpoints, evaluation."""

from __future__ import annotations

import time
from typing import Any

from tqdm.auto import tqdm

from gankit.run import RunDir
from gankit.train.trainer import Callback, Trainer, every


def sample_steps(step: int, at: list[int], period: int) -> bool:
    """The slides' schedule: after 1, 100, 1k, 2k, 5k, 10k updates, then every ``period``."""
    return step in at or (step > max(at, default=0) and every(step, period))


class MetricsLogger(Callback):
    """One JSON object per logged step in metrics.jsonl, means over the interval (and over
    the ranks: every rank takes part, rank 0 writes)."""

    all_ranks = True

    def __init__(self, run: RunDir):
        self.run = run
        self.t0 = time.perf_counter()
        self.elapsed0 = 0.0

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
        if trainer.dist.is_main:
            self.run.log(record | values)


class SampleGrids(Callback):
    """Fixed-noise samples at the slides' steps, through the data kind's view."""

    def __init__(self, run: RunDir, view):
        self.run, self.view = run, view

    def on_step(self, trainer):
        log = trainer.cfg.log
        if sample_steps(trainer.c.step, log.sample_at, log.sample_every):
            self.save(trainer)

    def on_end(self, trainer):
        self.save(trainer)

    def save(self, trainer):
        x = trainer.generate(trainer.fixed_inputs).float().cpu()
        self.view.save_samples(x, self.run.sub("samples") / f"step-{trainer.c.step:08d}.png",
                               trainer=trainer)


class Checkpointer(Callback):
    def __init__(self, every_n: int):
        self.every_n = every_n

    def on_step(self, trainer):
        if every(trainer.c.step, self.every_n):
            trainer.save()

    def on_end(self, trainer):
        trainer.save()


class ProgressBar(Callback):
    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def on_start(self, trainer):
        # disable=None: shown on a terminal, silent in CI logs
        self.bar = tqdm(total=trainer.cfg.train.steps, initial=trainer.c.step, unit="step",
                        disable=None if self.enabled else True, dynamic_ncols=True)

    def on_step(self, trainer):
        self.bar.update(1)

    def on_rollback(self, trainer):
        self.bar.reset(total=trainer.cfg.train.steps)
        self.bar.update(trainer.c.step)

    def on_end(self, trainer):
        self.bar.close()
