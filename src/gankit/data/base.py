"""The data-source contract shared by toy distributions and image data sets.

The trainer only ever calls ``next_batch(n)``; a source owns its own random generator and
position so that a resumed run draws exactly the batches the uninterrupted run would have.

Every registered source also offers ``heldout()``: a :class:`HeldOut` set of examples that
never appear in its training stream (a data set's other split, the files of a folder held out
by name, or fixed fresh draws of a toy distribution), for likelihoods and train-vs-test floors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from gankit.errors import DataError


@dataclass(frozen=True)
class DataInfo:
    """What networks and plots need to know about the data.

    A run keeps it in its folder (``gankit.train.model``), so that sampling, figures and
    metrics of generated samples need no data: ``to_state`` / ``from_state`` turn it into
    tensors and JSON-able values and back (subclasses included)."""

    kind: str                       # "toy1d" | "toy2d" | "image" | "paired" | "unpaired" | "text"
    shape: tuple[int, ...]          # one sample, e.g. (2,) or (1, 28, 28)
    num_classes: int = 0            # 0 when unlabelled
    class_names: tuple[str, ...] = field(default_factory=tuple)
    # semi-supervised sources: labelled examples served beside the unlabelled stream as
    # "x_lab"/"y_lab" in every batch (0: none; see gankit.data.images.SemiSupervisedSource)
    labelled: int = 0

    def to_state(self) -> dict[str, Any]:
        """``{"type": class name, field: value}``: tuples as lists, tensors as they are."""
        state: dict[str, Any] = {"type": type(self).__name__}
        for f in fields(self):
            value = getattr(self, f.name)
            state[f.name] = list(value) if isinstance(value, tuple) else value
        return state

    @staticmethod
    def from_state(state: dict[str, Any]) -> "DataInfo":
        """The info ``to_state`` described, of its class (DataInfo or a subclass, imported
        already, e.g. by the data set's module). DataError for an unknown class."""
        kind = {c.__name__: c for c in _subclasses(DataInfo)}.get(state.get("type"))
        if kind is None:
            raise DataError(f"unknown data description {state.get('type')!r}")
        return kind(**kind.decode({f.name: state[f.name] for f in fields(kind)
                                   if f.name in state}))

    @classmethod
    def decode(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Field values of a ``to_state`` back as the fields hold them (lists -> tuples)."""
        return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _subclasses(cls: type) -> list[type]:
    return [cls] + [s for sub in cls.__subclasses__() for s in _subclasses(sub)]


class DataSource(Protocol):
    info: DataInfo

    def next_batch(self, n: int) -> dict[str, torch.Tensor]:
        """A batch: ``{"x": float tensor}`` (images scaled to [-1, 1]) plus ``"y"`` (int64
        labels) when labelled; other keys (e.g. ``"a"``/``"b"``) for paired/unpaired sources."""

    def state_dict(self) -> dict[str, Any]:
        """Position and RNG state, as tensors or JSON-able values."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def heldout(self) -> "HeldOut":
        """Examples never drawn by ``next_batch``; raises DataError (one line) when the source
        holds none (e.g. an image folder with ``holdout: 0``)."""


def generator_state(gen: torch.Generator) -> torch.Tensor:
    return gen.get_state().clone()


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator seeded with ``seed``; one outside what torch takes
    ([-2**63, 2**64 - 1]) modulo 2**64, so a seed derived as ``seed + k`` never fails."""
    seed = int(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed if -2**63 <= seed < 2**64 else seed % 2**64)
    return gen


def draw_indices(size: int, n: int, seed: int) -> Tensor:
    """(n,) int64 indices into ``range(size)`` from their own stream ``seed``: distinct while
    ``n <= size``, drawn with replacement beyond."""
    gen = make_generator(seed)
    if n <= size:
        return torch.randperm(size, generator=gen)[:n]
    return torch.randint(size, (n,), generator=gen)


def take_rows(array: Tensor | np.ndarray, idx: Tensor) -> Tensor:
    """``array[idx]`` as a tensor on the array's device; a numpy memmap reads only those rows
    (fancy indexing copies them, so the result is writable)."""
    if isinstance(array, np.ndarray):
        return torch.from_numpy(np.asarray(array[idx.cpu().numpy()]))
    return array[idx.to(array.device)]


class HeldOut:
    """A fixed set of examples a source never trains on, for likelihoods and test floors.

    ``columns`` maps batch keys to row-aligned arrays kept on the host (tensors or numpy
    memmaps): ``{"x": images or points}`` plus ``"y"`` (int64 labels) for labelled sources,
    ``{"a": ..., "b": ...}`` for translation sources. Every column but ``"y"`` goes through
    ``transform`` (e.g. uint8 -> float in [-1, 1], a centre crop) after being moved to
    ``device``. ``sample`` draws from column ``sample_key``, the column a source's own
    ``sample`` draws from. Columns have equal lengths, except the two domains of an unpaired
    translation set.
    """

    def __init__(self, description: str, columns: dict[str, Tensor | np.ndarray], *,
                 sample_key: str = "x", transform: Callable[[Tensor], Tensor] | None = None,
                 device: str | torch.device = "cpu") -> None:
        if sample_key not in columns:
            raise ValueError(f"sample_key {sample_key!r} is not one of {sorted(columns)}")
        self.description = description
        self._columns = columns
        self._sample_key = sample_key
        self._transform = transform
        self._device = torch.device(device)
        if len(self) == 0:
            raise DataError(f"the held-out set is empty: {description}")

    def __len__(self) -> int:
        """Number of examples (of the ``sample_key`` column)."""
        return int(self._columns[self._sample_key].shape[0])

    def __repr__(self) -> str:
        return f"HeldOut({self.description!r})"

    def _rows(self, key: str, idx: Tensor) -> Tensor:
        rows = take_rows(self._columns[key], idx).to(self._device)
        return rows if key == "y" or self._transform is None else self._transform(rows)

    def sample(self, n: int, seed: int) -> Tensor:
        """``n`` examples from stream ``seed`` (distinct while ``n <= len``), in the format of
        the source's own ``sample``: images (n, C, H, W) in [-1, 1] (domain B for translation
        sets), toy points (n, d)."""
        if n < 0:
            raise DataError(f"cannot sample {n} held-out examples")
        return self._rows(self._sample_key, draw_indices(len(self), n, seed))

    def batches(self, batch_size: int) -> Iterator[dict[str, Tensor]]:
        """The whole set once, in its fixed stored order, as ``{key: (m, ...)}`` with
        ``m <= batch_size`` rows (only the last batch is short): ``{"x"}`` (+ ``"y"``) or
        ``{"a", "b"}`` like the source's ``next_batch``, unflipped. For an unpaired translation
        set each domain is walked once; the shorter one runs out first (then gives 0 rows).
        Raises DataError at once for a batch size below 1."""
        if batch_size <= 0:
            raise DataError(f"batch size must be positive, got {batch_size}")
        sizes = {key: int(col.shape[0]) for key, col in self._columns.items()}

        def walk() -> Iterator[dict[str, Tensor]]:
            for start in range(0, max(sizes.values()), batch_size):
                yield {key: self._rows(key, torch.arange(min(start, size),
                                                         min(start + batch_size, size)))
                       for key, size in sizes.items()}
        return walk()


def lazy_heldout(load: Callable[[], HeldOut] | None,
                 missing: str = "this source holds no held-out data") -> Callable[[], HeldOut]:
    """What a source's ``heldout()`` calls: ``load`` run once, on first use (so building a
    source costs nothing extra), its result kept; without ``load``, a DataError ``missing``.
    A failed load (e.g. an absent file) is retried on the next call."""
    if load is None:
        def refuse() -> HeldOut:
            raise DataError(missing)
        return refuse
    kept: list[HeldOut] = []

    def once() -> HeldOut:
        if not kept:
            kept.append(load())
        return kept[0]
    return once
