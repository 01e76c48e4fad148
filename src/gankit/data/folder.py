"""A folder of images as a data set, optionally labelled by sub-folder.

Every image is decoded once by the shared decoder (:mod:`gankit.data.decode`: which files,
16-bit, transparency on white, palette, CMYK, EXIF orientation): brought to ``channels``
(1 = grayscale, 3 = RGB), its shorter side resized to ``size`` and centre-cropped to ``size`` x
``size``, and stored in a uint8 cache (N, C, size, size). Files that cannot be used (empty, truncated, corrupt, not an image) are
skipped and reported in one warning; they never stop the load.

When the cache would exceed ``memory_budget`` bytes it is written once to disk as a raw uint8
file read through a numpy memmap, under ``<GANKIT_CACHE>/folders/<key>/``. The key hashes the
folder's path, every file's relative name and *bytes* (:mod:`gankit.contentkey`; names, sizes
and times alone repeat across archives), the decoder's version, the target size and channels,
and which part of a held-out split it holds, so the cache is reused exactly while nothing that
would change it has changed, and the training and held-out parts never share a cache.

Held-out split: a file is held out when a hash of its path relative to the folder falls in the
first ``holdout`` fraction of the hash range (:func:`split_by_path`). The decision depends on
that one name only, so adding or removing files never moves other files between the parts, and
a larger fraction only adds files to the held-out part.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

import numpy as np
import torch
from pydantic import Field
from tqdm import tqdm

from gankit.contentkey import content_key
from gankit.data import decode as decode_mod
from gankit.data.base import DataInfo, HeldOut
from gankit.data.decode import IMAGE_EXTENSIONS, is_image_name
from gankit.data.download import cache_root
from gankit.data.images import ImageSet, ImageTensorSource, heldout_of_set, source_from_set
from gankit.errors import DataError
from gankit.fileio import read_json
from gankit.params import Channels, Params, PathStr

_CACHE_VERSION = 2      # 2: keyed by file contents and the decoder version
_CHUNK = 256  # files handed to the thread pool at a time: bounds decoded-but-unwritten images
DEFAULT_MEMORY_BUDGET = 4 << 30
DEFAULT_HOLDOUT = 0.1    # share of a folder's files held out by name (FolderParams.holdout)
MAX_HOLDOUT = 0.5

T = TypeVar("T")
Part = Literal["train", "heldout"]


class SkippedFilesWarning(UserWarning):
    """Some files in an image folder could not be used."""


@dataclass(frozen=True)
class _Entry:
    path: Path
    rel: str
    label: int
    size: int


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, hidden entries skipped, in a stable order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath, f) for f in sorted(filenames) if is_image_name(f)]
    return found


def path_position(rel: str) -> float:
    """Where a relative POSIX path falls in [0, 1): the first 8 bytes of the SHA-256 of its
    NFC-normalised UTF-8 name, as a fraction of 2**64. NFC makes a folder copied between
    file systems that spell accents differently (macOS stores NFD) split the same way."""
    digest = hashlib.sha256(unicodedata.normalize("NFC", rel).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_path(items: Sequence[T], holdout: float,
                  key: Callable[[T], str]) -> tuple[list[T], list[T]]:
    """(training, held-out) items, each in the given order: an item is held out when
    ``path_position(key(item)) < holdout``, with ``key`` its path relative to the folder.

    Raises DataError unless ``0 <= holdout <= MAX_HOLDOUT``."""
    if not 0 <= holdout <= MAX_HOLDOUT:
        raise DataError(f"holdout must be a fraction in [0, {MAX_HOLDOUT}], got {holdout}")
    train: list[T] = []
    held: list[T] = []
    for item in items:
        (held if path_position(key(item)) < holdout else train).append(item)
    return train, held


def percent(fraction: float) -> str:
    """0.1 -> "10 %", 0.125 -> "12.5 %" (for messages about a held-out fraction)."""
    return f"{fraction * 100:g} %"


def scan_folder(folder: str | os.PathLike[str]) -> tuple[list[_Entry], tuple[str, ...]]:
    """Candidate files and class names.

    Labelled when the top level holds only sub-folders (one class each, sorted by name);
    otherwise every image anywhere below is one unlabelled pool.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    try:
        children = list(root.iterdir())
    except OSError as e:
        raise DataError(f"cannot list image folder {root}: {e.strerror or e}") from e
    subdirs = sorted(p for p in children if p.is_dir() and not p.name.startswith("."))
    top_files = [p for p in children if p.is_file() and is_image_name(p.name)]
    classes = tuple(p.name for p in subdirs) if subdirs and not top_files else ()
    if classes:
        groups = [(i, _image_files(d)) for i, d in enumerate(subdirs)]
    else:
        groups = [(-1, _image_files(root))]
    entries = []
    for label, files in groups:
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue  # vanished or dangling link: nothing to decode or to key on
            entries.append(_Entry(path, path.relative_to(root).as_posix(), label,
                                  st.st_size))
    return entries, classes


