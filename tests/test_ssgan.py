"""The semi-supervised GAN of Salimans et al. 2016 (section 5): its K+1-class loss against a
hand computation with D = Z / (Z + 1), the labelled subset (balanced, fixed by its seed,
resumable), the averaged critic and the held-out test error."""

from __future__ import annotations

import math

import pytest
import torch

from gankit.config import build_config, validate
from gankit.data.idx import MNIST, MNISTParams
from gankit.data.images import labelled_subset
from gankit.errors import ConfigError, DataError
from gankit.metrics.likelihood import HeldOutError, count_errors
from gankit.objectives.ssgan import unsupervised_loss
from gankit.train.trainer import Trainer


def test_unsupervised_loss_is_the_gan_loss_of_d_equal_z_over_z_plus_one():
    real = torch.tensor([[0.0, 0.0], [math.log(3.0), -30.0]])      # Z = 2, ~3
    fake = torch.tensor([[math.log(0.5), math.log(0.5)]])          # Z = 1
    d_real = [2 / 3, 3 / 4]
    d_fake = 1 / 2
    by_hand = (-0.5 * sum(math.log(d) for d in d_real) / 2 - 0.5 * math.log(1 - d_fake))
    assert unsupervised_loss(real, fake).item() == pytest.approx(by_hand, abs=1e-6)


def test_labelled_subset_is_balanced_and_fixed_by_its_seed():
    labels = torch.arange(60) % 3                                   # 20 per class
    a, b, c = (labelled_subset(labels, 4, s) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert labels[a].bincount().tolist() == [4, 4, 4] and len(a.unique()) == 12
    with pytest.raises(DataError, match="class 0 has only 20"):
        labelled_subset(labels, 21, 0)


def test_semi_supervised_batches_resume_exactly_and_refuse_another_subset(data_root):
    params = MNISTParams(split="test", labelled_per_class=2)
    src = MNIST.build(params, seed=3)
    assert src.info.labelled == 20 == MNIST.describe(params).labelled
    src.next_batch(7)
    state = src.state_dict()
    want = src.next_batch(25)                  # crosses the labelled subset's epoch
    assert set(want) == {"x", "x_lab", "y_lab"} and want["y_lab"].shape == (25,)
    again = MNIST.build(params, seed=3)
    again.load_state_dict(state)
    got = again.next_batch(25)
    assert all(torch.equal(want[k], got[k]) for k in want)
    other = MNIST.build(MNISTParams(split="test", labelled_per_class=2, labelled_seed=1), seed=3)
    with pytest.raises(DataError, match="another labelled subset"):
        other.load_state_dict(state)


def test_ssgan_needs_a_labelled_subset_and_labels(tmp_path, data_root):
    raw = {"data": {"name": "mnist", "split": "test"}, "model": {"name": "ssgan-mlp"},
           "objective": {"name": "ssgan"}}
    with pytest.raises(ConfigError, match="labelled_per_class"):
        Trainer(validate(raw), tmp_path)
    with pytest.raises(ConfigError, match="needs data.labels=true"):
        validate(raw | {"data": {"name": "mnist", "labels": False, "labelled_per_class": 1}})
    assert build_config("ssgan-mnist").data.labelled_per_class == 10


def test_count_errors_by_hand():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]])
    assert count_errors(logits, torch.tensor([0, 0, 0])) == 1


def test_test_error_uses_the_averaged_critic(tmp_path, data_root):
    sections = {"data": {"name": "mnist", "split": "test", "labelled_per_class": 1},
                "model": {"name": "ssgan-mlp", "z_dim": 4, "g_hidden": [8],
                          "d_hidden": [16, 8]},
                "objective": {"name": "ssgan"},
                "train": {"steps": 3, "batch_size": 8, "ema_beta": 0.9},
                "log": {"progress": False, "sample_at": [], "figures": False}}
    trainer = Trainer(validate(sections), tmp_path)
    trainer.fit()
    assert set(trainer.ema) == {"G", "D"}
    values = HeldOutError.evaluate(trainer, 50)
    assert values["test_errors"] == round(values["test_error"] * 50)
    assert HeldOutError.describe(trainer, 50)["weights"].startswith("averaged")
