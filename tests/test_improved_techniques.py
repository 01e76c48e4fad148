"""The improved techniques of Salimans et al. 2016, each an option of the sigmoid GANs, tested
against hand computations (one-sided label smoothing so far)."""

from __future__ import annotations

import math

import pytest
import torch

from gankit.config import validate
from gankit.errors import ConfigError
from gankit.objectives import functional as L
from gankit.train.trainer import Trainer


def test_one_sided_label_smoothing_matches_the_formula():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0])
    sig = lambda v: 1 / (1 + math.exp(-v))                                  # noqa: E731
    t = 0.9
    want = -sum(t * math.log(sig(r)) + (1 - t) * math.log(1 - sig(r)) for r in (0.0, 2.0)) / 2 \
        - math.log(1 - sig(-1.0))
    assert L.d_loss_bce(real, fake, real_label=t).item() == pytest.approx(want, rel=1e-6)
    # t = 1 is the plain loss, bit for bit
    assert torch.equal(L.d_loss_bce(real, fake, 1.0), L.d_loss_bce(real, fake))


def test_smoothed_optimal_discriminator_is_t_times_d_star():
    """With p_data = p_g the optimal D is t p_data / (p_data + p_g) = t / 2 (Salimans et al.
    2016, section 3.4: only the real side is smoothed, so no spurious fake target)."""
    x = torch.zeros(64)                            # the same points are real and generated
    logit = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([logit], lr=1.0)
    for _ in range(500):
        opt.zero_grad()
        L.d_loss_bce(x + logit, x + logit, real_label=0.8).backward()
        opt.step()
    assert torch.sigmoid(logit).item() == pytest.approx(0.4, abs=1e-4)


TOY = {"data": {"name": "ring"}, "model": {"name": "mlp", "g_hidden": 16, "d_hidden": 16},
       "train": {"steps": 2, "batch_size": 16}, "log": {"progress": False, "sample_at": []}}


@pytest.mark.parametrize("objective", ["nonsaturating", "minimax", "unrolled"])
def test_label_smoothing_is_an_option_of_the_sigmoid_games(objective, tmp_path):
    cfg = validate(TOY | {"objective": {"name": objective, "real_label": 0.9}})
    trainer = Trainer(cfg, tmp_path)
    trainer.train_step()
    assert trainer.objective.params.real_label == 0.9


def test_label_smoothing_is_refused_where_it_means_nothing():
    with pytest.raises((ConfigError, ValueError)):
        validate(TOY | {"objective": {"name": "wgan-gp", "real_label": 0.9}})
    with pytest.raises((ConfigError, ValueError)):
        validate(TOY | {"objective": {"name": "nonsaturating", "real_label": 0.4}})
