"""MNIST and Fashion-MNIST from their original gzip IDX files.

IDX layout (big-endian): two zero bytes, a type code, the number of dimensions, one uint32 per
dimension, then the values in C order. We parse it with numpy straight from the decompressed
bytes; no intermediate files are written.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from gankit.data.base import DataInfo
from gankit.data.download import REMOTES, data_root, ensure_file
from gankit.data.images import (ImageParams, ImageSet, ImageTensorSource, labelled_count,
                                split_source)
from gankit.errors import DataError

# IDX type code -> numpy dtype (big-endian, as the format specifies).
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}
_PREFIX = {"train": "train", "test": "t10k"}


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode one IDX payload (already decompressed) into an array of its declared shape."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{source} is not an IDX file (bad magic number)")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source} is truncated (IDX header cut short)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{source} holds {len(raw) - header} data bytes but its header {dims} needs {expected}"
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a gzip-compressed (``.gz``) or plain IDX file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":  # gzip magic: decide by content, not by file name
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    return parse_idx(raw, str(path))


def load_mnist(
    split: Literal["train", "test"] = "train",
    root: str | os.PathLike[str] | None = None,
    name: Literal["mnist", "fashion-mnist"] = "mnist",
    *,
    allow_download: bool = True,
) -> ImageSet:
    """MNIST or Fashion-MNIST as uint8 images (N, 1, 28, 28) and int64 labels (N,).

    Files are looked for in ``<root>/<name>/`` (see :func:`data_root`), checked against their
    published MD5 (once per process), and downloaded there when missing.
    """
    if name not in REMOTES or name not in CLASS_NAMES:
        raise DataError(f"unknown IDX data set {name!r}; choose mnist or fashion-mnist")
    if split not in _PREFIX:
        raise DataError(f"unknown split {split!r}; choose train or test")
    folder = data_root(root) / name
    remotes = REMOTES[name]
    prefix = _PREFIX[split]
    img_path = ensure_file(remotes[f"{prefix}-images-idx3-ubyte.gz"], folder,
                           allow_download=allow_download)
    lbl_path = ensure_file(remotes[f"{prefix}-labels-idx1-ubyte.gz"], folder,
                           allow_download=allow_download)
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{img_path} and {lbl_path} do not form an image/label pair")
    return ImageSet(
        images=torch.from_numpy(images.astype(np.uint8)).unsqueeze(1),  # (N, 1, 28, 28)
        labels=torch.from_numpy(labels.astype(np.int64)),               # (N,)
        class_names=CLASS_NAMES[name],
    )


class MNISTParams(ImageParams):
    name: Literal["mnist"] = "mnist"
    size: int = Field(28, ge=8, le=1024)


class MNIST:
    """MNIST handwritten digits, 28x28 grayscale, 10 classes (60k train / 10k test)."""

    kind: ClassVar[str] = "image"
    # what metrics need to know (gankit.metrics.protocol.RunFacts, gankit.metrics.offline)
    channels: ClassVar[int] = 1
    content: ClassVar[str] = "digits"
    classifier: ClassVar[str | None] = "mnist"      # the shipped classifier that reads it
    source: ClassVar[str] = "MNIST files (12 MB download)"

    Params = MNISTParams

    @classmethod
    def describe(cls, params: MNISTParams) -> DataInfo:
        """What the config says about the data: 1 x size x size images, 10 named classes
        (none with ``labels: false``)."""
        names = CLASS_NAMES[params.name] if params.labels else ()
        return DataInfo("image", (cls.channels, params.size, params.size), len(names), names,
                        labelled=labelled_count(params, len(names)))

    @classmethod
    def build(cls, params: MNISTParams, *, seed: int, device="cpu") -> ImageTensorSource:
        """Trains on ``params.split``; ``heldout()`` is the other split (10k test or 60k
        train images), read on first use."""
        return split_source(lambda split: load_mnist(split, params.root, params.name),
                            params.name, params, seed=seed, device=device)


class FashionMNISTParams(ImageParams):
    name: Literal["fashion-mnist"] = "fashion-mnist"
    size: int = Field(28, ge=8, le=1024)


class FashionMNIST(MNIST):
    """Fashion-MNIST clothing images, 28x28 grayscale, 10 classes (60k train / 10k test)."""

    content: ClassVar[str] = "clothing"
    classifier: ClassVar[str | None] = "fashion-mnist"
    source: ClassVar[str] = "Fashion-MNIST files (31 MB download)"
    Params = FashionMNISTParams