def _try_decode(entry: _Entry, size: int, channels: int) -> tuple[np.ndarray | None, str]:
    """One file to uint8 (C, size, size) by the shared decoder, or None and why it was
    skipped (:func:`gankit.data.decode.try_decode`)."""
    read = partial(decode_mod.decode_image, channels=channels, size=size)
    return decode_mod.try_decode(read, entry.path, entry.size)


def _decode_into(entries: list[_Entry], out: np.ndarray, size: int, channels: int,
                 workers: int, desc: str) -> tuple[int, list[int], Counter[str]]:
    """Decode ``entries`` into the leading rows of ``out``: (count, labels kept, skip reasons)."""
    decode = partial(_try_decode, size=size, channels=channels)
    count, labels, skipped = 0, [], Counter()
    # Pillow releases the GIL while decoding, so a few threads overlap file reads and decodes.
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(entries), desc=desc, unit="img", disable=None, leave=False) as bar:
        for start in range(0, len(entries), _CHUNK):
            chunk = entries[start:start + _CHUNK]
            for entry, (arr, reason) in zip(chunk, pool.map(decode, chunk)):
                if arr is None:
                    skipped[reason] += 1
                else:
                    out[count] = arr
                    labels.append(entry.label)
                    count += 1
            bar.update(len(chunk))
    return count, labels, skipped


def _cache_key(root: Path, entries: list[_Entry], classes: tuple[str, ...],
               size: int, channels: int, subset: str | None) -> str:
    """Key of a decoded-image cache: the files' bytes, names and labels, the decoder's rules
    and the target shape (:func:`gankit.contentkey.content_key`)."""
    head = {"v": _CACHE_VERSION, "decoder": decode_mod.DECODER_VERSION,
            "root": str(root.resolve()), "size": size, "channels": channels,
            "classes": list(classes), "subset": subset}
    return content_key(head, [(f"{e.rel}\0{e.label}", e.path) for e in entries])


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


_Cached = tuple[np.ndarray, np.ndarray | None, dict]  # images memmap, labels, meta


def _open_cached(cache: Path) -> _Cached | None:
    """A complete cache in ``cache``, or None. meta.json is written last, so it marks completion."""
    meta = read_json(cache / "meta.json")
    if meta is None:
        return None
    try:
        shape = tuple(meta["shape"])
        if (cache / "images.u8").stat().st_size != int(np.prod(shape)):
            return None
        images = np.memmap(cache / "images.u8", dtype=np.uint8, mode="r", shape=shape)
        labels = np.load(cache / "labels.npy", allow_pickle=False) if meta["labelled"] else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if labels is not None and labels.shape != (shape[0],):
        return None
    return images, labels, meta


