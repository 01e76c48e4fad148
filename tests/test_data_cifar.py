"""CIFAR-10 from a tarball built here in the original format, and the safe unpickler."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.data import cifar
from gankit.data.download import REMOTES, Remote
from gankit.errors import DataError

CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
           b"dog", b"frog", b"horse", b"ship", b"truck"]
BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("GANKIT_OFFLINE", "1")  # tests never touch the network


def _batch(seed: int, n: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


def _write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def _members(batches: dict[str, dict]) -> dict[str, bytes]:
    # Protocol 2, like the original files (written by Python 2's cPickle).
    meta = {b"label_names": CLASSES, b"num_vis": 3072}
    members = {"batches.meta": pickle.dumps(meta, protocol=2)}
    members.update({name: pickle.dumps(b, protocol=2) for name, b in batches.items()})
    return members


@pytest.fixture
def tarball(tmp_path) -> tuple[Path, dict[str, dict]]:
    batches = {name: _batch(i) for i, name in enumerate(BATCHES)}
    return _write_tar(tmp_path / cifar.ARCHIVE, _members(batches)), batches


def test_train_and_test_splits(tarball):
    path, batches = tarball
    train = cifar.load_cifar_archive(path, "train")
    assert train.images.shape == (15, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64
    expected = np.concatenate([batches[n][b"data"] for n in BATCHES[:5]]).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(train.images.numpy(), expected)
    assert train.labels.tolist() == sum((batches[n][b"labels"] for n in BATCHES[:5]), [])
    assert train.class_names[0] == "airplane" and len(train.class_names) == 10
    test = cifar.load_cifar_archive(path, "test")
    np.testing.assert_array_equal(test.images.numpy().reshape(3, -1),
                                  batches["test_batch"][b"data"])


def test_channel_layout_is_planar_rgb(tmp_path):
    # The 3072 bytes are a red plane, then green, then blue, each row-major 32x32.
    batch = _batch(0, n=1)
    batch[b"data"] = np.repeat(np.array([10, 20, 30], np.uint8), 1024)[None]
    path = _write_tar(tmp_path / "c.tar.gz", _members({n: batch for n in BATCHES}))
    images = cifar.load_cifar_archive(path, "test").images
    assert images[0, :, 5, 7].tolist() == [10, 20, 30]


CALLS: list[str] = []


def _record_call(arg: str) -> None:
    CALLS.append(arg)


class _Evil:
    """Unpickling this calls ``_record_call``: what a code-running payload would do."""

    def __reduce__(self):
        return (_record_call, ("pwned",))


class _EvilShell:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize("payload", [
    {b"data": _Evil(), b"labels": []},
    {b"data": _EvilShell(), b"labels": []},
    {b"data": np.zeros((1, 3072), np.float32), b"labels": [0]},  # not uint8
    {b"data": np.array([{"x": 1}], dtype=object), b"labels": [0]},
])
def test_malicious_or_foreign_pickle_rejected(tmp_path, payload, monkeypatch):
    members = _members({n: _batch(i) for i, n in enumerate(BATCHES)})
    members["data_batch_3"] = pickle.dumps(payload, protocol=2)
    called = []  # had the pickle run, os.system would have been called
    monkeypatch.setattr(os, "system", lambda *a: called.append(a) or 0)
    path = _write_tar(tmp_path / "c.tar.gz", members)
    with pytest.raises(DataError, match="data_batch_3"):
        cifar.load_cifar_archive(path, "train")
    assert not called and not CALLS


def test_unpickler_refuses_every_other_global():
    # Sanity check that the payload is live: plain pickle would run it.
    pickle.loads(pickle.dumps(_Evil()))
    assert CALLS == ["pwned"]
    CALLS.clear()
    for protocol in (0, 2, 4, 5):
        raw = pickle.dumps({b"x": os.system}, protocol=protocol)
        with pytest.raises(DataError, match="posix.system|os.system"):
            cifar.safe_load_batch(raw)


def test_garbage_and_missing_members(tmp_path):
    members = _members({n: _batch(i) for i, n in enumerate(BATCHES)})
    members["data_batch_2"] = b"\x80\x02not a pickle"
    with pytest.raises(DataError, match="data_batch_2"):
        cifar.load_cifar_archive(_write_tar(tmp_path / "a.tar.gz", members), "train")
    del members["data_batch_2"]
    with pytest.raises(DataError, match="lacks data_batch_2"):
        cifar.load_cifar_archive(_write_tar(tmp_path / "b.tar.gz", members), "train")
    (tmp_path / "c.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="cannot read"):
        cifar.load_cifar_archive(tmp_path / "c.tar.gz", "train")


def test_builder_and_missing_archive(tarball, monkeypatch):
    path, _ = tarball
    root = path.parent / "root"
    (root / cifar.FOLDER).mkdir(parents=True)
    path.rename(root / cifar.FOLDER / cifar.ARCHIVE)
    md5 = hashlib.md5((root / cifar.FOLDER / cifar.ARCHIVE).read_bytes()).hexdigest()
    monkeypatch.setitem(REMOTES, "cifar10", {cifar.ARCHIVE: Remote(cifar.ARCHIVE, md5, ())})
    params = cifar.CIFAR10.Params(root=str(root), flip=True)
    source = cifar.CIFAR10.build(params, seed=0, device="cpu")
    assert source.info.shape == (3, 32, 32) and source.info.class_names[-1] == "truck"
    assert source.next_batch(20)["x"].shape == (20, 3, 32, 32)  # spans two epochs of 15
    small = cifar.CIFAR10.build(cifar.CIFAR10.Params(root=str(root), size=16, split="test"),
                                seed=0, device="cpu")
    assert small.next_batch(2)["x"].shape == (2, 3, 16, 16)
    with pytest.raises(DataError, match="cifar-10-python.tar.gz.*place it in"):
        cifar.load_cifar10("train", path.parent / "elsewhere")


def test_published_md5_recorded():
    assert REMOTES["cifar10"][cifar.ARCHIVE].md5 == "c58f30108f718f92721af3b95e74349a"
