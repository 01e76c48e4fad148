"""Every registered data set exposes a held-out split the training stream never draws from.

For each source ``src`` built by ``DATASETS.get(name).build(...)``: ``src.heldout()`` is
disjoint from the training examples (by split, by file, or by a dedicated toy stream), is
deterministic, serves its whole set once through ``batches``, samples in the format of
``src.sample``, and a source without held-out data refuses with a one-line DataError. Building
MNIST must stay as fast and bit-identical as before held-out splits existed.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data import decode as decode_mod
from gankit.data import folder as folder_mod
from gankit.data import idx, toy
from gankit.data import translation as T
from gankit.data.base import HeldOut
from gankit.data.images import ImageTensorSource, fit_size
from gankit.errors import DataError
from gankit.registry import DATASETS

# sha256 (first 16 hex digits) of MNIST's training stream, recorded before held-out splits
# were added: build(split=train, seed=3), next_batch 64, 100, 7 ("x" then "y"), sample(50, 11).
MNIST_STREAM_BEFORE = "943ac5e68f67f87f"


def build(name: str, seed: int = 0, **params):
    cls = DATASETS.get(name)
    return cls.build(cls.Params(name=name, **params), seed=seed, device="cpu")


def rows(batches) -> dict[str, torch.Tensor]:
    """All batches of a held-out set, concatenated per key."""
    out: dict[str, list[torch.Tensor]] = {}
    for batch in batches:
        for key, value in batch.items():
            out.setdefault(key, []).append(value)
    return {key: torch.cat(values) for key, values in out.items()}


def check_contract(src, held: HeldOut, batch_size: int = 700) -> dict[str, torch.Tensor]:
    """What every held-out set promises; returns its rows (from ``batches``)."""
    assert isinstance(held.description, str) and "\n" not in held.description
    assert src.heldout() is held                                  # built once, then kept
    real, mine = src.sample(6, 1), held.sample(6, 1)
    assert mine.shape == real.shape and mine.dtype == real.dtype == torch.float32
    assert torch.equal(mine, held.sample(6, 1))                   # deterministic
    assert not torch.equal(mine, held.sample(6, 2))
    n = min(len(held), 40)                                        # distinct while n <= len
    assert len(torch.unique(held.sample(n, 3).flatten(1), dim=0)) == n
    got = rows(held.batches(batch_size))
    state = src.state_dict()                                      # peek at the batch keys
    assert set(got) == set(src.next_batch(2))
    src.load_state_dict(state)
    key = "b" if "b" in got else "x"
    assert len(got[key]) == len(held)                             # the whole set, once
    assert got[key].shape[1:] == real.shape[1:]
    if real.dim() == 4:                                           # images in [-1, 1]
        assert -1 <= float(got[key].min()) and float(got[key].max()) <= 1
    if "y" in got:
        assert got["y"].dtype == torch.int64 and len(got["y"]) == len(held)
    again = rows(held.batches(batch_size + 13))                   # fixed order
    assert all(torch.equal(got[k], again[k]) for k in got)
    return got


def one_line_error(fn, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- MNIST / Fashion-MNIST
def stream_digest(src) -> str:
    h = hashlib.sha256()
    for n in (64, 100, 7):
        batch = src.next_batch(n)
        for key in sorted(batch):
            h.update(key.encode())
            h.update(batch[key].contiguous().numpy().tobytes())
    h.update(src.sample(50, 11).numpy().tobytes())
    return h.hexdigest()[:16]


def test_mnist_training_stream_unchanged(data_root):
    fresh = build("mnist", seed=3, root=str(data_root))
    assert stream_digest(fresh) == MNIST_STREAM_BEFORE
    # ... and equal to a bare source over the same images (no held-out machinery at all)
    data = idx.load_mnist("train", str(data_root))
    bare = ImageTensorSource(data.images, data.labels, class_names=data.class_names, seed=3)
    assert stream_digest(bare) == MNIST_STREAM_BEFORE


def test_mnist_heldout_is_the_test_split_loaded_lazily(data_root, monkeypatch):
    calls = []
    real = idx.load_mnist
    monkeypatch.setattr(idx, "load_mnist", lambda split, *a, **k: calls.append(split)
                        or real(split, *a, **k))
    src = build("mnist", root=str(data_root))
    assert calls == ["train"] and len(src) == 60000               # building reads one split
    held = src.heldout()
    assert calls == ["train", "test"] and len(held) == 10000
    assert held.description == "mnist test split (10,000 images)"
    got = check_contract(src, held, batch_size=4096)
    assert calls == ["train", "test"]
    test = real("test", str(data_root))
    assert torch.equal(got["x"], test.images.float() / 127.5 - 1)  # the official test split
    assert torch.equal(got["y"], test.labels)


@pytest.mark.parametrize("name,size", [("mnist", 16), ("fashion-mnist", 28)])
def test_test_split_source_holds_out_the_train_split(name, size, data_root):
    src = build(name, root=str(data_root), split="test", size=size, labels=False)
    assert len(src) == 10000
    held = src.heldout()
    assert len(held) == 60000 and held.description == f"{name} train split (60,000 images)"
    batch = next(held.batches(8))
    assert set(batch) == {"x"} and batch["x"].shape == (8, 1, size, size)  # size, no labels
    assert held.sample(5, 0).shape == src.sample(5, 0).shape == (5, 1, size, size)
    if size != 28:                                                # resized like training images
        train = idx.load_mnist("train", str(data_root), name)
        assert torch.equal(batch["x"], fit_size(train.images[:8], size).float() / 127.5 - 1)
    again = build(name, root=str(data_root), split="test", size=size, labels=False).heldout()
    assert again.description == held.description
    assert torch.equal(again.sample(20, 4), held.sample(20, 4))


def test_fashion_train_source_holds_out_the_test_split(data_root):
    src = build("fashion-mnist", root=str(data_root))
    check_contract(src, src.heldout(), batch_size=4096)
    assert len(src) == 60000 and len(src.heldout()) == 10000


# ---------------------------------------------------------------- CIFAR-10 (a stand-in archive)
def test_cifar_heldout_is_the_other_split(tmp_path, monkeypatch):
    import io
    import pickle
    import tarfile

    from gankit.data import cifar
    from gankit.data.download import REMOTES, Remote
    rng = np.random.default_rng(0)
    n = {"data_batch_1": 4, "data_batch_2": 4, "data_batch_3": 4, "data_batch_4": 4,
         "data_batch_5": 4, "test_batch": 6}
    members = {"batches.meta": pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]},
                                            protocol=2)}
    for name, count in n.items():
        members[name] = pickle.dumps({b"labels": [int(v) for v in rng.integers(0, 10, count)],
                                      b"data": rng.integers(0, 256, (count, 3072), np.uint8)},
                                     protocol=2)
    archive = tmp_path / cifar.FOLDER / cifar.ARCHIVE
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(REMOTES, "cifar10", {cifar.ARCHIVE: Remote(cifar.ARCHIVE, md5, ())})
    src = build("cifar10", root=str(tmp_path), size=16)
    held = src.heldout()
    assert len(src) == 20 and len(held) == 6
    assert held.description == "cifar10 test split (6 images)"
    got = check_contract(src, held, batch_size=4)
    test = cifar.load_cifar10("test", tmp_path)
    assert torch.equal(got["y"], test.labels)
    assert torch.equal(got["x"], fit_size(test.images, 16).float() / 127.5 - 1)
    swapped = build("cifar10", root=str(tmp_path), split="test", labels=False).heldout()
    assert len(swapped) == 20 and set(next(swapped.batches(3))) == {"x"}


# ---------------------------------------------------------------- toys
@pytest.mark.parametrize("name", ["ring", "grid", "spiral", "gaussian1d"])
def test_toys_hold_out_a_fixed_draw_from_their_own_stream(name):
    src = build(name, seed=5)
    held = src.heldout()
    assert len(held) == toy.HELDOUT_SIZE
    assert held.description == f"10,000 fresh draws of {name} (seed {toy.HELDOUT_SEED})"
    got = check_contract(src, held, batch_size=3000)
    other = build(name, seed=6).heldout()                        # the same set for every run
    assert other.description == held.description
    assert torch.equal(rows(other.batches(10_000))["x"], got["x"])
    assert torch.equal(got["x"], src.draw(toy.HELDOUT_SIZE,
                                          toy.make_generator(toy.HELDOUT_SEED)))
    train = torch.cat([src.next_batch(500)["x"] for _ in range(4)])
    shared = torch.isin(row_keys(got["x"]), row_keys(train)).sum()
    assert shared <= 0.002 * len(got["x"])  # 1-D float32 values may coincide by chance; 2-D: 0


def row_keys(points: torch.Tensor) -> torch.Tensor:
    """(N, d) float32 points, d <= 2 -> (N,) int64 keys equal exactly when rows are equal."""
    bits = points.contiguous().view(torch.int32).long() & 0xFFFFFFFF     # (N, d)
    return bits[:, 0] if points.shape[1] == 1 else bits[:, 0] << 32 | bits[:, 1]


def test_toy_run_on_the_heldout_stream_refuses():
    for seed in (toy.HELDOUT_SEED, toy.HELDOUT_SEED + 2**32):   # torch keeps 32 seed bits
        one_line_error(build("ring", seed=seed).heldout, "held-out stream")


def test_batches_refuses_a_bad_size_at_once():
    held = build("ring").heldout()
    one_line_error(lambda: held.batches(0), "batch size must be positive")


# ---------------------------------------------------------------- image folders
def gray(path: Path, value: int, size: int = 8) -> None:
    """A constant grayscale image: its value identifies the file after decoding."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (size, size), value).save(path)


