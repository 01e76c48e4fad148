"""IDX parsing, MNIST / Fashion-MNIST loading, and the shared ImageTensorSource."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.data import idx
from gankit.data.download import Remote
from gankit.data.images import ImageTensorSource, fit_size
from gankit.errors import DataError


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("GANKIT_OFFLINE", "1")  # tests never touch the network


def _idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _shared_root() -> Path | None:
    for candidate in (os.environ.get("GANKIT_DATA"),
                      Path(__file__).resolve().parents[1].parent / "shared" / "data"):
        if candidate and (Path(candidate) / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    return None


# --- IDX parsing ---------------------------------------------------------------------------

def test_parse_idx_roundtrip_types():
    u8 = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(idx.parse_idx(_idx_bytes(u8)), u8)
    i32 = np.array([1, -2, 70000], dtype=np.int32)
    out = idx.parse_idx(_idx_bytes(i32, 0x0C))
    np.testing.assert_array_equal(out, i32)
    assert out.dtype.isnative


@pytest.mark.parametrize("raw, match", [
    (b"\x00\x01\x08\x01" + b"\x00" * 8, "bad magic"),
    (b"\x00\x00\x07\x01" + b"\x00" * 8, "bad magic"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "needs 5"),
])
def test_parse_idx_rejects_malformed(raw, match):
    with pytest.raises(DataError, match=match):
        idx.parse_idx(raw)


def test_read_idx_gzip_and_plain(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
    (tmp_path / "a").write_bytes(_idx_bytes(arr))
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "a.gz"), arr)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "a"), arr)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(_idx_bytes(arr))[:-12])
    with pytest.raises(DataError, match="cannot read"):
        idx.read_idx(tmp_path / "bad.gz")


def _fake_mnist(root: Path, monkeypatch, n: int = 7) -> np.ndarray:
    """Write a tiny MNIST-format test split and point the expected MD5s at it."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    folder = root / "mnist"
    folder.mkdir(parents=True)
    remotes = dict(idx.REMOTES["mnist"])
    for stem, arr in [("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)]:
        raw = gzip.compress(_idx_bytes(arr))
        (folder / f"{stem}.gz").write_bytes(raw)
        remotes[f"{stem}.gz"] = Remote(f"{stem}.gz", hashlib.md5(raw).hexdigest(), ())
    monkeypatch.setitem(idx.REMOTES, "mnist", remotes)
    return images, labels


def test_load_mnist_from_files(tmp_path, monkeypatch):
    images, labels = _fake_mnist(tmp_path, monkeypatch)
    data = idx.load_mnist("test", tmp_path)
    assert data.images.shape == (7, 1, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.int64
    np.testing.assert_array_equal(data.images[:, 0].numpy(), images)
    np.testing.assert_array_equal(data.labels.numpy(), labels)
    assert data.class_names == tuple("0123456789")


def test_load_mnist_env_root_and_missing_file(tmp_path, monkeypatch):
    _fake_mnist(tmp_path, monkeypatch)
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path))
    assert len(idx.load_mnist("test")) == 7
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*place it in"):
        idx.load_mnist("train")


def test_load_mnist_rejects_tampered_file(tmp_path, monkeypatch):
    _fake_mnist(tmp_path, monkeypatch)
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.zeros(7, np.uint8))))
    with pytest.raises(DataError, match="MD5"):
        idx.load_mnist("test", tmp_path)


@pytest.mark.parametrize("name, first_class", [("mnist", "0"), ("fashion-mnist", "T-shirt/top")])
def test_real_test_split(name, first_class):
    root = _shared_root()
    if root is None or not (root / name).is_dir():
        pytest.skip("shared MNIST files not present")
    data = idx.load_mnist("test", root, name)
    assert data.images.shape == (10000, 1, 28, 28)
    assert data.labels.shape == (10000,) and int(data.labels.max()) == 9
    assert data.class_names[0] == first_class
    assert 20 < float(data.images.float().mean()) < 100  # real pictures, not zeros


def test_builders_on_real_data():
    root = _shared_root()
    if root is None:
        pytest.skip("shared MNIST files not present")
    params = idx.MNIST.Params(root=str(root), split="test", size=32)
    source = idx.MNIST.build(params, seed=0, device="cpu")
    assert source.info.shape == (1, 32, 32) and source.info.num_classes == 10
    batch = source.next_batch(16)
    assert batch["x"].shape == (16, 1, 32, 32) and batch["y"].dtype == torch.int64
    params = idx.FashionMNIST.Params(root=str(root), split="test", labels=False)
    batch = idx.FashionMNIST.build(params, seed=0, device="cpu").next_batch(4)
    assert set(batch) == {"x"} and batch["x"].shape == (4, 1, 28, 28)


def test_params_forbid_extra_and_check_name():
    with pytest.raises(ValueError):
        idx.MNIST.Params(sizee=32)
    with pytest.raises(ValueError):
        idx.MNIST.Params(name="fashion-mnist")
    assert idx.FashionMNIST.Params().size == 28


