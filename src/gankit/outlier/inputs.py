"""Images to score: a folder, a ``.npz`` array, or a built-in split (``mnist:test``).

Every input becomes :class:`Images`: uint8 (N, C, H, W), one name per image, and the
images' class labels when the source has them (built-in splits, an ``.npz`` with a
``labels`` array). Folders are decoded by the one image decoder (:mod:`gankit.data.decode`),
at their own size, so that a size the model does not take is seen and refused (or, with
``--resize``, converted by the same decoder's rule: shorter side resized, centre crop).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gankit.data import decode
from gankit.data import folder as folder_mod
from gankit.errors import DataError, GankitError
from gankit.registry import DATASETS

LUMA = (0.299, 0.587, 0.114)       # ITU-R 601-2, as Pillow's convert("L")
NPZ_KEYS = ("images", "x")         # the array of images in an .npz, else its only array


@dataclass
class Images:
    """Images to score: ``images`` uint8 (N, C, H, W), ``names`` (N,), ``labels`` int64
    (N,) or None, and ``source``: what was read (for messages and the CSV)."""

    images: torch.Tensor
    names: list[str]
    labels: torch.Tensor | None
    source: str

    def __len__(self) -> int:
        return len(self.names)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])


def is_builtin(spec: str) -> bool:
    """Whether ``spec`` names a built-in split (``NAME:SPLIT`` of a registered image data
    set) rather than a path."""
    name, sep, split = spec.partition(":")
    return bool(sep) and split in ("train", "test") and name in DATASETS.names() \
        and not Path(spec).exists()


def read_input(spec: str | Path, limit: int | None = None) -> Images:
    """The images of ``spec``: ``NAME:SPLIT`` (e.g. ``mnist:test``, ``fashion-mnist:test``:
    the data set's official split at its own size, with labels), a ``.npz`` file (uint8
    (N, H, W), (N, C, H, W) or (N, H, W, C) under ``images``/``x`` or as its only array;
    optional ``labels``) or a folder of images (searched recursively). ``limit``: the first
    ``limit`` images only. GankitError (one line) when it cannot be read or holds none."""
    spec = str(spec)
    if is_builtin(spec):
        found = _builtin(spec, limit)
    elif spec.lower().endswith(".npz"):
        found = _npz(Path(spec), limit)
    elif Path(spec).is_dir():
        found = _folder(Path(spec), limit)
    else:
        splits = ", ".join(f"{n}:test" for n in DATASETS.names() if _is_image_set(n))
        raise GankitError(f"--input {spec}: not a folder, an .npz file or a built-in split "
                          f"({splits})")
    if not len(found):
        raise GankitError(f"--input {spec} holds no images")
    return found


def _is_image_set(name: str) -> bool:
    params = getattr(DATASETS.get(name), "Params", None)
    return params is not None and "split" in params.model_fields and "binarize" in \
        params.model_fields


def _builtin(spec: str, limit: int | None) -> Images:
    name, _, split = spec.partition(":")
    if not _is_image_set(name):
        raise GankitError(f"--input {spec}: {name} is not an image data set with splits")
    cls = DATASETS.get(name)
    params = cls.Params.model_validate({"name": name, "split": split, "labels": True})
    try:
        src = cls.build(params, seed=0)
    except (GankitError, OSError) as e:
        raise GankitError(f"--input {spec}: cannot read it ({' '.join(str(e).split())})") \
            from None
    n = len(src) if limit is None else min(limit, len(src))
    images = torch.as_tensor(np.asarray(src.images[:n]))
    labels = None if src.labels is None else src.labels[:n].cpu()
    return Images(images, [f"{spec}[{i}]" for i in range(n)], labels, spec)


def _npz(path: Path, limit: int | None) -> Images:
    import zipfile
    not_npz = (f"--input {path}: not an .npz archive (a zip of .npy arrays, as numpy.savez "
               "writes)")
    if not path.is_file():
        raise GankitError(f"--input {path}: no such file")
    try:
        if not zipfile.is_zipfile(path):      # numpy would read a lone .npy, or call it pickled
            raise GankitError(not_npz)
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = next((k for k in NPZ_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise GankitError(f"--input {path}: no images array (name it 'images' or "
                                  f"'x'; found {', '.join(keys) or 'none'})")
            arr = z[key]
            labels = z["labels"] if "labels" in keys else None
            if not all(isinstance(a, np.ndarray) for a in (arr, labels) if a is not None):
                raise GankitError(not_npz)       # a zip member that is not a .npy: bytes
            arr, labels = arr[:limit], None if labels is None else labels[:limit]
    except (OSError, ValueError) as e:
        raise GankitError(f"--input {path}: cannot read it ({e})") from None
    if arr.dtype != np.uint8:
        raise GankitError(f"--input {path}: expected uint8 images (0..255), got {arr.dtype}")
    images = torch.from_numpy(_nchw(arr, path))
    if labels is not None:
        labels = torch.as_tensor(labels).long()
        if len(labels) != len(images):
            raise GankitError(f"--input {path}: {len(labels)} labels for {len(images)} images")
    return Images(images, [f"{path.name}[{i}]" for i in range(len(images))], labels, str(path))


def _nchw(arr: np.ndarray, path: Path) -> np.ndarray:
    """(N, H, W) / (N, C, H, W) / (N, H, W, C) with C in {1, 3} -> (N, C, H, W)."""
    if arr.ndim == 3:
        return np.ascontiguousarray(arr[:, None])
    if arr.ndim == 4 and arr.shape[1] in (1, 3):
        return np.ascontiguousarray(arr)
    if arr.ndim == 4 and arr.shape[3] in (1, 3):
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
    raise GankitError(f"--input {path}: images of shape {arr.shape} are not (N, H, W), "
                      "(N, C, H, W) or (N, H, W, C) with 1 or 3 channels")


def _folder(path: Path, limit: int | None) -> Images:
    """Each file decoded at its own size and channel count (1 for grey modes, else 3),
    named by its relative path; unreadable files are skipped with one note. Files of
    different shapes are kept as :class:`MixedShapes`, which :func:`to_model` refuses or
    (``--resize``) converts one by one."""
    try:
        entries, _ = folder_mod.scan_folder(path)
    except DataError as e:
        raise GankitError(f"--input {path}: {e}") from None
    entries = entries[:limit]
    arrays, names, skipped = [], [], []
    for entry in entries:
        arr, _why = decode.try_decode(_native, entry.path, entry.size)
        if arr is None:
            skipped.append(entry.rel)
            continue
        arrays.append(arr)
        names.append(entry.rel)
    if skipped:
        from gankit.log import note, some
        note(f"skipped {len(skipped)} unreadable file{'s' * (len(skipped) > 1)} in {path}: "
             f"{some(skipped)}")
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        return Images(MixedShapes(arrays), names, None, str(path))
    images = torch.from_numpy(np.stack(arrays)) if arrays else torch.zeros((0, 1, 1, 1),
                                                                           dtype=torch.uint8)
    return Images(images, names, None, str(path))


def _native(path: Path) -> np.ndarray:
    """One file as uint8 (C, H, W) at its own size: 1 channel for grey modes, else 3."""
    img = decode.open_image(path)
    grey = img.mode in ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
    return decode.to_array(img, 1 if grey else 3)


class MixedShapes(list):
    """A folder's images of different shapes (a list of uint8 (C, H, W) arrays): scored
    only after ``--resize`` brings each to the model's shape."""

    @property
    def shape(self) -> tuple:
        return (len(self), *self[0].shape)


