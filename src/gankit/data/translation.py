"""Two-domain image data for image-to-image translation (CycleGAN, pix2pix).

A translation source yields batches ``{"a": (n, C_a, S, S), "b": (n, C_b, S, S)}`` in [-1, 1].
*Unpaired* sources (``DataInfo.kind == "unpaired"``) shuffle the two domains independently;
*paired* ones keep ``a[i]`` and ``b[i]`` views of the same scene, flipped and cropped together.
Images are decoded once at ``load_size`` and randomly cropped to ``size`` per batch (CycleGAN /
pix2pix jitter: 286 -> 256), optionally flipped. A few held-out pairs travel in the
``TranslationInfo`` as fixed examples for sample pages and ``gankit sample``.

``heldout()`` is a source's whole held-out set (centre-cropped, never flipped): the demos' other
MNIST split; a folder's ``test`` sub-folders when they exist, otherwise the ``holdout`` share of
its training files chosen by file name (:func:`gankit.data.folder.split_by_path`), which the
training set then excludes.

Layouts, as in the reference implementations:
  * unpaired folders: ``trainA/ trainB/`` (and optionally ``testA/ testB/``) under one root;
  * paired folders: side-by-side ``A|B`` images (``train/``, ``test/`` or ``val/`` sub-folders,
    or images straight in the root), or ``A/`` and ``B/`` folders whose files share names
    (each optionally split into ``train/`` and ``test/``).

Built-in demos made from local MNIST / Fashion-MNIST files, no download beyond those:
  * ``mnist-strokes`` (unpaired): MNIST split into two disjoint halves, one thinned by a
    (soft) morphological erosion, the other made bold by a dilation;
  * ``fashion-edges`` (paired): Fashion-MNIST items and their thresholded Sobel edge maps.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from gankit.data import decode
from gankit.data import folder as folder_mod
from gankit.data.base import DataInfo, HeldOut, generator_state, lazy_heldout, make_generator
from gankit.data.folder import DEFAULT_HOLDOUT, MAX_HOLDOUT, percent, split_by_path
from gankit.data.images import ImageTensorSource, fit_size, other_split, uint8_to_unit
from gankit.errors import DataError
from gankit.params import Channels, Params, PathStr

SPLIT_SEED = 0   # the demo domains are a property of the data set, not of the run's seed


@dataclass(frozen=True)
class TranslationInfo(DataInfo):
    """DataInfo of two domains: ``shape`` is domain A's, ``shape_b`` domain B's; a few fixed
    held-out examples (float in [-1, 1], CPU) for sample pictures."""

    shape_b: tuple[int, ...] = ()
    examples_a: Tensor | None = field(default=None, compare=False, repr=False)
    examples_b: Tensor | None = field(default=None, compare=False, repr=False)

    def to_state(self) -> dict[str, Any]:
        """As ``DataInfo.to_state``, the examples as uint8 (they were decoded from uint8
        images, so ``decode`` restores them exactly, at a quarter of the size)."""
        state = super().to_state()
        for key in ("examples_a", "examples_b"):
            if state[key] is not None:
                state[key] = ((state[key].float() + 1) * 127.5).round().clamp(0, 255).to(
                    torch.uint8)
        return state

    @classmethod
    def decode(cls, values: dict[str, Any]) -> dict[str, Any]:
        values = super().decode(values)
        for key in ("examples_a", "examples_b"):
            if values.get(key) is not None:
                values[key] = to_float(values[key])
        return values


# ---------------------------------------------------------------- pure image maths
def _plus_neighbours(x: Tensor) -> Tensor:
    """(5, N, C, H, W): each pixel and its 4-neighbours (zero = black outside the image)."""
    p = F.pad(x, (1, 1, 1, 1))
    return torch.stack([p[..., 1:-1, 1:-1], p[..., :-2, 1:-1], p[..., 2:, 1:-1],
                        p[..., 1:-1, :-2], p[..., 1:-1, 2:]])


def erode(x: Tensor, iterations: int = 1, softness: float = 0.0) -> Tensor:
    """Grayscale erosion by a plus-shaped 3x3 structuring element whose four arms lie
    ``softness`` below its centre: out = min(x, min over the 4-neighbours of x + softness).

    ``softness=0`` is the flat erosion (each pixel becomes the minimum of itself and its
    4-neighbours), which thins bright strokes by a pixel per side; a positive softness lowers
    a pixel at most to its darkest neighbour plus ``softness``, so strokes thin without
    breaking (images in 0..255)."""
    for _ in range(iterations):
        nb = _plus_neighbours(x)                              # (5, N, C, H, W)
        x = torch.minimum(nb[0], nb[1:].amin(0) + softness)
    return x


def dilate(x: Tensor, iterations: int = 1) -> Tensor:
    """Grayscale dilation by the flat plus-shaped element: strokes grow a pixel per side."""
    for _ in range(iterations):
        x = _plus_neighbours(x).amax(0)
    return x


def sobel_magnitude(x: Tensor) -> Tensor:
    """|grad x| by the 3x3 Sobel operator on (N, C, H, W) floats, replicate-padded.

    Written as shifted sums (the kernels are separable: [1, 2, 1] smoothing times a [1, 0, -1]
    difference); a 1-channel conv2d over 60k small images is many times slower on a CPU."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")            # (N, C, H + 2, W + 2)
    smooth_v = p[..., :-2, :] + 2 * p[..., 1:-1, :] + p[..., 2:, :]   # (N, C, H, W + 2)
    smooth_h = p[..., :, :-2] + 2 * p[..., :, 1:-1] + p[..., :, 2:]   # (N, C, H + 2, W)
    gx = smooth_v[..., :, :-2] - smooth_v[..., :, 2:]        # left minus right column
    gy = smooth_h[..., :-2, :] - smooth_h[..., 2:, :]        # top minus bottom row
    return torch.sqrt(gx.square() + gy.square())


