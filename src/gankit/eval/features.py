"""Feature extraction for image folders, in-memory images and generators, with a stats cache.

Images reach the network as uint8 RGB (what a PNG holds), so a folder of saved samples and the
same samples fed from memory give the same features. Folder results are cached under
``$GANKIT_CACHE/stats`` (default: the user cache folder) keyed by the folder's content (every
image's name and bytes, :mod:`gankit.contentkey`), the decoder's rules and the protocol
(weights SHA-256, resize mode): a stale entry is never used.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from gankit.contentkey import content_key
from gankit.data.decode import DECODER_VERSION, IMAGE_EXTENSIONS, decode_image, is_image_name, try_decode
from gankit.errors import GankitError
from gankit.eval.inception import InceptionFeatures, cache_dir
from gankit.metrics.fid import feature_statistics

CACHE_VERSION = 2       # 2: keyed by file contents and the decoder version


@dataclass
class Features:
    """pool3 features (N, 2048) and unbiased logits (N, 1008), float64, with their protocol."""

    pool3: np.ndarray
    logits: np.ndarray | None
    protocol: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.pool3.shape[0])

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        return feature_statistics(self.pool3)                          # (2048,), (2048, 2048)


# ----------------------------------------------------------------------------- images


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder`` (not below: as pytorch-fid), sorted by name; which
    names count is the shared decoder's rule (:func:`gankit.data.decode.is_image_name`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GankitError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if is_image_name(p.name) and p.is_file())
    if not files:
        raise GankitError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def load_image(path: Path) -> torch.Tensor:
    """One image file -> uint8 RGB (3, H, W) at its own size, decoded by the rules every
    gankit reader shares (:mod:`gankit.data.decode`: 16-bit, alpha on white, EXIF, ...).
    GankitError naming the file when it cannot be decoded."""
    arr, why = try_decode(partial(decode_image, channels=3), Path(path))
    if arr is None:
        raise GankitError(f"cannot read image {path}: {why}")
    return torch.from_numpy(arr)                                       # (3, H, W)


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] (B, C, H, W) -> uint8 (B, C, H, W), rounded like a PNG save."""
    return ((x.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------- extraction


def extract(batches: Iterator[torch.Tensor], extractor: InceptionFeatures,
            progress: Callable[[int], None] | None = None) -> Features:
    """Run the extractor over batches of images (B, C, H, W); concatenate in float64."""
    pool3, logits = [], []
    for batch in batches:
        p, lg = extractor(batch)
        pool3.append(p.double().numpy())
        logits.append(lg.double().numpy())
        if progress is not None:
            progress(len(batch))
    if not pool3:
        raise GankitError("no images to extract features from")
    return Features(np.concatenate(pool3), np.concatenate(logits), extractor.protocol())


def _folder_batches(files: list[Path], batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(files), batch_size):
        images = [load_image(p) for p in files[start:start + batch_size]]
        if len({tuple(im.shape) for im in images}) == 1:
            yield torch.stack(images)                                  # (B, 3, H, W)
        else:
            # Mixed sizes: preprocessing is per image anyway, so send them one by one.
            yield from (im[None] for im in images)


def generator_batches(sample_fn: Callable[[int], torch.Tensor], n: int,
                      batch_size: int) -> Iterator[torch.Tensor]:
    """Draw ``n`` images from ``sample_fn(b) -> (b, C, H, W) in [-1, 1]``, as uint8 batches."""
    done = 0
    while done < n:
        b = min(batch_size, n - done)
        with torch.no_grad():
            x = sample_fn(b)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != b:
            raise GankitError(f"sample_fn({b}) must return a (b, C, H, W) tensor, got "
                              f"{getattr(x, 'shape', type(x).__name__)}")
        yield to_uint8_images(x)
        done += b


def generator_features(sample_fn: Callable[[int], torch.Tensor], n: int,
                       extractor: InceptionFeatures, batch_size: int = 50) -> Features:
    feats = extract(generator_batches(sample_fn, n, batch_size), extractor)
    feats.protocol.update(source="generator", quantized="uint8")
    return feats


# ----------------------------------------------------------------------------- cache


def _cache_key(files: list[Path], protocol: dict) -> str:
    """Key of a folder's cached features and statistics: the images' names (they fix the
    order of the features) and bytes, the decoder's rules and the feature protocol (weights
    SHA-256, resize mode): :func:`gankit.contentkey.content_key`."""
    settings = {"v": CACHE_VERSION, "decoder": DECODER_VERSION, "protocol": protocol}
    return content_key(settings, [(p.name, p) for p in files])


def stats_cache_dir() -> Path:
    return cache_dir() / "stats"


def _read_cache(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None  # a corrupt or half-written entry is recomputed rather than trusted


def _write_cache(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def folder_features(folder: str | os.PathLike, extractor: InceptionFeatures, *,
                    batch_size: int = 50, use_cache: bool = True,
                    progress: Callable[[int], None] | None = None) -> Features:
    """Features of every image in ``folder`` (cached as float32 features + float64 stats)."""
    folder = Path(folder)
    files = list_images(folder)
    protocol = {**extractor.protocol(), "source": str(folder.resolve())}
    key = _cache_key(files, extractor.protocol())
    path = stats_cache_dir() / f"{key}-features.npz"
    cached = _read_cache(path) if use_cache and path.is_file() else None
    if cached is not None and "pool3" in cached:
        return Features(cached["pool3"].astype(np.float64), cached["logits"].astype(np.float64),
                        protocol)
    feats = extract(_folder_batches(files, batch_size), extractor, progress)
    feats.protocol = protocol
    if use_cache:
        _write_cache(path, {"pool3": feats.pool3.astype(np.float32),
                            "logits": feats.logits.astype(np.float32)})
        _store_stats(key, feats)
    return feats


def _store_stats(key: str, feats: Features) -> None:
    mu, sigma = feats.statistics()
    _write_cache(stats_cache_dir() / f"{key}-stats.npz",
                 {"mu": mu, "sigma": sigma, "n": np.asarray(len(feats), dtype=np.int64)})


def folder_statistics(folder: str | os.PathLike, extractor: InceptionFeatures, *,
                      batch_size: int = 50, use_cache: bool = True,
                      progress: Callable[[int], None] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """(mu, sigma, n, protocol) of the folder's pool3 features, from the cache when possible."""
    folder = Path(folder)
    files = list_images(folder)
    key = _cache_key(files, extractor.protocol())
    protocol = {**extractor.protocol(), "source": str(folder.resolve())}
    path = stats_cache_dir() / f"{key}-stats.npz"
    cached = _read_cache(path) if use_cache and path.is_file() else None
    if cached is not None and {"mu", "sigma", "n"} <= cached.keys():
        return cached["mu"], cached["sigma"], int(cached["n"]), {**protocol, "cached": True}
    feats = extract(_folder_batches(files, batch_size), extractor, progress)
    mu, sigma = feats.statistics()
    if use_cache:
        _store_stats(key, feats)
    return mu, sigma, len(feats), protocol