def _build_cache(cache: Path, entries: list[_Entry], classes: tuple[str, ...], size: int,
                 channels: int, workers: int, root: Path, subset: str | None) -> _Cached:
    """Decode into a memmap file in ``cache``, shrink it to the images kept, publish it."""
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="images.", suffix=".part", dir=cache)
    os.close(fd)
    tmp = Path(tmp_name)
    row = channels * size * size
    try:
        out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(len(entries), channels, size, size))
        count, labels, skipped = _decode_into(entries, out, size, channels, workers,
                                              f"caching {root.name}")
        out.flush()
        del out  # unmap before truncating the unused tail (skipped files)
        os.truncate(tmp, count * row)
        if count == 0:
            return np.empty((0, channels, size, size), np.uint8), None, {"skipped": dict(skipped)}
        os.replace(tmp, cache / "images.u8")
    finally:
        tmp.unlink(missing_ok=True)
    if classes:
        buf = io.BytesIO()
        np.save(buf, np.asarray(labels, dtype=np.int64))
        _write_atomic(cache / "labels.npy", buf.getvalue())
    meta = {"version": _CACHE_VERSION, "root": str(root.resolve()), "size": size,
            "channels": channels, "subset": subset, "shape": [count, channels, size, size],
            "labelled": bool(classes), "skipped": dict(skipped)}
    _write_atomic(cache / "meta.json", json.dumps(meta).encode())
    _remove_stale(cache, meta)
    opened = _open_cached(cache)
    if opened is None:
        raise DataError(f"image cache in {cache} could not be read back")
    return opened


def _remove_stale(current: Path, meta: dict) -> None:
    """Drop caches of earlier versions of the same folder at the same size and channels and of
    the same part of the same split: the training part's cache must survive building the
    held-out one (and vice versa). Caches from before splits have no "subset": whole folders."""
    for other in current.parent.iterdir():
        if other == current or not other.is_dir():
            continue
        old = read_json(other / "meta.json")
        if old is not None and all(old.get(k) == meta.get(k) for k in ("root", "size", "channels", "subset")):
            shutil.rmtree(other, ignore_errors=True)


def _warn_skipped(where: str, found: int, skipped: dict[str, int]) -> None:
    total = sum(skipped.values())
    if total:
        detail = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
        warnings.warn(f"skipped {total} of {found} files in {where}: {detail}",
                      SkippedFilesWarning, stacklevel=3)


def _select(entries: list[_Entry], root: Path, holdout: float, part: Part) -> list[_Entry]:
    """The entries of ``part`` of the split; DataError (one line) when that part is empty."""
    if part not in ("train", "heldout"):
        raise DataError(f"part must be 'train' or 'heldout', got {part!r}")
    train, held = split_by_path(entries, holdout, key=lambda e: e.rel)
    if part == "train" and not train:
        raise DataError(f"all {len(entries)} image files in {root} fall in the held-out "
                        f"{percent(holdout)}; lower holdout or add files")
    if part == "heldout" and not held:
        raise DataError(f"none of the {len(entries)} image files in {root} falls in the "
                        f"held-out {percent(holdout)}" if holdout > 0 else
                        f"{root} holds no held-out files: holdout is 0")
    return train if part == "train" else held


