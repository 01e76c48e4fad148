"""Caches keyed by content (issue 20, section 2): folders whose files share names, sizes and
modification times but not pixels never share a cache entry, and a cached value equals a cold
computation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.data.folder import load_folder
from gankit.eval import api as eval_api

pytestmark = pytest.mark.filterwarnings("ignore::gankit.metrics.fid.FIDWarning")
STAMP = (1_600_000_000, 1_600_000_000)          # one access / modification time for all files


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))


def bmp_folder(folder: Path, seed: int, n: int = 4, size: int = 16) -> Path:
    """n BMPs (a fixed-size format: same dimensions, same byte count) with one mtime."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        path = folder / f"{i}.bmp"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        os.utime(path, STAMP)
    return folder


def listing(folder: Path) -> list[tuple[str, int, int]]:
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())]


def fid(a: Path, b: Path, cache: bool = True) -> float:
    return eval_api.fid_between(a, b, fid_method="svd", use_cache=cache)["fid"]


def test_fid_cache_tells_same_looking_folders_apart(tmp_path, small_inception):
    x, y = bmp_folder(tmp_path / "x", 0), bmp_folder(tmp_path / "y", 1)
    a = bmp_folder(tmp_path / "a", 2)
    assert listing(x) == listing(y)                       # names, sizes, mtimes: all the same
    x_a = fid(x, a)
    y_a = fid(y, a)
    assert fid(x, y) > 1                                  # was -2.8e-14
    assert fid(x, a) == x_a == fid(x, a, cache=False)     # was Y's value after computing Y
    assert fid(y, a) == y_a == fid(y, a, cache=False)
    assert x_a != pytest.approx(y_a)


def test_fid_cache_sees_a_file_rewritten_in_place(tmp_path, small_inception):
    x, a = bmp_folder(tmp_path / "x", 0), bmp_folder(tmp_path / "a", 2)
    before = fid(x, a)
    bmp_folder(tmp_path / "x", 5)                         # new pixels, same names/sizes/mtimes
    assert fid(x, a) == fid(x, a, cache=False) != pytest.approx(before)


def test_memmap_cache_sees_a_file_rewritten_in_place(tmp_path):
    x = bmp_folder(tmp_path / "x", 0)
    first = np.asarray(load_folder(x, size=16, memory_budget=1).images).copy()
    old = listing(x)
    bmp_folder(tmp_path / "x", 7)
    assert listing(x) == old
    again = np.asarray(load_folder(x, size=16, memory_budget=1).images)
    cold = load_folder(x, size=16).images.numpy()         # in memory: no cache at all
    np.testing.assert_array_equal(again, cold)
    assert not np.array_equal(again, first)


def test_feature_network_is_keyed_by_the_weights_bytes(tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(eval_api, "load_inception",
                        lambda path, **k: loaded.append(k["sha256"]) or object())
    monkeypatch.setattr(eval_api, "_EXTRACTORS", {})
    weights = tmp_path / "w.pth"
    for content in (b"first weights", b"other weights"):  # same size
        weights.write_bytes(content)
        os.utime(weights, STAMP)
        eval_api.get_extractor(weights)
        eval_api.get_extractor(weights)                  # loaded once per content
    assert len(loaded) == 2 and loaded[0] != loaded[1]
