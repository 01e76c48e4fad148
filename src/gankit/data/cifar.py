"""CIFAR-10 from the original ``cifar-10-python.tar.gz``, read without running its pickles.

The batches inside the tarball are Python pickles: dicts with ``b"data"`` (a uint8 numpy array
N x 3072, channel-major 32x32 planes), ``b"labels"`` (ints), ``b"batch_label"`` and
``b"filenames"``; ``batches.meta`` holds ``b"label_names"``.

Unpickling can execute arbitrary code, so we never let a pickle reach a real callable. We keep
the standard library's opcode parser (``pickle.Unpickler``) but override ``find_class``, the
single point through which every global (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*) is resolved:
it maps the only names these files use, numpy's array reconstruction and ``_codecs.encode`` for
bytes, to small stand-ins defined here that merely record their arguments, and rejects every
other name with a DataError. After loading, a stand-in array becomes a real one through
``np.frombuffer`` on its raw bytes, and only if it declares uint8 data. Persistent IDs are
refused by the base class. Nothing from the file is ever called or imported.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from gankit.data.base import DataInfo
from gankit.data.download import REMOTES, data_root, ensure_file
from gankit.data.images import (ImageParams, ImageSet, ImageTensorSource, labelled_count,
                                split_source)
from gankit.errors import DataError

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar10"
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = ("test_batch",)
_META = "batches.meta"


class _DType:
    """Stand-in for a numpy dtype; BUILD state (byte order etc.) is ignored."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    def __setstate__(self, state: Any) -> None:
        # Byte order and flags do not matter for single-byte data, the only kind we accept.
        pass


class _Array:
    """Stand-in for an ndarray being rebuilt: ``__setstate__`` receives shape, dtype, bytes."""

    shape: Any = ()
    dtype: Any = None
    raw: Any = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise DataError("CIFAR batch holds an array in an unexpected pickle layout")
        _version, self.shape, self.dtype, _fortran, self.raw = state

    def to_numpy(self) -> np.ndarray:
        spec = getattr(self.dtype, "spec", None)
        if spec not in ("u1", b"u1", "|u1", b"|u1") or not isinstance(self.raw, (bytes, bytearray)):
            raise DataError("CIFAR batch array is not plain uint8 data")
        dims_ok = isinstance(self.shape, tuple) and all(
            type(d) is int and d >= 0 for d in self.shape)
        if not dims_ok:
            raise DataError("CIFAR batch array has an invalid shape")
        if int(np.prod(self.shape, dtype=np.int64)) != len(self.raw):
            raise DataError("CIFAR batch array size does not match its shape")
        return np.frombuffer(self.raw, np.uint8).reshape(self.shape)


def _stand_ins() -> dict[tuple[str, str], Any]:
    """Fresh callables for one load, so that nothing a file does to them (BUILD can set
    attributes on any object it reaches) outlives that load. No class is handed out."""

    def ndarray() -> None:  # only ever compared against, as _reconstruct's first argument
        raise DataError("CIFAR batch calls numpy.ndarray directly")

    def reconstruct(subtype: Any, _shape: Any, _typecode: Any) -> _Array:
        if subtype is not ndarray:
            raise DataError("CIFAR batch reconstructs something other than a numpy array")
        return _Array()

    def dtype(spec: Any, *_flags: Any) -> _DType:
        return _DType(spec)

    def encode(text: Any, encoding: Any = "utf-8") -> bytes:
        # Python 3 pickles bytes at protocol <= 2 as _codecs.encode(text, "latin1").
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise DataError("CIFAR batch uses an unexpected byte encoding")
        return text.encode("latin-1")

    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,   # numpy 1.x, Python 2
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,  # numpy 2.x
        ("numpy", "ndarray"): ndarray,
        ("numpy", "dtype"): dtype,
        ("_codecs", "encode"): encode,
    }


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO) -> None:
        # encoding="bytes": Python 2 str fields stay bytes, matching the b"..." keys.
        super().__init__(file, encoding="bytes")
        self._allowed = _stand_ins()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to load CIFAR batch: it references {module}.{name}, which a genuine "
                "CIFAR-10 file never does"
            ) from None