def load_folder(
    path: str | os.PathLike[str],
    size: int = 64,
    channels: Literal[1, 3] = 3,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    holdout: float = 0.0,
    part: Part = "train",
) -> ImageSet:
    """Decode an image folder to uint8 (N, channels, size, size), in memory or as a memmap.

    With ``holdout > 0`` only one ``part`` of the folder's split by file path is decoded (see
    :func:`split_by_path`): ``"train"`` the files kept for training, ``"heldout"`` the others;
    class labels and names are those of the whole folder either way. ``holdout=0`` is the
    whole folder (and ``part="heldout"`` an error).

    ``ImageSet.skipped`` counts the files that could not be used, by reason; they are also
    reported in one :class:`SkippedFilesWarning`. Raises DataError if no image is usable, if
    the part asked for holds no file, or for a holdout outside [0, MAX_HOLDOUT].
    """
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if size < 1:
        raise DataError(f"size must be positive, got {size}")
    root = Path(path).expanduser()
    entries, classes = scan_folder(root)
    if not entries:
        raise DataError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {root}")
    subset, where = None, str(root)
    if holdout > 0 or part != "train":
        entries = _select(entries, root, holdout, part)
        subset = f"{part} of holdout {holdout!r}"
        where = f"the {'training' if part == 'train' else 'held-out'} part of {root}"
    workers = workers or min(4, os.cpu_count() or 1)
    if len(entries) * channels * size * size <= memory_budget:
        out = np.empty((len(entries), channels, size, size), np.uint8)  # (N, C, S, S)
        count, kept, skipped = _decode_into(entries, out, size, channels, workers,
                                            f"decoding {root.name}")
        images = torch.from_numpy(out[:count].copy() if count < len(entries) else out)
        labels = np.asarray(kept, dtype=np.int64) if classes else None
        skipped = dict(skipped)
    else:
        key = _cache_key(root, entries, classes, size, channels, subset)
        cache = cache_root(cache_dir) / "folders" / key
        try:
            opened = _open_cached(cache) or _build_cache(cache, entries, classes, size,
                                                         channels, workers, root, subset)
        except OSError as e:
            raise DataError(f"cannot write the image cache in {cache}: {e.strerror or e}") from e
        images, labels, meta = opened
        count, skipped = len(images), dict(meta["skipped"])
    if count == 0:
        detail = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
        raise DataError(f"no usable image in {where}: all {len(entries)} files skipped "
                        f"({detail})")
    _warn_skipped(where, len(entries), skipped)
    return ImageSet(
        images=images,
        labels=None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        class_names=classes,
        skipped=skipped,
    )


class FolderParams(Params):
    name: Literal["folder"] = "folder"
    path: PathStr
    size: int = Field(64, ge=8, le=1024)
    channels: Channels = 3
    flip: bool = False
    labels: bool = True
    memory_budget_gib: float = Field(DEFAULT_MEMORY_BUDGET / 2**30, gt=0)
    # share of the files held out (by a hash of their relative path) and never trained on
    holdout: float = Field(DEFAULT_HOLDOUT, ge=0, le=MAX_HOLDOUT)


class ImageFolder:
    """Your own images from a folder (sub-folders = classes), resized and centre-cropped."""

    kind: ClassVar[str] = "image"
    source: ClassVar[str] = "your image folder (data.path)"

    Params = FolderParams

    @classmethod
    def describe(cls, params: FolderParams) -> DataInfo:
        """What the config says about the data: channels x size x size images (the classes
        are the sub-folders: known once the folder is read)."""
        return DataInfo("image", (params.channels, params.size, params.size))

    @classmethod
    def build(cls, params: FolderParams, *, seed: int, device="cpu") -> ImageTensorSource:
        """Trains on the files outside the held-out ``params.holdout`` share; ``heldout()``
        decodes the others on first use (DataError when ``holdout`` is 0 or holds no file)."""
        load = partial(load_folder, params.path, params.size, params.channels,
                       memory_budget=int(params.memory_budget_gib * 2**30),
                       holdout=params.holdout)
        data = load(part="train")

        def heldout() -> HeldOut:
            if params.holdout == 0:
                raise DataError(f"image folder {params.path} holds no held-out data: its "
                                "holdout is 0 (set data.holdout, e.g. 0.1)")
            held = load(part="heldout")
            name = Path(params.path).expanduser().name
            return heldout_of_set(held, f"{percent(params.holdout)} of the folder {name} held "
                                  f"out by file name ({len(held):,} images)",
                                  labels=params.labels, device=device)

        return source_from_set(data, seed=seed, device=device, flip=params.flip,
                               labels=params.labels, heldout=heldout)
