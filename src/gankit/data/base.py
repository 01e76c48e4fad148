"""The data-source contract shared by toy distributions and image data sets.

The trainer only ever calls ``next_batch(n)``; a source owns its own random generator and
position so that a resumed run draws exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class DataInfo:
    """What networks and plots need to know about the data."""

    kind: str                       # "toy1d" | "toy2d" | "image" | "paired" | "unpaired" | "text"
    shape: tuple[int, ...]          # one sample, e.g. (2,) or (1, 28, 28)
    num_classes: int = 0            # 0 when unlabelled
    class_names: tuple[str, ...] = field(default_factory=tuple)


class DataSource(Protocol):
    info: DataInfo

    def next_batch(self, n: int) -> dict[str, torch.Tensor]:
        """A batch: ``{"x": float tensor}`` (images scaled to [-1, 1]) plus ``"y"`` (int64
        labels) when labelled; other keys (e.g. ``"a"``/``"b"``) for paired/unpaired sources."""

    def state_dict(self) -> dict[str, Any]:
        """Position and RNG state, as tensors or JSON-able values."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def generator_state(gen: torch.Generator) -> torch.Tensor:
    return gen.get_state().clone()


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