def safe_load_batch(raw: bytes, source: str = "<bytes>") -> dict[bytes, Any]:
    """Decode one CIFAR pickle without executing anything from it."""
    try:
        obj = _SafeUnpickler(io.BytesIO(raw)).load()
        if not isinstance(obj, dict):
            raise DataError("not a CIFAR batch (expected a dict)")
        # Arrays only ever appear as top-level values; no recursion, so cyclic input is harmless.
        return {k: v.to_numpy() if isinstance(v, _Array) else v for k, v in obj.items()}
    except DataError as e:
        raise DataError(f"{source}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, MemoryError) as e:
        raise DataError(f"{source} is not a readable CIFAR batch ({type(e).__name__}: {e})") from e


def _read_members(archive: Path, wanted: set[str]) -> dict[str, bytes]:
    """The raw bytes of the wanted members (matched by base name), in one pass over the tar."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # sequential: a .tar.gz cannot seek cheaply
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted and base not in found:
                    f = tar.extractfile(member)
                    found[base] = f.read() if f is not None else b""
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        raise DataError(f"cannot read {archive}: {e}") from e
    missing = sorted(wanted - found.keys())
    if missing:
        raise DataError(f"{archive} lacks {', '.join(missing)}; is it cifar-10-python.tar.gz?")
    return found


def _batch_arrays(batch: dict[bytes, Any], source: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{source}: b'data' is not an N x 3072 uint8 array")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(
        isinstance(v, int) and 0 <= v < 256 for v in labels
    ):
        raise DataError(f"{source}: b'labels' is not a list of {len(data)} class indices")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)  # (N, 3, 32, 32)


def load_cifar_archive(archive: str | os.PathLike[str],
                       split: Literal["train", "test"] = "train") -> ImageSet:
    """Images uint8 (N, 3, 32, 32), labels int64 (N,) and class names from the tarball."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; choose train or test")
    archive = Path(archive)
    names = _TRAIN if split == "train" else _TEST
    raw = _read_members(archive, {*names, _META})
    meta = safe_load_batch(raw[_META], f"{archive.name}:{_META}")
    label_names = meta.get(b"label_names")
    if not isinstance(label_names, list) or not all(isinstance(n, bytes) for n in label_names):
        raise DataError(f"{archive.name}:{_META} has no list of label names")
    images, labels = [], []
    for name in names:  # fixed order data_batch_1..5, whatever the order inside the tar
        x, y = _batch_arrays(safe_load_batch(raw.pop(name), f"{archive.name}:{name}"), name)
        images.append(x)
        labels.append(y)
    y_all = np.concatenate(labels)
    if y_all.max(initial=0) >= len(label_names):
        raise DataError(f"{archive.name}: a label exceeds the {len(label_names)} class names")
    return ImageSet(
        images=torch.from_numpy(np.concatenate(images)),  # (N, 3, 32, 32), writable copy
        labels=torch.from_numpy(y_all),                   # (N,)
        class_names=tuple(n.decode("utf-8", "replace") for n in label_names),
    )


def load_cifar10(split: Literal["train", "test"] = "train",
                 root: str | os.PathLike[str] | None = None, *,
                 allow_download: bool = True) -> ImageSet:
    """CIFAR-10 from ``<root>/cifar10/cifar-10-python.tar.gz`` (MD5-checked, fetched if missing)."""
    folder = data_root(root) / FOLDER
    archive = ensure_file(REMOTES["cifar10"][ARCHIVE], folder, allow_download=allow_download)
    return load_cifar_archive(archive, split)


class CIFAR10Params(ImageParams):
    name: Literal["cifar10"] = "cifar10"
    size: int = Field(32, ge=8, le=1024)


class CIFAR10:
    """CIFAR-10 natural images, 32x32 colour, 10 classes (50k train / 10k test)."""

    kind: ClassVar[str] = "image"
    channels: ClassVar[int] = 3
    content: ClassVar[str] = "natural images"
    source: ClassVar[str] = "CIFAR-10 archive (170 MB download)"

    Params = CIFAR10Params

    @classmethod
    def describe(cls, params: CIFAR10Params) -> DataInfo:
        """What the config says about the data: 3 x size x size images in 10 classes (none
        with ``labels: false``; their names are read from the archive)."""
        k = 10 if params.labels else 0
        return DataInfo("image", (cls.channels, params.size, params.size), k,
                        labelled=labelled_count(params, k))

    @classmethod
    def build(cls, params: CIFAR10Params, *, seed: int, device="cpu") -> ImageTensorSource:
        """Trains on ``params.split``; ``heldout()`` is the other split (10k test or 50k
        train images), read from the archive on first use."""
        return split_source(lambda split: load_cifar10(split, params.root),
                            "cifar10", params, seed=seed, device=device)