def image_shape(info, run: str | Path) -> tuple[int, int, int]:
    """The (C, H, W) images a model of data ``info`` (its ``DataInfo``) takes. GankitError
    (one line) when the model was not trained on images (points, text, image pairs): no
    image it could score, and no conversion (``--resize``) that would make one."""
    if info.kind != "image" or len(info.shape) != 3:
        shape = "x".join(map(str, info.shape))
        raise GankitError(f"{run}: the model was trained on {info.kind} data (samples of "
                          f"shape {shape}), not images; gankit score scores images only")
    return tuple(int(s) for s in info.shape)


def to_model(found: Images, shape: tuple[int, int, int], resize: bool) -> tuple[Images, str]:
    """``found`` as the model takes it (C, H, W), and a note of what was converted ("" when
    nothing was). Without ``resize``, GankitError (one line) when the channels or the size
    differ; with it, channels are converted (RGB -> grey by ITU-R 601-2 luma, grey -> RGB
    by repetition) and the size by an antialiased bilinear resize (folders: the decoder's
    shorter-side resize and centre crop)."""
    images = found.images
    own = (sorted({tuple(a.shape) for a in images}) if isinstance(images, MixedShapes)
           else [found.shape])
    if own == [tuple(shape)]:
        return found, ""
    what = " and ".join(f"{c}x{h}x{w}" for c, h, w in own[:2]) + (" ..." if len(own) > 2 else "")
    want = "x".join(map(str, shape))
    if not resize:
        raise GankitError(f"--input {found.source}: images are {what} (channels x height x "
                          f"width) but the model takes {want}; pass --resize to convert them")
    arrays = list(images) if isinstance(images, MixedShapes) else None
    if arrays is not None:
        out = torch.stack([convert(torch.from_numpy(a)[None], shape)[0] for a in arrays])
    else:
        out = torch.cat([convert(images[i:i + 1024], shape) for i in range(0, len(images), 1024)])
    note = (f"--resize: converted {len(out)} images from {what} to {want} (channels: luma / "
            f"repetition; size: antialiased bilinear, centre crop of non-square images)")
    return replace(found, images=out), note


def convert(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, *shape): channels by luma or repetition, then the
    shorter side resized to the target size and the centre cropped (square targets), by
    an antialiased bilinear interpolation."""
    c, h, w = shape
    x = images.float()
    if x.shape[1] == 3 and c == 1:
        x = sum(wt * x[:, i:i + 1] for i, wt in enumerate(LUMA))
    elif x.shape[1] == 1 and c == 3:
        x = x.expand(-1, 3, -1, -1)
    ih, iw = x.shape[2:]
    scale = max(h / ih, w / iw)
    th, tw = max(h, round(ih * scale)), max(w, round(iw * scale))
    if (th, tw) != (ih, iw):
        x = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False,
                          antialias=scale < 1)
    top, left = (th - h) // 2, (tw - w) // 2
    x = x[:, :, top:top + h, left:left + w]
    return x.round().clamp(0, 255).to(torch.uint8)