# --- ImageTensorSource ---------------------------------------------------------------------

def _images(n=10, c=1, s=4):
    return torch.arange(n * c * s * s).reshape(n, c, s, s).remainder(256).to(torch.uint8)


def test_batches_scaled_and_cover_each_epoch():
    images = _images()
    labels = torch.arange(10)
    source = ImageTensorSource(images, labels, seed=3)
    seen = torch.cat([source.next_batch(3)["y"] for _ in range(10)])  # 30 = three epochs
    for epoch in range(3):
        assert sorted(seen[epoch * 10:(epoch + 1) * 10].tolist()) == list(range(10))
    batch = source.next_batch(5)
    x, y = batch["x"], batch["y"]
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(x, images[y].float() / 127.5 - 1)
    assert source.epoch == 3 and source.info.num_classes == 10


def test_seed_determines_order():
    a = ImageTensorSource(_images(), torch.arange(10), seed=1).next_batch(10)["y"]
    b = ImageTensorSource(_images(), torch.arange(10), seed=1).next_batch(10)["y"]
    c = ImageTensorSource(_images(), torch.arange(10), seed=2).next_batch(10)["y"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_resume_yields_identical_batches():
    images = torch.randint(0, 256, (13, 3, 5, 5), dtype=torch.uint8)
    original = ImageTensorSource(images, torch.arange(13), seed=7, flip=True)
    for _ in range(4):
        original.next_batch(5)  # ends mid-epoch, after one boundary
    state = original.state_dict()
    assert set(state) == {"epoch", "position", "generator", "permutation"}
    # Through the checkpoint format (safetensors + JSON skeleton), as a resumed run sees it.
    ckpt = pytest.importorskip("gankit.train.checkpoint")
    from safetensors.torch import load as st_load, save as st_save
    tensors, skeleton = ckpt.flatten_state(state, "data")
    skeleton = json.loads(json.dumps(skeleton))
    restored = ckpt.unflatten_state(skeleton, st_load(st_save(tensors)))
    resumed = ImageTensorSource(images, torch.arange(13), seed=999, flip=True)
    resumed.load_state_dict(restored)
    for _ in range(6):
        a, b = original.next_batch(4), resumed.next_batch(4)
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])


def test_state_for_other_data_rejected():
    state = ImageTensorSource(_images(10), seed=0).state_dict()
    with pytest.raises(DataError, match="10 images"):
        ImageTensorSource(_images(11), seed=0).load_state_dict(state)


def test_flip_is_horizontal_and_batchwise():
    images = torch.randint(0, 256, (64, 1, 3, 3), dtype=torch.uint8)
    source = ImageTensorSource(images, torch.arange(64), seed=0, flip=True)
    batch = source.next_batch(64)
    plain = images[batch["y"]].float() / 127.5 - 1
    flipped = (batch["x"] == plain.flip(-1)).flatten(1).all(1)
    same = (batch["x"] == plain).flatten(1).all(1)
    assert bool((flipped | same).all())
    assert 10 < int(flipped.sum()) < 54


def test_memmap_images(tmp_path):
    arr = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.uint8,
                                    shape=(6, 1, 2, 2))
    arr[:] = np.arange(6, dtype=np.uint8)[:, None, None, None]
    arr.flush()
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    source = ImageTensorSource(mm, seed=0)
    x = source.next_batch(6)["x"]
    assert sorted(((x[:, 0, 0, 0] + 1) * 127.5).round().int().tolist()) == list(range(6))
    assert "y" not in source.next_batch(2)


def test_sample_leaves_training_stream_alone():
    a = ImageTensorSource(_images(), torch.arange(10), seed=5)
    b = ImageTensorSource(_images(), torch.arange(10), seed=5)
    real = a.sample(4, seed=0)
    assert real.shape == (4, 1, 4, 4) and torch.equal(real, b.sample(4, seed=0))
    assert torch.equal(a.next_batch(10)["y"], b.next_batch(10)["y"])


def test_invalid_inputs():
    with pytest.raises(DataError):
        ImageTensorSource(torch.zeros(0, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(DataError):
        ImageTensorSource(torch.zeros(2, 1, 2, 2))
    with pytest.raises(DataError):
        ImageTensorSource(_images(3), torch.arange(2))


def test_fit_size_pad_and_resize():
    images = torch.full((3, 1, 28, 28), 200, dtype=torch.uint8)
    padded = fit_size(images, 32, "pad")
    assert padded.shape == (3, 1, 32, 32) and padded.dtype == torch.uint8
    assert padded[:, :, 2:30, 2:30].eq(200).all() and padded[:, :, :2].eq(0).all()
    resized = fit_size(images, 64)
    assert resized.shape == (3, 1, 64, 64) and resized.dtype == torch.uint8
    assert resized.eq(200).all()  # a constant image stays constant
    assert fit_size(images, 28) is images
    assert fit_size(images, 14).shape == (3, 1, 14, 14)
    with pytest.raises(DataError):
        fit_size(images, 16, "pad")
