"""Image folders: formats and modes, skipped files, class sub-folders, the on-disk cache."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data import decode as decode_mod
from gankit.data.folder import ImageFolder, SkippedFilesWarning, load_folder
from gankit.errors import DataError


@pytest.fixture(autouse=True)
def isolated_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))


def _rgb(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def messy(tmp_path) -> Path:
    """Six usable images in assorted formats and modes, plus five broken files."""
    root = tmp_path / "messy"
    root.mkdir()
    _rgb(40, 30).save(root / "a.png")
    _rgb(30, 50, 1).save(root / "b.jpg", quality=90)
    _rgb(33, 33, 2).save(root / "c.webp")
    _rgb(20, 24, 3).convert("L").save(root / "d.BMP")
    Image.new("CMYK", (24, 20), (0, 255, 255, 0)).save(root / "e.jpeg")  # pure red
    Image.new("LA", (16, 16), (0, 0)).save(root / "f.png")  # fully transparent -> white
    raw = _encoded(_rgb(64, 64, 4), "PNG")
    (root / "truncated.png").write_bytes(raw[: len(raw) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("this is a text file with an image name\n")
    (root / "garbage.webp").write_bytes(os.urandom(300))
    (root / "broken.jpg").write_bytes(_encoded(_rgb(20, 20), "JPEG")[:40])
    (root / "README.txt").write_text("not an image extension: ignored")
    return root


def test_messy_folder_loads_and_reports_skips(messy):
    with pytest.warns(SkippedFilesWarning, match="skipped 5 of 11 files") as record:
        data = load_folder(messy, size=16, channels=3)
    assert len(record) == 1
    assert data.images.shape == (6, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.labels is None and data.class_names == ()
    assert sum(data.skipped.values()) == 5
    assert data.skipped["empty"] == 1 and data.skipped["not an image"] >= 2
    assert data.skipped.get("truncated", 0) >= 1
    red = data.images[4, :, 8, 8].tolist()  # e.jpeg, sorted order a, b, c, d, e, f
    assert red[0] > 200 and red[1] < 50 and red[2] < 50
    assert data.images[5].eq(255).all()  # transparent LA composited on white


def test_grayscale_and_high_depth(tmp_path):
    root = tmp_path / "gray"
    root.mkdir()
    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0..65472
    Image.fromarray(ramp).save(root / "deep.png")
    assert Image.open(root / "deep.png").mode.startswith("I")
    _rgb(32, 32).save(root / "color.png")
    pal = Image.new("P", (32, 32))
    pal.putpalette([0, 0, 0, 200, 200, 200] + [0] * 762)
    pal.paste(1, (0, 0, 32, 32))
    pal.save(root / "pal.png")
    data = load_folder(root, size=32, channels=1)
    assert data.images.shape == (3, 1, 32, 32)
    deep = data.images[1, 0].float()  # sorted: color, deep, pal
    assert deep.max() > 240 and deep.min() < 5  # scaled from 16 bits, not clipped at 255
    assert data.images[2].eq(200).all()


def test_resize_shorter_side_then_center_crop(tmp_path):
    root = tmp_path / "crop"
    root.mkdir()
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, 20:40] = 255  # white middle third; the outer thirds must be cropped away
    Image.fromarray(arr).save(root / "wide.png")
    data = load_folder(root, size=10)
    assert data.images.shape == (1, 3, 10, 10)
    assert data.images[0, :, :, 1:-1].min() > 200


def test_class_subfolders(tmp_path):
    root = tmp_path / "classes"
    for i, name in enumerate(["dogs", "cats", "birds"]):
        (root / name / "nested").mkdir(parents=True)
        for j in range(i + 1):
            _rgb(12, 12, j).save(root / name / f"{j}.png")
        _rgb(12, 12).save(root / name / "nested" / "deep.png")
    (root / ".hidden").mkdir()
    _rgb(12, 12).save(root / ".hidden" / "x.png")
    data = load_folder(root, size=8)
    assert data.class_names == ("birds", "cats", "dogs")
    assert data.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2]
    params = ImageFolder.Params(path=str(root), size=8, holdout=0)    # every file trains
    source = ImageFolder.build(params, seed=0, device="cpu")
    assert source.info.num_classes == 3 and source.info.shape == (3, 8, 8)
    batch = source.next_batch(9)
    assert sorted(batch["y"].tolist()) == [0, 0, 0, 0, 1, 1, 1, 2, 2]
    unlabelled = ImageFolder.build(params.model_copy(update={"labels": False}), seed=0,
                                   device="cpu")
    assert "y" not in unlabelled.next_batch(2) and unlabelled.info.num_classes == 0


def test_no_usable_image_is_a_clear_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_text("nope")
    (tmp_path / "bad" / "y.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="no usable image.*2 files skipped"):
        load_folder(tmp_path / "bad")
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no image files"):
        load_folder(tmp_path / "none")
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "missing")


def test_disk_cache_built_once_and_reused(messy, tmp_path, monkeypatch):
    calls = []
    real = decode_mod.decode_image
    monkeypatch.setattr(decode_mod, "decode_image",
                        lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    with pytest.warns(SkippedFilesWarning):
        first = load_folder(messy, size=16, memory_budget=1)
    assert isinstance(first.images, np.memmap) and first.images.shape == (6, 3, 16, 16)
    decoded = len(calls)
    assert decoded == 10  # every non-empty candidate once
    with pytest.warns(SkippedFilesWarning):
        in_memory = load_folder(messy, size=16)
    np.testing.assert_array_equal(np.asarray(first.images), in_memory.images.numpy())

    calls.clear()
    cache_files = list((tmp_path / "cache" / "folders").glob("*/images.u8"))
    assert len(cache_files) == 1
    mtime = cache_files[0].stat().st_mtime_ns
    with pytest.warns(SkippedFilesWarning, match="skipped 5"):
        second = load_folder(messy, size=16, memory_budget=1)
    assert calls == [] and cache_files[0].stat().st_mtime_ns == mtime
    assert second.skipped == first.skipped
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))

    # A changed folder gets a fresh cache, and the stale one is removed.
    _rgb(16, 16, 9).save(messy / "g.png")
    with pytest.warns(SkippedFilesWarning):
        third = load_folder(messy, size=16, memory_budget=1)
    assert len(third) == 7 and len(calls) == 11
    assert len(list((tmp_path / "cache" / "folders").iterdir())) == 1


def test_disk_cache_serves_batches(tmp_path):
    root = tmp_path / "cls"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for j in range(3):
            _rgb(10, 10, j).save(root / name / f"{j}.png")
    params = ImageFolder.Params(path=str(root), size=8, channels=1, memory_budget_gib=1e-9, holdout=0,
                                flip=True)
    source = ImageFolder.build(params, seed=1, device="cpu")
    assert isinstance(source.images, np.memmap)
    batch = source.next_batch(8)
    assert batch["x"].shape == (8, 1, 8, 8) and batch["x"].abs().max() <= 1
    assert sorted(batch["y"][:6].tolist()) == [0, 0, 0, 1, 1, 1]
    again = ImageFolder.build(params, seed=1, device="cpu")
    assert torch.equal(again.next_batch(8)["x"], batch["x"])


def test_params():
    with pytest.raises(ValueError):
        ImageFolder.Params()  # path is required
    with pytest.raises(ValueError):
        ImageFolder.Params(path="x", channels=2)
    with pytest.raises(ValueError):
        ImageFolder.Params(path="x", split="train")  # meaningless for a folder
    assert ImageFolder.Params(path="x").size == 64
