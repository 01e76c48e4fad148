"""TensorBoard event files beside ``metrics.jsonl``: every logged scalar, the sample pictures
and the resolved config as text, through ``torch.utils.tensorboard.SummaryWriter`` (which
needs the ``tensorboard`` package: ``pip install gankit[tensorboard]``).

``log.tensorboard``: "auto" writes them when the package is installed and is silently off
otherwise; true requires it (GankitError, one line, before the run folder is made); false
never writes them. ``tensorboard --logdir runs/`` then shows every run by its folder name.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gankit.errors import GankitError
from gankit.run import COUNTERS
from gankit.train.trainer import Callback

INSTALL = "pip install 'gankit[tensorboard]'"


def installed() -> bool:
    """True when the ``tensorboard`` package (SummaryWriter's back end) can be imported."""
    return importlib.util.find_spec("tensorboard") is not None


def wanted(setting: str | bool) -> bool:
    """Whether a run with ``log.tensorboard = setting`` writes event files; GankitError when
    it is true and the package is missing."""
    if setting is True and not installed():
        raise GankitError(f"log.tensorboard=true needs the tensorboard package ({INSTALL}); "
                          "or set log.tensorboard=auto")
    return setting is True or (setting == "auto" and installed())


class TensorBoardLog(Callback):
    """Writes what ``MetricsLogger`` logs (``scalars``), the sample pictures ``SampleGrids``
    saves (``image``) and, at the start, the resolved config as text. A resumed run purges
    the events after its checkpoint's step, which it is about to log again."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.writer = None

    def on_start(self, trainer):
        from torch.utils.tensorboard import SummaryWriter

        step = trainer.c.step
        self.writer = SummaryWriter(str(self.folder), purge_step=step + 1 if step else None)
        text = yaml.safe_dump(trainer.cfg.to_dict(), sort_keys=False)
        # indented four spaces: TensorBoard renders text as Markdown, this as a code block
        self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()),
                             step)

    def scalars(self, step: int, values: dict[str, Any]) -> None:
        """One point per numeric value of a ``metrics.jsonl`` record (not the counters)."""
        if self.writer is None:
            return
        for key, value in values.items():
            if key not in COUNTERS and isinstance(value, (int, float)) \
                    and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)

    def image(self, tag: str, path: Path, step: int) -> None:
        """A saved picture (PNG), as TensorBoard shows images (H, W, 3 uint8); nothing when
        the view saved no file there."""
        from PIL import Image

        if self.writer is None or not Path(path).is_file():
            return
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        self.writer.add_image(tag, pixels, step, dataformats="HWC")

    def on_end(self, trainer):
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