def edge_map(images: Tensor, threshold: float = 1.0) -> Tensor:
    """uint8 (N, 1, H, W) -> binary uint8 edge maps (255 on edges) where the Sobel gradient
    of the [0, 1] image exceeds ``threshold`` (max possible 4 * sqrt(2))."""
    return chunked(lambda x: (sobel_magnitude(x.float() / 255) > threshold).to(torch.uint8) * 255,
                   images)


def chunked(fn, images: Tensor, chunk: int = 8192) -> Tensor:
    """``fn`` over a uint8 image array in chunks: float temporaries of a 60k-image set would
    take a few GB at once."""
    return torch.cat([fn(images[i:i + chunk]) for i in range(0, len(images), chunk)])


def split_halves(n: int, seed: int = SPLIT_SEED) -> tuple[Tensor, Tensor]:
    """Two disjoint random halves of range(n), each sorted."""
    perm = torch.randperm(n, generator=make_generator(seed))
    return perm[: n // 2].sort().values, perm[n // 2:].sort().values


def center_crop(x: Tensor, size: int) -> Tensor:
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def random_crop(x: Tensor, size: int, gen: torch.Generator) -> Tensor:
    """A different ``size`` x ``size`` window of each image of (n, C, H, W)."""
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    top = torch.randint(h - size + 1, (n,), generator=gen).to(x.device)
    left = torch.randint(w - size + 1, (n,), generator=gen).to(x.device)
    ar = torch.arange(size, device=x.device)
    rows = (top[:, None] + ar)[:, None, :, None]             # (n, 1, size, 1)
    cols = (left[:, None] + ar)[:, None, None, :]            # (n, 1, 1, size)
    idx_n = torch.arange(n, device=x.device)[:, None, None, None]
    idx_c = torch.arange(c, device=x.device)[None, :, None, None]
    return x[idx_n, idx_c, rows, cols]                       # (n, C, size, size)


def to_float(images: Tensor | np.ndarray) -> Tensor:
    """uint8 images -> float in [-1, 1]."""
    return torch.as_tensor(np.asarray(images)).float() / 127.5 - 1


# ---------------------------------------------------------------- the source
class TranslationSource:
    """A resumable DataSource of two image domains (see the module docstring)."""

    def __init__(self, a: Tensor | np.ndarray, b: Tensor | np.ndarray, *, paired: bool,
                 seed: int, device: str | torch.device = "cpu", flip: bool = False,
                 size: int | None = None, examples: tuple[Tensor, Tensor] | None = None,
                 heldout: Callable[[], HeldOut] | None = None):
        self.paired, self.device = paired, torch.device(device)
        self.channels_a = int(a.shape[1])
        side = min(int(a.shape[2]), int(a.shape[3]), int(b.shape[2]), int(b.shape[3]))
        self.size = size or side
        if self.size > side:
            raise DataError(f"crop size {self.size} is larger than the images ({side} px)")
        if paired:
            if len(a) != len(b) or tuple(a.shape[2:]) != tuple(b.shape[2:]):
                raise DataError(f"paired domains differ: {tuple(a.shape)} vs {tuple(b.shape)}")
            both = torch.cat([torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))], 1)
            self._sources = {"ab": ImageTensorSource(both, seed=seed, flip=flip, device=device)}
        else:   # independent shuffles: no pairing is ever implied
            self._sources = {"a": ImageTensorSource(a, seed=seed, flip=flip, device=device),
                             "b": ImageTensorSource(b, seed=seed + 1_000_003, flip=flip,
                                                    device=device)}
        self._crop_gen = make_generator(seed + 2_000_003)
        shape_a = (self.channels_a, self.size, self.size)
        shape_b = (int(b.shape[1]), self.size, self.size)
        ex_a, ex_b = examples if examples is not None else (None, None)
        self.info = TranslationInfo(kind="paired" if paired else "unpaired", shape=shape_a,
                                    shape_b=shape_b, examples_a=ex_a, examples_b=ex_b)
        self._heldout = lazy_heldout(heldout, "this translation source holds no held-out data")

    def heldout(self) -> HeldOut:
        """The held-out pairs or domains (built on the first call, then kept): batches
        ``{"a", "b"}`` like ``next_batch``, ``sample`` from domain B; DataError if none."""
        return self._heldout()

    def __len__(self) -> int:
        return max(len(s) for s in self._sources.values())

    def next_batch(self, n: int) -> dict[str, Tensor]:
        if self.paired:
            ab = random_crop(self._sources["ab"].next_batch(n)["x"], self.size, self._crop_gen)
            return {"a": ab[:, :self.channels_a], "b": ab[:, self.channels_a:]}
        return {k: random_crop(s.next_batch(n)["x"], self.size, self._crop_gen)
                for k, s in self._sources.items()}

    def sample(self, n: int, seed: int) -> Tensor:
        """Real domain-B images (the targets of the A->B translator), centre-cropped."""
        if self.paired:
            return center_crop(self._sources["ab"].sample(n, seed), self.size)[:, self.channels_a:]
        return center_crop(self._sources["b"].sample(n, seed), self.size)

    def state_dict(self) -> dict[str, Any]:
        return {k: s.state_dict() for k, s in self._sources.items()} | \
            {"crop": generator_state(self._crop_gen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, s in self._sources.items():
            s.load_state_dict(state[k])
        self._crop_gen.set_state(torch.as_tensor(state["crop"], dtype=torch.uint8).cpu())


def heldout_domains(description: str, a: Tensor | np.ndarray, b: Tensor | np.ndarray,
                    size: int, device: str | torch.device) -> HeldOut:
    """Held-out uint8 domains (N_a, C_a, H, W) and (N_b, C_b, H, W) (row-aligned when paired)
    served as ``{"a": (m, C_a, size, size), "b": ...}`` in [-1, 1], centre-cropped like the
    sources' ``sample``; ``sample`` draws domain B and ``len`` counts domain B."""
    return HeldOut(description, {"a": a, "b": b}, sample_key="b", device=device,
                   transform=lambda x: uint8_to_unit(center_crop(x, size)))


def examples_of(a: Tensor | np.ndarray, b: Tensor | np.ndarray, n: int,
                size: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` images of each domain, centre-cropped, as floats in [-1, 1]."""
    return (center_crop(to_float(a[:n]), size).contiguous(),
            center_crop(to_float(b[:n]), size).contiguous())


# ---------------------------------------------------------------- built-in demos
# Demo domains are computed once per process (trainers, tests and the evaluation script build
# the same ones repeatedly). Callers must treat the returned tensors as read-only.
@lru_cache(maxsize=4)
def mnist_strokes(split: Literal["train", "test"] = "train", root: str | None = None,
                  iterations: int = 1, softness: float = 96.0) -> dict[str, Tensor]:
    """MNIST's ``split`` in two disjoint halves: ``a`` thinned (erosion), ``b`` bold
    (dilation), uint8 (N/2, 1, 28, 28) each, with their digit labels ``ya`` / ``yb``.

    The default soft erosion keeps the digits readable: a flat one (``softness=0``) breaks
    thin strokes, and a classifier trained on MNIST then recognises only ~66% of the test
    digits (~98% at softness 96, against ~99% for the originals and ~98% for the bold ones).
    """
    from gankit.data.idx import load_mnist
    data = load_mnist(split, root, "mnist")
    half_a, half_b = split_halves(len(data))
    thin = chunked(lambda x: erode(x.float(), iterations, softness).to(torch.uint8),
                   data.images[half_a])
    bold = chunked(lambda x: dilate(x.float(), iterations).to(torch.uint8), data.images[half_b])
    return {"a": thin, "ya": data.labels[half_a], "b": bold, "yb": data.labels[half_b]}


@lru_cache(maxsize=4)
def fashion_edges(split: Literal["train", "test"] = "train", root: str | None = None,
                  threshold: float = 1.0) -> dict[str, Tensor]:
    """Fashion-MNIST's ``split`` as pairs: ``a`` edge maps, ``b`` items, ``y`` item classes."""
    from gankit.data.idx import load_mnist
    data = load_mnist(split, root, "fashion-mnist")
    return {"a": edge_map(data.images, threshold), "b": data.images, "y": data.labels}


class _Params(Params):
    flip: bool = False
    n_examples: int = Field(64, ge=1, le=1024)   # held-out examples for sample pages


class _DemoParams(_Params):
    root: PathStr | None = None
    size: int = Field(28, ge=8, le=1024)
    split: Literal["train", "test"] = "train"    # trained on; examples always from "test"


class StrokesParams(_DemoParams):
    name: Literal["mnist-strokes"] = "mnist-strokes"
    iterations: int = Field(1, ge=1, le=3)       # erosion / dilation steps
    softness: float = Field(96.0, ge=0, le=255)  # erosion's arms below its centre (0: flat)


class MNISTStrokes:
    """MNIST thin <-> bold strokes, unpaired: disjoint halves eroded / dilated (CycleGAN demo)."""

    kind: ClassVar[str] = "unpaired"
    source: ClassVar[str] = "MNIST files (12 MB download)"

    Params = StrokesParams

    @classmethod
    def describe(cls, p: StrokesParams) -> TranslationInfo:
        return TranslationInfo("unpaired", (1, p.size, p.size), shape_b=(1, p.size, p.size))

    @classmethod
    def build(cls, p: StrokesParams, *, seed: int, device="cpu") -> TranslationSource:
        """Trains on ``p.split``; ``heldout()`` is the other split's thin / bold halves."""
        train = mnist_strokes(p.split, p.root, p.iterations, p.softness)
        test = mnist_strokes("test", p.root, p.iterations, p.softness)
        resize = lambda x: fit_size(x, p.size)     # noqa: E731
        other = other_split(p.split)

        def heldout() -> HeldOut:
            held = mnist_strokes(other, p.root, p.iterations, p.softness)
            return heldout_domains(f"mnist-strokes {other} split ({len(held['a']):,} thin / "
                                   f"{len(held['b']):,} bold images)",
                                   resize(held["a"]), resize(held["b"]), p.size, device)

        return TranslationSource(resize(train["a"]), resize(train["b"]), paired=False,
                                 seed=seed, device=device, flip=p.flip,
                                 examples=examples_of(resize(test["a"]), resize(test["b"]),
                                                      p.n_examples, p.size),
                                 heldout=heldout)


class EdgesParams(_DemoParams):
    name: Literal["fashion-edges"] = "fashion-edges"
    threshold: float = Field(1.0, gt=0, lt=5.66)  # Sobel magnitude of [0, 1] images


class FashionEdges:
    """Fashion-MNIST edges -> items, paired: thresholded Sobel maps (pix2pix demo)."""

    kind: ClassVar[str] = "paired"
    source: ClassVar[str] = "Fashion-MNIST files (31 MB download)"

    Params = EdgesParams

    @classmethod
    def describe(cls, p: EdgesParams) -> TranslationInfo:
        return TranslationInfo("paired", (1, p.size, p.size), shape_b=(1, p.size, p.size))

    @classmethod
    def build(cls, p: EdgesParams, *, seed: int, device="cpu") -> TranslationSource:
        """Trains on ``p.split``; ``heldout()`` is the other split's edge / item pairs."""
        train = fashion_edges(p.split, p.root, p.threshold)
        test = fashion_edges("test", p.root, p.threshold)
        resize = lambda x: fit_size(x, p.size)     # noqa: E731
        other = other_split(p.split)

        def heldout() -> HeldOut:
            held = fashion_edges(other, p.root, p.threshold)
            return heldout_domains(f"fashion-edges {other} split ({len(held['b']):,} "
                                   "edge/item pairs)", resize(held["a"]), resize(held["b"]),
                                   p.size, device)

        return TranslationSource(resize(train["a"]), resize(train["b"]), paired=True,
                                 seed=seed, device=device, flip=p.flip,
                                 examples=examples_of(resize(test["a"]), resize(test["b"]),
                                                      p.n_examples, p.size),
                                 heldout=heldout)


# ---------------------------------------------------------------- user folders
class _FolderParams(_Params):
    path: PathStr
    size: int = Field(256, ge=8, le=1024)             # crop fed to the networks
    load_size: int | None = Field(None, ge=8, le=2048)  # decode size (null: = size, no jitter)
    channels: Channels = 3                            # domain A (and B unless channels_b)
    channels_b: Channels | None = None
    flip: bool = True
    # without test sub-folders: share of the training files held out by name (never trained on)
    holdout: float = Field(DEFAULT_HOLDOUT, ge=0, le=MAX_HOLDOUT)

    @model_validator(mode="after")
    def _load_covers_crop(self):
        if self.load_size is not None and self.load_size < self.size:
            raise ValueError(f"load_size {self.load_size} is smaller than size {self.size}")
        return self

    @property
    def decode_size(self) -> int:
        return self.load_size or self.size

    @property
    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        cb = self.channels_b or self.channels
        return (self.channels, self.size, self.size), (cb, self.size, self.size)


def _existing_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path} is not a folder; {what}")
    return path


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


class UnpairedFolderParams(_FolderParams):
    name: Literal["unpaired-folder"] = "unpaired-folder"
    memory_budget_gib: float = Field(folder_mod.DEFAULT_MEMORY_BUDGET / 2**30, gt=0)


class UnpairedFolder:
    """Your unpaired domains: <path>/trainA, trainB (optional testA, testB), CycleGAN layout."""

    kind: ClassVar[str] = "unpaired"
    source: ClassVar[str] = "your folders trainA/, trainB/ (data.path)"

    Params = UnpairedFolderParams

    @classmethod
    def describe(cls, p: UnpairedFolderParams) -> TranslationInfo:
        shape_a, shape_b = p.shapes
        return TranslationInfo("unpaired", shape_a, shape_b=shape_b)

    @classmethod
    def _domain(cls, p: UnpairedFolderParams, root: Path, name: str,
                channels: int) -> tuple[Tensor | np.ndarray, Tensor | np.ndarray | None, str]:
        """One domain ("A" or "B") as uint8 (N, C, load, load) arrays: (training images,
        held-out images or None, where the held-out ones come from or why there are none).

        ``test<name>/`` when it exists (then all of ``train<name>/`` is trained on), else the
        ``p.holdout`` share of ``train<name>/`` by file name, which training then excludes.
        Both parts are decoded here, as ``test<name>/`` always was: sample pages need them."""
        hint = f"expected {root}/trainA and {root}/trainB (CycleGAN layout)"
        train_dir = _existing_dir(root / f"train{name}", hint)
        load = lambda d, **split: folder_mod.load_folder(                     # noqa: E731
            d, p.decode_size, channels, memory_budget=int(p.memory_budget_gib * 2**30),
            **split).images
        test_dir = root / f"test{name}"
        if test_dir.is_dir():
            return load(train_dir), load(test_dir), f"test{name}/"
        train = load(train_dir, holdout=p.holdout)
        if p.holdout == 0:
            return train, None, f"it has no test{name}/ folder and its holdout is 0"
        try:
            held = load(train_dir, holdout=p.holdout, part="heldout")
        except DataError as e:   # no file falls in the held-out share, or none is usable
            return train, None, str(e)
        return train, held, f"{percent(p.holdout)} of train{name}/ held out by file name"

    @classmethod
    def build(cls, p: UnpairedFolderParams, *, seed: int, device="cpu") -> TranslationSource:
        """Trains on trainA/ and trainB/ (minus their held-out files when there are no testA/,
        testB/); the examples and ``heldout()`` are the held-out images of each domain
        (examples fall back to training images for a domain without any)."""
        root = _existing_dir(Path(p.path).expanduser(), "the unpaired-folder data set expects "
                             "trainA/ and trainB/ folders in it (CycleGAN layout)")
        train_a, held_a, from_a = cls._domain(p, root, "A", p.channels)
        train_b, held_b, from_b = cls._domain(p, root, "B", p.channels_b or p.channels)
        ex_a = train_a if held_a is None else held_a
        ex_b = train_b if held_b is None else held_b

        def heldout() -> HeldOut:
            for held, where in ((held_a, from_a), (held_b, from_b)):
                if held is None:
                    raise DataError(f"unpaired folder {root} holds no held-out images: {where}")
            return heldout_domains(f"unpaired-folder held-out images: {from_a} "
                                   f"({len(held_a):,}) and {from_b} ({len(held_b):,})",
                                   held_a, held_b, p.size, device)

        return TranslationSource(train_a, train_b, paired=False, seed=seed, device=device,
                                 flip=p.flip, size=p.size,
                                 examples=examples_of(ex_a, ex_b, p.n_examples, p.size),
                                 heldout=heldout)


class PairedFolderParams(_FolderParams):
    name: Literal["paired-folder"] = "paired-folder"
    layout: Literal["auto", "side-by-side", "folders"] = "auto"
    swap: bool = False          # B -> A (e.g. facades' photo|label images: --direction BtoA)


def _read_halves(path: Path, size: int, channels: tuple[int, int]) -> np.ndarray:
    """One side-by-side A|B file to uint8 (C_a + C_b, size, size), each half by the shared
    decoder's rules (:mod:`gankit.data.decode`)."""
    img = decode.open_image(path)
    w, h = img.size
    halves = [img.crop((0, 0, w // 2, h)), img.crop((w // 2, 0, w, h))]
    return np.concatenate([decode.to_array(half, c, size) for half, c in zip(halves, channels)])


def _decode_halves(entry, size: int, channels: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """One side-by-side A|B file to uint8 (C_a + C_b, size, size), or None and why not."""
    return decode.try_decode(partial(_read_halves, size=size, channels=channels), entry.path,
                             entry.size)


def _decode_pair(pair, size: int, channels: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """Two files with the same name under A/ and B/ to uint8 (C_a + C_b, size, size)."""
    arrs = []
    for entry, c in zip(pair, channels):
        arr, reason = folder_mod._try_decode(entry, size, c)
        if arr is None:
            return None, reason
        arrs.append(arr)
    return np.concatenate(arrs, 0), ""


def _decode_all(items: list, decode, size: int, channels: tuple[int, int],
                where: Path) -> np.ndarray:
    out = np.empty((len(items), sum(channels), size, size), np.uint8)   # (N, Ca+Cb, S, S)
    count, skipped = 0, {}
    workers = min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for arr, reason in pool.map(lambda it: decode(it, size, channels), items):
            if arr is None:
                skipped[reason] = skipped.get(reason, 0) + 1
            else:
                out[count] = arr
                count += 1
    if count == 0:
        raise DataError(f"no usable image pair in {where}: all {len(items)} skipped "
                        f"({', '.join(f'{n} {r}' for r, n in sorted(skipped.items()))})")
    if skipped:
        detail = ", ".join(f"{n} {r}" for r, n in sorted(skipped.items()))
        warnings.warn(f"skipped {sum(skipped.values())} of {len(items)} pairs in {where}: "
                      f"{detail}", folder_mod.SkippedFilesWarning, stacklevel=3)
    return out[:count]


def _pair_name(entry) -> str:
    """What pairs A/x.png with B/x.jpg: the relative name without its extension. It is also
    the name a pair is held out by, so both files of a pair always fall in the same part."""
    return Path(entry.rel).with_suffix("").as_posix()


def _matched(dir_a: Path, dir_b: Path) -> list[tuple[Any, Any]]:
    """Entries of A/ and B/ with the same relative name (extension ignored), by name."""
    a = {_pair_name(e): e for e in folder_mod.scan_folder(dir_a)[0]}
    b = {_pair_name(e): e for e in folder_mod.scan_folder(dir_b)[0]}
    common = sorted(set(a) & set(b))
    lonely = len(a) + len(b) - 2 * len(common)
    if not common:
        raise DataError(f"no file names shared by {dir_a} and {dir_b}; paired folders need "
                        "matching names (A/x.png <-> B/x.png)")
    if lonely:
        warnings.warn(f"{lonely} files in {dir_a} / {dir_b} have no partner and were skipped",
                      folder_mod.SkippedFilesWarning, stacklevel=3)
    return [(a[k], b[k]) for k in common]


def _side_by_side(directory: Path) -> list:
    entries = folder_mod.scan_folder(directory)[0]
    if not entries:
        raise DataError(f"no image files in {directory}")
    return entries


def _outside(items: list, rel: Callable[[Any], str], train_dir: Path, test_dir: Path) -> list:
    """``items`` not under ``test_dir``: images straight in the root are scanned recursively,
    so a test/ folder inside the training folder must not be trained on."""
    if train_dir not in test_dir.parents:
        return items
    prefix = test_dir.relative_to(train_dir).as_posix() + "/"
    return [it for it in items if not rel(it).startswith(prefix)]


@dataclass
class _PairedFiles:
    """A paired folder's training and held-out items (entries or (A, B) entry pairs), before
    decoding, with where each lies (for skip warnings) and where the held-out ones come from
    (or why there are none)."""

    train: list
    held: list
    decode: Callable          # _decode_pair or _decode_halves
    train_where: Path
    held_where: Path
    held_from: str


class PairedFolder:
    """Your paired domains: side-by-side A|B images, or A/ and B/ folders with equal names."""

    kind: ClassVar[str] = "paired"
    source: ClassVar[str] = "your paired images (data.path)"

    Params = PairedFolderParams

    @classmethod
    def describe(cls, p: PairedFolderParams) -> TranslationInfo:
        shape_a, shape_b = p.shapes
        return TranslationInfo("paired", shape_a, shape_b=shape_b)

    @classmethod
    def files(cls, p: PairedFolderParams) -> _PairedFiles:
        """The training and held-out pairs: the ``test/`` (or ``val/``) pairs when they exist,
        else the ``p.holdout`` share of the training pairs by name (a side-by-side file's
        relative path, an A/B pair's shared name: :func:`_pair_name`), which training then
        excludes. Raises DataError for a missing folder or one without training pairs."""
        root = _existing_dir(Path(p.path).expanduser(), "the paired-folder data set expects "
                             "side-by-side A|B images or A/ and B/ folders in it")
        layout = p.layout
        if layout == "auto":
            both = (root / "A").is_dir() and (root / "B").is_dir()
            layout = "folders" if both else "side-by-side"
        if layout == "folders":
            dir_a = _existing_dir(root / "A", f"expected {root}/A and {root}/B")
            dir_b = _existing_dir(root / "B", f"expected {root}/A and {root}/B")
            train_dir = _first_dir(dir_a, ("train",)) or dir_a
            test_dir = _first_dir(dir_a, ("test", "val"))
            train = _matched(train_dir, dir_b / train_dir.relative_to(dir_a))
            held = _matched(test_dir, dir_b / test_dir.name) if test_dir else []
            decode, train_where, held_where = _decode_pair, root, root
            rel = lambda pair: pair[0].rel               # noqa: E731  (A's path under train_dir)
            name = lambda pair: _pair_name(pair[0])      # noqa: E731
        else:
            train_dir = _first_dir(root, ("train",)) or root
            test_dir = _first_dir(root, ("test", "val"))
            train = _side_by_side(train_dir)
            held = _side_by_side(test_dir) if test_dir else []
            decode, train_where, held_where = _decode_halves, train_dir, test_dir or train_dir
            rel = name = lambda e: e.rel                 # noqa: E731
        if test_dir is not None:
            train = _outside(train, rel, train_dir, test_dir)
            if not train:
                raise DataError(f"no training pairs in {root} outside {test_dir}")
            return _PairedFiles(train, held, decode, train_where, held_where,
                                f"{test_dir.relative_to(root)}/")
        train, held = split_by_path(train, p.holdout, key=name)
        if not train:
            raise DataError(f"all pairs in {root} fall in the held-out {percent(p.holdout)}; "
                            "lower holdout or add pairs")
        if p.holdout == 0:
            why = "it has no test/ or val/ folder and its holdout is 0"
        elif not held:
            why = f"none of its {len(train):,} pairs falls in the held-out {percent(p.holdout)}"
        else:
            why = f"{percent(p.holdout)} of the pairs held out by file name"
        return _PairedFiles(train, held, decode, train_where, held_where, why)

    @classmethod
    def build(cls, p: PairedFolderParams, *, seed: int, device="cpu") -> TranslationSource:
        """Trains on the training pairs (see :meth:`files`). The first ``n_examples`` held-out
        pairs (training pairs when there are none) are the examples, decoded now;
        ``heldout()`` decodes all held-out pairs on first use."""
        files = cls.files(p)
        cb = p.channels_b or p.channels
        # with swap, the file's left/A half becomes domain B: decode each with its channels
        channels = (cb, p.channels) if p.swap else (p.channels, cb)
        first = cb if p.swap else p.channels      # channels of the file's A part

        def decode(items: list, where: Path) -> tuple[Tensor, Tensor]:
            """Items -> domains A and B, uint8 (N, C_a, S, S) and (N, C_b, S, S)."""
            x = torch.from_numpy(_decode_all(items, files.decode, p.decode_size, channels,
                                             where))      # (N, C_a + C_b, S, S), file order
            return (x[:, first:], x[:, :first]) if p.swap else (x[:, :first], x[:, first:])

        a, b = decode(files.train, files.train_where)
        ex_a, ex_b = decode(files.held[:p.n_examples], files.held_where) if files.held \
            else (a, b)

        def heldout() -> HeldOut:
            if not files.held:
                raise DataError(f"paired folder {p.path} holds no held-out pairs: "
                                f"{files.held_from}")
            held_a, held_b = decode(files.held, files.held_where)
            return heldout_domains(f"paired-folder held-out pairs: {files.held_from} "
                                   f"({len(held_a):,} pairs)", held_a, held_b, p.size, device)

        return TranslationSource(a, b, paired=True, seed=seed, device=device, flip=p.flip,
                                 size=p.size, examples=examples_of(ex_a, ex_b, p.n_examples,
                                                                   p.size),
                                 heldout=heldout)
