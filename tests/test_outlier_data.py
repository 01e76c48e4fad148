"""Data options for outlier detection: ``data.classes`` (one-class protocol) and
``data.perturb`` (the background model of Ren et al. 2019)."""

from __future__ import annotations

import pytest
import torch

from gankit.config import build_config
from gankit.data.images import ImageSet, ImageTensorSource, keep_classes, perturb_images
from gankit.data.base import make_generator
from gankit.errors import ConfigError, DataError


def _set() -> ImageSet:
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 2, 2).clone()
    return ImageSet(images, torch.tensor([0, 1, 2, 1, 0, 1]), ("a", "b", "c"))


def test_keep_classes_selects_rows_by_label():
    kept = keep_classes(_set(), [1], "toy")
    assert kept.labels.tolist() == [1, 1, 1]
    assert kept.images[:, 0, 0, 0].tolist() == [1, 3, 5]
    assert keep_classes(_set(), None, "toy").labels.tolist() == [0, 1, 2, 1, 0, 1]
    with pytest.raises(DataError, match="no images of classes"):
        keep_classes(_set(), [7], "toy")
    with pytest.raises(DataError, match="no labels"):
        keep_classes(ImageSet(_set().images), [1], "toy")


def test_perturb_rate_and_levels():
    images = torch.zeros((200, 1, 28, 28), dtype=torch.uint8)
    out = perturb_images(images, 0.2, make_generator(0))
    changed = (out != 0).float().mean().item()
    # a replaced pixel keeps 0 with probability 1/256: expect 0.2 * 255/256 of them changed
    assert abs(changed - 0.2 * 255 / 256) < 0.01
    assert perturb_images(images, 0.0, make_generator(0)).eq(0).all()
    assert out.max() > 200                                    # levels span 0..255


def test_source_perturbs_training_batches_only():
    images = torch.zeros((50, 1, 8, 8), dtype=torch.uint8)
    src = ImageTensorSource(images, seed=0, perturb=0.5)
    assert (src.next_batch(50)["x"] > -1).float().mean() > 0.4      # perturbed stream
    assert src.sample(10, seed=0).eq(-1).all()                     # evaluation draws: clean


@pytest.mark.parametrize("override, message", [
    ("data.classes=[10]", "distinct labels of 0..9"),
    ("data.classes=[]", "non-empty"),
    ("data.classes=[3,3]", "distinct"),
    ("data.perturb=1.5", "less than or equal to 1"),
    ("data.perturb=-0.1", "greater than or equal to 0"),
])
def test_bad_options_are_refused_in_one_line(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        build_config("dcgan-mnist", [override])
    assert "\n" not in str(e.value)


def test_options_validate_and_sort():
    cfg = build_config("dcgan-mnist", ["data.classes=[3,1]", "data.perturb=0.2"])
    assert cfg.data.classes == [1, 3] and cfg.data.perturb == 0.2
