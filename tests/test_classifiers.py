"""The shipped MNIST / Fashion-MNIST classifiers: files, metadata, accuracy, input handling."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from gankit.data.idx import load_mnist
from gankit.errors import GankitError
from gankit.metrics.classifier import (WEIGHT_FILES, SmallCNN, classifier_info, classify,
                                       load_classifier, load_classifier_file, save_classifier,
                                       uint8_to_unit, weights_path)

THRESHOLDS = {"mnist": 0.993, "fashion-mnist": 0.92}
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(WEIGHT_FILES))
def test_shipped_file_and_metadata(name):
    path = weights_path(name)
    assert path.is_file() and path.stat().st_size < 1_100_000
    info = classifier_info(name)
    assert info["data"] == name
    assert info["test_accuracy"] >= THRESHOLDS[name] and info["test_images"] == 10_000
    assert info["command"].startswith("python scripts/train_classifiers.py")
    model = load_classifier(name)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert load_classifier(name) is model                 # cached per process


def _accuracy(name, data_root, n=None):
    test = load_mnist("test", root=data_root, name=name, allow_download=False)
    images, labels = (test.images, test.labels) if n is None else (test.images[:n], test.labels[:n])
    _, logits = classify(load_classifier(name), uint8_to_unit(images))
    return float((logits.argmax(1) == labels).float().mean())


@pytest.mark.parametrize("name", sorted(WEIGHT_FILES))
def test_accuracy_on_test_subset(name, data_root):
    """The first 2000 test images (the full set is the slow test below); 2000 samples give
    the accuracy to about +-0.5 % (2 sigma), so this checks the file works, not the floor."""
    assert _accuracy(name, data_root, 2000) >= THRESHOLDS[name] - 0.01


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WEIGHT_FILES))
def test_test_set_accuracy(name, data_root):
    """The full 10k test set meets the floor and reproduces the accuracy in the metadata."""
    acc = _accuracy(name, data_root)
    assert acc >= THRESHOLDS[name]
    assert acc == pytest.approx(classifier_info(name)["test_accuracy"], abs=2e-4)


def test_other_sizes_and_rgb_are_adapted(data_root):
    test = load_mnist("test", root=data_root, name="mnist", allow_download=False)
    x = uint8_to_unit(test.images[:500])
    model = load_classifier("mnist")
    _, base = classify(model, x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)       # 32x32, like DCGAN data
    _, from_32 = classify(model, padded)
    _, from_rgb = classify(model, x.expand(-1, 3, -1, -1))
    assert torch.equal(from_rgb.argmax(1), base.argmax(1))
    assert (from_32.argmax(1) == test.labels[:500]).float().mean() > 0.97
    feats, _ = classify(model, torch.nn.functional.interpolate(x, size=64, mode="bilinear"))
    assert feats.shape == (500, 128)


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(GankitError, match="no shipped classifier"):
        load_classifier("cifar10")
    with pytest.raises(GankitError, match=r"\(B, C, H, W\)"):
        load_classifier("mnist").features(torch.zeros(28, 28))
    stray = tmp_path / "x.safetensors"
    stray.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(GankitError, match="cannot read"):
        load_classifier_file(stray)


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN(channels=(4, 8, 8), pool=2, feature_dim=16).eval()
    path = tmp_path / "tiny.safetensors"
    arch = {"channels": [4, 8, 8], "pool": 2, "feature_dim": 16, "num_classes": 10}
    save_classifier(path, model, {"arch": arch, "test_accuracy": 0.5})
    loaded = load_classifier_file(path)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(loaded(x), model(x))


def test_training_augmentation_shapes():
    spec = importlib.util.spec_from_file_location("train_classifiers",
                                                  REPO / "scripts" / "train_classifiers.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 28, 28) * 2 - 1
    out = script.augment(x, gen, flip=True, shift=2)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    assert torch.equal(script.augment(x, gen, flip=False, shift=0), x)
    # A shift moves content without changing it: some sample equals a translated original.
    one = torch.zeros(1, 1, 28, 28) - 1
    one[0, 0, 10, 10] = 1
    moved = script.augment(one, gen, flip=False, shift=2)
    r, c = torch.nonzero(moved[0, 0] > 0)[0].tolist()
    assert abs(r - 10) <= 2 and abs(c - 10) <= 2
