"""Section 4 of Goodfellow et al. 2014, checked numerically."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from gankit.metrics.theory import js_divergence, optimal_discriminator, value_at_optimum
from gankit.nn.mlp import mlp
from gankit.objectives import functional as L

P_DATA = stats.norm(0.0, 1.0)
P_G = stats.norm(1.5, 0.8)


def _train_discriminator(steps=1200, batch=1024, seed=0):
    torch.manual_seed(seed)
    D = mlp([1, 64, 64, 1], "tanh")
    opt = torch.optim.Adam(D.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        real = torch.randn(batch, 1, generator=gen) * 1.0
        fake = 1.5 + 0.8 * torch.randn(batch, 1, generator=gen)
        loss = L.d_loss_bce(D(real).squeeze(1), D(fake).squeeze(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return D


@pytest.fixture(scope="module")
def trained_D():
    return _train_discriminator()


def test_closed_form_value_is_2js_minus_log4():
    x = np.linspace(-12, 12, 200001)
    dx = x[1] - x[0]
    p, q = P_DATA.pdf(x), P_G.pdf(x)
    assert value_at_optimum(p, q, dx) == pytest.approx(2 * js_divergence(p, q, dx) - math.log(4),
                                                       rel=1e-6)
    assert value_at_optimum(p, p, dx) == pytest.approx(-math.log(4), rel=1e-6)   # p_g = p_data


def test_trained_discriminator_matches_optimal(trained_D):
    x = np.linspace(-2.0, 3.0, 201)
    with torch.no_grad():
        d = torch.sigmoid(trained_D(torch.tensor(x, dtype=torch.float32)[:, None])).numpy().ravel()
    d_star = optimal_discriminator(P_DATA.pdf(x), P_G.pdf(x))
    assert np.abs(d - d_star).max() <= 0.05


def test_loss_at_optimum_is_log4_minus_2js(trained_D):
    """The discriminator's minimised loss -V(D*, G) = log 4 - 2 JS(p_data || p_g)."""
    x = np.linspace(-12, 12, 200001)
    js = js_divergence(P_DATA.pdf(x), P_G.pdf(x), x[1] - x[0])
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(400000, 1, generator=gen)
    fake = 1.5 + 0.8 * torch.randn(400000, 1, generator=gen)
    with torch.no_grad():
        loss = L.d_loss_bce(trained_D(real).squeeze(1), trained_D(fake).squeeze(1)).item()
    assert loss == pytest.approx(math.log(4) - 2 * js, rel=0.02)


def test_saturating_gradient_vanishes_when_d_rejects_fakes():
    logits = torch.tensor([-12.0, -8.0, -5.0], requires_grad=True)   # D(G(z)) -> 0
    (g_sat,) = torch.autograd.grad(L.g_loss_saturating(logits), logits)
    (g_ns,) = torch.autograd.grad(L.g_loss_nonsaturating(logits), logits)
    assert g_sat.abs().max() < 3e-3            # -sigmoid(l) / n: vanishes
    assert (g_ns.abs() > 0.3).all()            # -(1 - sigmoid(l)) / n: about -1/n
    # both losses share the fixed point: their gradients point the same way
    assert (torch.sign(g_sat) == torch.sign(g_ns)).all()


def test_wgan_gp_critic_estimates_w1():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    mix = lambda n: torch.where(torch.rand(n, 1, generator=gen) < 0.3,     # noqa: E731
                                -1 + 0.3 * torch.randn(n, 1, generator=gen),
                                2 + 0.6 * torch.randn(n, 1, generator=gen))
    D = mlp([1, 64, 64, 1], "relu")
    critic = lambda x: D(x).squeeze(1)                                     # noqa: E731
    opt = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.9))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 400)
    for _ in range(400):
        real, fake = torch.randn(512, 1, generator=gen), mix(512)
        gp, _ = L.gradient_penalty(critic, real, fake, gen)
        loss = L.d_loss_wasserstein(critic(real), critic(fake)) + 10 * gp
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    real, fake = torch.randn(200000, 1, generator=gen), mix(200000)
    with torch.no_grad():
        estimate = -L.d_loss_wasserstein(critic(real), critic(fake)).item()
    exact = stats.wasserstein_distance(real.numpy().ravel(), fake.numpy().ravel())
    assert estimate == pytest.approx(exact, rel=0.10)