def values(x: torch.Tensor) -> set[int]:
    """The identifying value of each image of a float batch (N, C, H, W) in [-1, 1]."""
    return set(((x[:, 0, 0, 0] + 1) * 127.5).round().int().tolist())


@pytest.fixture
def labelled_folder(tmp_path) -> tuple[Path, dict[str, int]]:
    """60 constant images in two class folders; rel path -> value."""
    root, files = tmp_path / "imgs", {}
    for i in range(60):
        rel = f"{'cats' if i % 2 else 'dogs'}/{i:02d}.png"
        files[rel] = 4 * i + 3
        gray(root / rel, files[rel])
    return root, files


def test_folder_holds_out_files_by_name(labelled_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    root, files = labelled_folder
    src = build("folder", path=str(root), size=8, channels=1, holdout=0.25)
    held = src.heldout()
    train_files, held_files = folder_mod.split_by_path(sorted(files), 0.25, key=lambda r: r)
    assert 5 <= len(held_files) <= 30 and len(src) == len(train_files)
    assert len(held) == len(held_files)
    assert held.description == f"25 % of the folder imgs held out by file name " \
                               f"({len(held_files)} images)"
    got = check_contract(src, held, batch_size=7)
    assert values(got["x"]) == {files[r] for r in held_files}    # exactly the held-out files
    seen = src.next_batch(len(src))["x"]                          # one training epoch
    assert values(seen) == {files[r] for r in train_files}       # ... never trained on
    labels = {files[r]: int(r.startswith("dogs")) for r in files}  # classes sorted: cats, dogs
    assert [labels[v] for v in ((got["x"][:, 0, 0, 0] + 1) * 127.5).round().int().tolist()] \
        == got["y"].tolist()


def test_folder_split_is_stable_when_files_are_added(labelled_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    root, files = labelled_folder
    before = values(rows(build("folder", path=str(root), size=8, channels=1)
                         .heldout().batches(100))["x"])
    for i in range(8):
        gray(root / "cats" / f"new{i}.png", 4 * i + 1)            # values unused so far
    after = values(rows(build("folder", path=str(root), size=8, channels=1)
                        .heldout().batches(100))["x"])
    assert before <= after                                        # nothing moved out
    grown = values(rows(build("folder", path=str(root), size=8, channels=1, holdout=0.3)
                        .heldout().batches(100))["x"])
    assert after <= grown                                         # a larger share only adds


def test_folder_memmap_caches_keep_the_parts_apart(labelled_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    root, files = labelled_folder
    params = dict(path=str(root), size=8, channels=1, holdout=0.25, memory_budget_gib=1e-9)
    src = build("folder", **params)
    assert isinstance(src.images, np.memmap)
    held = src.heldout()
    caches = sorted((tmp_path / "cache" / "folders").iterdir())
    assert len(caches) == 2                                       # one per part, both kept
    decoded = []
    real = decode_mod.decode_image
    monkeypatch.setattr(decode_mod, "decode_image",
                        lambda *a, **k: decoded.append(a[0]) or real(*a, **k))
    again = build("folder", **params)
    again_held = again.heldout()
    assert decoded == [] and sorted((tmp_path / "cache" / "folders").iterdir()) == caches
    assert values(rows(again_held.batches(100))["x"]) == values(rows(held.batches(100))["x"])
    assert values(again.next_batch(len(again))["x"]).isdisjoint(
        values(rows(held.batches(100))["x"]))
    whole = folder_mod.load_folder(root, 8, 1, memory_budget=1)   # holdout 0: a third cache
    assert len(whole) == 60 and len(list((tmp_path / "cache" / "folders").iterdir())) == 3


def test_folder_without_heldout_data_refuses(labelled_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    root, files = labelled_folder
    src = build("folder", path=str(root), size=8, channels=1, holdout=0)
    assert len(src) == 60
    one_line_error(src.heldout, "holdout is 0")
    with pytest.raises(ValueError):
        folder_mod.FolderParams(path="x", holdout=0.6)
    assert folder_mod.FolderParams(path="x").holdout == 0.1


# ---------------------------------------------------------------- translation: MNIST demos
@pytest.mark.slow          # ~2 s: the same path as fashion-edges, which the default run tests
def test_mnist_strokes_holds_out_the_train_split(data_root):
    src = build("mnist-strokes", root=str(data_root), split="test", size=16)
    held = src.heldout()
    assert len(src) == 5000 and len(held) == 30000
    assert held.description == "mnist-strokes train split (30,000 thin / 30,000 bold images)"
    first = next(held.batches(64))
    train = T.mnist_strokes("train", str(data_root))
    resized = T.fit_size(train["b"][:64], 16)
    assert torch.equal(first["b"], T.to_float(resized))           # the train split's bold half
    assert first["a"].shape == first["b"].shape == (64, 1, 16, 16)
    assert held.sample(4, 0).shape == src.sample(4, 0).shape
    assert torch.equal(held.sample(9, 5), held.sample(9, 5))
    counted = sum(len(b["b"]) for b in held.batches(8192))
    assert counted == 30000


def test_fashion_edges_holds_out_the_train_split(data_root):
    src = build("fashion-edges", root=str(data_root), split="test")
    held = src.heldout()
    assert len(src) == 10000 and len(held) == 60000
    batch = next(held.batches(32))
    train = T.fashion_edges("train", str(data_root))
    assert torch.equal(batch["a"], T.to_float(train["a"][:32]))   # pairs stay paired
    assert torch.equal(batch["b"], T.to_float(train["b"][:32]))
    assert held.sample(3, 1).shape == src.sample(3, 1).shape == (3, 1, 28, 28)


# ---------------------------------------------------------------- translation: folders
def make_unpaired(root: Path, test_dirs: bool) -> dict[str, dict[str, int]]:
    """trainA/ (30 files), trainB/ (24), optionally testA/ (3) and testB/ (5): value per file."""
    made: dict[str, dict[str, int]] = {}
    sizes = {"trainA": 30, "trainB": 24} | ({"testA": 3, "testB": 5} if test_dirs else {})
    value = 1
    for sub, n in sizes.items():
        for i in range(n):
            gray(root / sub / f"{sub[-1].lower()}{i}.png", value, size=10)
            made.setdefault(sub, {})[f"{sub[-1].lower()}{i}.png"] = value
            value += 3
    return made


def test_unpaired_folder_holds_out_train_files_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    made = make_unpaired(tmp_path / "u", test_dirs=False)
    src = build("unpaired-folder", path=str(tmp_path / "u"), size=8, load_size=10, channels=1,
                holdout=0.3)
    held = src.heldout()
    expect = {d: folder_mod.split_by_path(sorted(made[f"train{d}"]), 0.3, key=lambda r: r)
              for d in "AB"}
    got = check_contract(src, held, batch_size=5)
    assert len(got["a"]) == len(expect["A"][1]) and len(held) == len(expect["B"][1])
    for d in "AB":
        files = made[f"train{d}"]
        held_values = {files[r] for r in expect[d][1]}
        assert values(got[d.lower()]) == held_values
        assert values(src.next_batch(len(src))[d.lower()]).isdisjoint(held_values)
        examples = getattr(src.info, f"examples_{d.lower()}")  # sample pages: held-out too
        assert values(examples) == held_values
    assert "30 % of trainA/ held out by file name" in held.description


def test_unpaired_folder_uses_test_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    made = make_unpaired(tmp_path / "u", test_dirs=True)
    src = build("unpaired-folder", path=str(tmp_path / "u"), size=8, load_size=10, channels=1)
    held = src.heldout()
    assert len(held) == 5 and len(src) == 30                      # all of trainA/ is trained on
    got = check_contract(src, held, batch_size=2)                 # domains of 3 and 5 images
    assert values(got["a"]) == set(made["testA"].values())
    assert values(got["b"]) == set(made["testB"].values())
    sizes = [(len(b["a"]), len(b["b"])) for b in held.batches(2)]
    assert sizes == [(2, 2), (1, 2), (0, 1)]                      # each domain walked once


def test_unpaired_folder_without_heldout_data_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    make_unpaired(tmp_path / "u", test_dirs=False)
    src = build("unpaired-folder", path=str(tmp_path / "u"), size=8, channels=1, holdout=0)
    one_line_error(src.heldout, "no testA/ folder and its holdout is 0")
    assert src.info.examples_a.shape == (30, 1, 8, 8)             # examples: training images


@pytest.mark.parametrize("layout", ["side-by-side", "folders"])
def test_paired_folder_holds_out_pairs_by_name(tmp_path, layout):
    root, names = tmp_path / layout, {}
    for i in range(40):
        value = 5 * i + 10
        names[f"{i:02d}"] = value
        if layout == "side-by-side":
            img = Image.new("L", (16, 8), value)
            img.paste(255 - value, (8, 0, 16, 8))                 # right half: B = 255 - A
            (root / "train").mkdir(parents=True, exist_ok=True)
            img.save(root / "train" / f"{i:02d}.png")
        else:
            gray(root / "A" / f"{i:02d}.png", value)
            gray(root / "B" / f"{i:02d}.jpg", 255 - value)        # JPEG: B values approximate
    p = dict(path=str(root), size=8, channels=1, holdout=0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = build("paired-folder", **p)
    key = (lambda r: f"{r}.png") if layout == "side-by-side" else (lambda r: r)
    train, held_names = folder_mod.split_by_path(sorted(names), 0.25, key=key)
    held = src.heldout()
    assert len(src) == len(train) and len(held) == len(held_names) > 0
    got = check_contract(src, held, batch_size=3)
    assert values(got["a"]) == {names[n] for n in held_names}
    assert torch.allclose(got["b"], -got["a"], atol=0.05)         # pairs kept together
    assert values(src.next_batch(len(src))["a"]).isdisjoint(values(got["a"]))
    assert values(src.info.examples_a) == values(got["a"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        none = build("paired-folder", **(p | {"holdout": 0}))
    assert len(none) == 40
    one_line_error(none.heldout, "holdout is 0")


def test_paired_folder_test_subfolder_is_never_trained_on(tmp_path):
    root = tmp_path / "p"
    for i in range(6):
        gray(root / f"{i}.png", 10 + i, size=16)                  # images straight in the root
    gray(root / "test" / "t.png", 200, size=16)
    src = build("paired-folder", path=str(root), size=8, channels=1)
    assert len(src) == 6
    held = src.heldout()
    assert len(held) == 1 and held.description.startswith("paired-folder held-out pairs: test/")
    assert 200 not in values(src.next_batch(6)["a"])
