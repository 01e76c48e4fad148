"""The live view's hold on the trainer: commands from the page, applied between steps.

``LiveControl`` is the object ``Trainer.control`` polls before every step (``poll``). Commands
arrive from the server's thread (``submit``) into a queue; ``poll`` runs in the trainer's
thread, so networks, optimizers and the config only ever change between two steps, in the
thread that trains. Changes of the game go through the normal config path: the command
becomes a ``key=value`` override, ``gankit.config.validate`` checks the whole config (its
objective from the registry), and ``Trainer.reconfigure`` takes it (fresh optimizers for a new
objective, see there). The run's ``config.yaml`` is rewritten after each change, so that
``gankit resume`` continues with the game the run was left in.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union

import torch
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gankit.config import apply_overrides, validate
from gankit.data.toy import Drawn
from gankit.errors import GankitError
from gankit.live.frames import FrameMaker
from gankit.registry import OBJECTIVES
from gankit.run import RunDir

MAX_POINTS = 500           # drawn target points
FRAME_SECONDS = 0.2        # at most ~5 frames a second while training runs freely
METRIC_SECONDS = 1.0       # mode metrics at most once a second
WAIT = 0.1                 # while paused: how often the stop flag is looked at


class _Cmd(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Play(_Cmd):
    cmd: Literal["play"]


class Pause(_Cmd):
    cmd: Literal["pause"]


class Step(_Cmd):
    cmd: Literal["step"]
    phase: str = Field(max_length=16)         # "D" or "G": one update of that phase


class Slow(_Cmd):
    cmd: Literal["slow"]
    seconds: float = Field(ge=0, le=5)        # pause between steps (slow motion)


class LearningRate(_Cmd):
    cmd: Literal["lr"]
    phase: str = Field(max_length=16)
    value: float = Field(gt=0, le=10)


class K(_Cmd):
    cmd: Literal["k"]
    value: int = Field(ge=1, le=100)          # train.d_steps


class Objective(_Cmd):
    cmd: Literal["objective"]
    name: str = Field(max_length=32)


Point = Annotated[list[Annotated[float, Field(ge=-1e4, le=1e4)]], Field(min_length=1,
                                                                        max_length=2)]


class Draw(_Cmd):
    cmd: Literal["draw"]
    points: list[Point] = Field(min_length=1, max_length=MAX_POINTS)
    std: float = Field(0.05, gt=0, le=100)


class ResetData(_Cmd):
    cmd: Literal["reset_data"]


Command = Annotated[Union[Play, Pause, Step, Slow, LearningRate, K, Objective, Draw, ResetData],
                    Field(discriminator="cmd")]
COMMAND = TypeAdapter(Command)


def parse_command(text: str) -> BaseModel:
    """A command from a page message (JSON); GankitError (one line) for anything else."""
    try:
        return COMMAND.validate_json(text)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GankitError(f"bad command: {where}: {first['msg']}") from None


class LiveControl:
    """Pause, single updates, slow motion and changes of the game, between steps.

    ``publish(message: dict)`` sends a message to every page (the server's); ``watched()``
    says whether any page is open (frames are computed only then); ``run`` is the run folder
    (its ``config.yaml`` follows changes of the game). Counts ``updates`` per phase (k D
    updates and one G update per step, plus single updates)."""

    def __init__(self, publish: Callable[[dict], None], run: Path | None = None,
                 paused: bool = False, watched: Callable[[], bool] = lambda: True):
        self.publish, self.watched = publish, watched
        self.run = RunDir(run) if run is not None else None
        self.paused = paused
        self.slow = 0.0
        self.commands: queue.SimpleQueue = queue.SimpleQueue()
        self.wake = threading.Event()
        self.updates: dict[str, int] = {}
        self.objectives: list[str] = []
        self.maker: FrameMaker | None = None
        self.original_data: Any = None
        self.last: dict[str, Any] = {}             # the newest frame (pages that connect)
        self._seen_step = None
        self._next_frame = self._next_metrics = 0.0

    # ---- from the server's thread ------------------------------------------------------
    def submit(self, command: BaseModel) -> None:
        """Queue a parsed command for the next ``poll`` (thread-safe)."""
        self.commands.put(command)
        self.wake.set()

    # ---- in the trainer's thread -------------------------------------------------------
    def poll(self, trainer) -> None:
        """Called by ``Trainer.fit`` before every step: apply queued commands, publish a
        frame now and then, and hold the step while paused or in slow motion (returns at
        once when the trainer is asked to stop)."""
        if self.maker is None:
            self._start(trainer)
        self._count(trainer)
        deadline = time.monotonic() + self.slow
        changed = False
        while True:
            changed |= self._apply_all(trainer)
            now = time.monotonic()
            if (changed or now >= self._next_frame or self.slow) and self.watched():
                self.send_frame(trainer)
                changed = False
            if trainer.stop_reason or trainer.early_stop:
                return
            if not self.paused and now >= deadline:
                return
            self.wake.wait(WAIT if self.paused else min(WAIT, max(0.0, deadline - now)))
            self.wake.clear()

    def _start(self, trainer) -> None:
        self.maker = FrameMaker(trainer)
        self.original_data = trainer.data
        self.objectives = switchable_objectives(trainer)
        self._seen_step = trainer.c.step
        self.updates = {p.name: trainer.c.step * p.repeats for p in trainer.phases}

    def _count(self, trainer) -> None:
        """Updates done by the full steps since the last poll (k per D phase, 1 per G)."""
        done, self._seen_step = trainer.c.step - self._seen_step, trainer.c.step
        for p in trainer.phases:
            self.updates[p.name] = self.updates.get(p.name, 0) + done * p.repeats

    def _apply_all(self, trainer) -> bool:
        changed = False
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return changed
            try:
                changed |= self.apply(trainer, command)
            except GankitError as e:
                self.publish({"type": "error", "message": " ".join(str(e).split())})
                changed = True

    def apply(self, trainer, command: BaseModel) -> bool:
        """Apply one command; True when the picture changed. GankitError (one line) for a
        command the run cannot take (e.g. an objective that needs other networks)."""
        if isinstance(command, (Play, Pause)):
            self.paused = isinstance(command, Pause)
        elif isinstance(command, Slow):
            self.slow = command.seconds
        elif isinstance(command, Step):
            trainer.phase_update(command.phase)
            self.updates[command.phase] = self.updates.get(command.phase, 0) + 1
        elif isinstance(command, LearningRate):
            if command.phase not in trainer.cfg.optim:
                raise GankitError(f"no phase {command.phase!r} to set a learning rate of")
            self.reconfigure(trainer, f"optim.{command.phase}.lr={command.value:.6e}")
        elif isinstance(command, K):
            self.reconfigure(trainer, f"train.d_steps={command.value}")
        elif isinstance(command, Objective):
            if command.name not in self.objectives:
                raise GankitError(f"objective {command.name!r} cannot take over this run; "
                                  f"choose one of: {', '.join(self.objectives)}")
            self.reconfigure(trainer, f"objective={command.name}")
            self.maker = FrameMaker(trainer)     # the new objective's own inputs
        elif isinstance(command, Draw):
            self.draw(trainer, command)
        elif isinstance(command, ResetData):
            trainer.data = self.original_data
        return True

    def reconfigure(self, trainer, override: str) -> None:
        """The run's config with one ``key=value`` override, validated as any config is,
        taken by the trainer from the next step on; ``config.yaml`` follows."""
        cfg = validate(apply_overrides(trainer.cfg.to_dict(), [override]))
        trainer.reconfigure(cfg)
        if self.run is not None:
            self.run.write_config(cfg)

    def draw(self, trainer, command: Draw) -> None:
        """Train on the drawn points from the next step (``gankit.data.toy.Drawn``)."""
        dim = trainer.data.info.shape[0] if len(trainer.data.info.shape) == 1 else 0
        if trainer.data.info.kind not in ("toy1d", "toy2d") or \
                any(len(p) != dim for p in command.points):
            raise GankitError(f"a drawn target needs points of {dim or 'a toy run'}'s "
                              f"dimension ({trainer.data.info.kind} data)")
        points = torch.tensor(command.points, dtype=torch.float32)
        trainer.data = Drawn(points, command.std, self.original_data.bounds,
                             seed=trainer.cfg.seed, device=trainer.device)

    def send_frame(self, trainer) -> None:
        """Publish the current picture and counters (the newest is kept for new pages)."""
        now = time.monotonic()
        metrics = now >= self._next_metrics
        frame = self.maker.frame(trainer, metrics=metrics)
        if metrics:
            self._next_metrics = now + METRIC_SECONDS
        self._next_frame = now + FRAME_SECONDS
        frame |= self.state(trainer)
        self.last = frame
        self.publish(frame)

    def state(self, trainer) -> dict[str, Any]:
        """Counters and settings shown beside the picture."""
        self._count(trainer)
        return {"type": "frame", "step": trainer.c.step, "steps": trainer.cfg.train.steps,
                "images_seen": trainer.c.images_seen, "updates": dict(self.updates),
                "paused": self.paused, "slow": self.slow,
                "objective": trainer.cfg.objective.name, "objectives": self.objectives,
                "lr": {n: o.lr for n, o in trainer.cfg.optim.items()},
                "k": trainer.cfg.train.d_steps, "phases": [p.name for p in trainer.phases],
                "drawn": trainer.data is not self.original_data}


def switchable_objectives(trainer) -> list[str]:
    """Registered objectives the run can switch to: the config with ``objective=NAME``
    validates (data kind, phases, options) and asks for networks of the run's shapes."""
    names = []
    for name in OBJECTIVES.names():
        try:
            cfg = validate(apply_overrides(trainer.cfg.to_dict(), [f"objective={name}"]))
            trainer.game_roles(cfg)
        except GankitError:
            continue
        names.append(name)
    return names


def dumps(message: dict) -> str:
    """A message as compact JSON (no NaN: frames hold None instead)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)
