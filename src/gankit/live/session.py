"""A live view attached to one training run: the server and the trainer's control hook."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from gankit.errors import ConfigError
from gankit.live.control import LiveControl
from gankit.live.frames import KINDS
from gankit.live.server import LiveServer


def check_kind(kind: str) -> None:
    """ConfigError (one line) unless the page can draw data of ``kind``."""
    if kind not in KINDS:
        raise ConfigError(f"--live draws {', '.join(KINDS)} runs; this run has {kind} data")


class Live:
    """What ``api.train(..., live=Live(port))`` attaches to the trainer once the run folder
    exists: a ``LiveServer`` on 127.0.0.1:``port`` (0: a free one) serving that folder, and a
    ``LiveControl`` set as ``trainer.control``. ``on_url(url)`` is told the page's address
    (the CLI prints it). ``close`` stops the server and detaches the control."""

    def __init__(self, port: int = 0, on_url: Callable[[str], None] = print,
                 paused: bool = False):
        self.port, self.on_url, self.paused = port, on_url, paused
        self.server: LiveServer | None = None
        self.control: LiveControl | None = None
        self.trainer = None

    def attach(self, trainer, run_path: Path) -> str:
        """Start serving the run in ``run_path`` and take control of ``trainer``; returns the
        URL. ConfigError for data the page cannot draw; GankitError when the port is taken."""
        check_kind(trainer.data.info.kind)
        self.server = LiveServer(run_path, self.port)
        self.control = LiveControl(self.server.publish, run_path, paused=self.paused,
                                   watched=lambda: bool(self.server.clients))
        self.server.control = self.control
        url = self.server.start()
        trainer.control, self.trainer = self.control, trainer
        self.on_url(url)
        return url

    def close(self) -> None:
        if self.trainer is not None:
            self.trainer.control = None
        if self.server is not None:
            self.server.close()
