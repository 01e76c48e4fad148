"""Options screened for quality per CPU-minute (issue "better digits per CPU-minute"): R1 on
the sigmoid games' critic (Mescheder et al. 2018), spectral normalisation in the DCGAN critic
(Miyato et al. 2018) and nearest-upsampling generators (Odena et al. 2016)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gankit.config import validate
from gankit.core.roles import CriticRole, GeneratorRole
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.nn import dcgan
from gankit.train.trainer import Trainer

TOY = {"data": {"name": "ring"}, "model": {"name": "mlp", "g_hidden": 16, "d_hidden": 16},
       "train": {"steps": 2, "batch_size": 16}, "log": {"progress": False, "sample_at": []}}


class LinearCritic(nn.Module):
    """D(x) = w.x + b: grad_x D = w for every x, so R1 = ||w||^2 exactly."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([3.0, -4.0]))
        self.b = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        return x @ self.w + self.b                                  # (B,)


@pytest.mark.parametrize("objective", ["nonsaturating", "minimax", "hinge", "lsgan"])
def test_r1_adds_the_lazy_penalty_by_hand(objective, tmp_path):
    gamma, every = 2.0, 4
    raw = copy.deepcopy(TOY) | {"objective": {"name": objective, "r1_gamma": gamma,
                                              "r1_interval": every}}
    trainer = Trainer(validate(raw), tmp_path)
    assert type(trainer.objective).critic_role(trainer.objective.params).double_backward
    trainer.objective.nets["D"] = LinearCritic()
    for step, want_r1 in ((8, 25.0), (9, None)):                   # 8 % 4 == 0: lazy step
        ctx = trainer.step_context()
        ctx.step = step
        ctx.batch = trainer.draw_real()
        state = ctx.rng.get_state()
        loss, scalars = trainer.objective.loss_D(ctx)
        ctx.rng.set_state(state)                                   # the same fakes again
        _, fake = trainer.objective.fakes_for_D(ctx, 16)
        D = trainer.objective.nets["D"]
        plain = trainer.objective.d_terms(D(ctx.batch["x"]), D(fake))
        if want_r1 is None:
            assert "r1" not in scalars and loss.item() == pytest.approx(plain.item())
        else:
            assert scalars["r1"].item() == pytest.approx(want_r1)    # ||(3, -4)||^2
            assert loss.item() == pytest.approx(plain.item() + gamma / 2 * every * 25.0)


def test_r1_is_refused_where_it_means_nothing():
    with pytest.raises((ConfigError, ValueError)):
        validate(copy.deepcopy(TOY) | {"objective": {"name": "wgan-gp", "r1_gamma": 1.0}})
    with pytest.raises((ConfigError, ValueError)):
        validate(copy.deepcopy(TOY) | {"objective": {"name": "nonsaturating", "r1_gamma": -1}})
    with pytest.raises((ConfigError, ValueError)):       # its own D loss: not offered there
        validate(copy.deepcopy(TOY) | {"objective": {"name": "cgan", "r1_gamma": 1.0}})


def test_spectral_norm_critic_has_unit_spectral_norms_and_no_batch_norm():
    p = dcgan.DCGANParams(ndf=8, d_spectral_norm=True)
    D = dcgan.build_critic(p, DataInfo(kind="image", shape=(1, 28, 28)), CriticRole())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    x = torch.randn(16, 1, 28, 28)
    for _ in range(30):                      # power iterations converge in training mode
        D(x)
    D.eval()
    for m in D.modules():
        if isinstance(m, nn.Conv2d):
            sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)
            assert sigma.item() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("size", [28, 32, 64])
def test_nearest_upsampling_generator_shapes(size):
    p = dcgan.DCGANParams(ngf=8, g_upsample="nearest")
    G = dcgan.build_generator(p, DataInfo(kind="image", shape=(3, size, size)),
                              GeneratorRole(z_dim=100))
    assert G(torch.randn(2, 100)).shape == (2, 3, size, size)
    # only the first layer (1x1 -> base map) stays a transposed convolution
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in G.modules()) == 1
    assert any(isinstance(m, nn.Upsample) for m in G.modules())
