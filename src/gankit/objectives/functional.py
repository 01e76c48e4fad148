"""GAN loss maths as plain functions of discriminator logits / critic values.

Logits are pre-sigmoid: D(x) = sigmoid(l). Using ``softplus`` keeps every log-probability
finite where ``log(sigmoid(l))`` would underflow (why gankit never uses sigmoid + BCELoss):
    log D(x)       = -softplus(-l)
    log(1 - D(x))  = -softplus(l)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOG4 = math.log(4.0)


def value_function(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))]  (Goodfellow et al. 2014, eq. 1)."""
    return -F.softplus(-real_logits).mean() - F.softplus(fake_logits).mean()


def d_loss_bce(real_logits: Tensor, fake_logits: Tensor, real_label: float = 1.0) -> Tensor:
    """-V(D, G): the discriminator ascends V by descending this.

    ``real_label`` t < 1 is one-sided label smoothing (Salimans et al. 2016, section 3.4): the
    real images' target is t and the fakes' stays 0, so D is not pushed to overconfident
    logits on real data:  -E_x[t log D(x) + (1 - t) log(1 - D(x))] - E_z[log(1 - D(G(z)))].
    Logits (B,) or (B, 1); returns a scalar (nats)."""
    real = F.softplus(-real_logits)                             # -log D(x)
    if real_label != 1.0:
        real = real_label * real + (1.0 - real_label) * F.softplus(real_logits)
    return real.mean() + F.softplus(fake_logits).mean()


def g_loss_saturating(fake_logits: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))]: the generator descends it; gradient -> 0 as D(G(z)) -> 0."""
    return -F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: Tensor) -> Tensor:
    """-E[log D(G(z))]: same fixed point, strong gradient early in training."""
    return F.softplus(-fake_logits).mean()


def mode_seeking_loss(fake_1: Tensor, fake_2: Tensor, z_1: Tensor, z_2: Tensor,
                      eps: float = 1e-5) -> Tensor:
    """Mode seeking (Mao et al. 2019, "Mode seeking generative adversarial networks for
    diverse image synthesis", eq. 3): G(z_1, c) and G(z_2, c) from the same condition c should
    differ as much as their noise does. Returns 1 / (d_I / d_z + eps), d_I = E|G(z_1, c) -
    G(z_2, c)| and d_z = E|z_1 - z_2| (means over every element): G descends it, so a G that
    ignores z (d_I = 0) pays 1 / eps. Images (B, ...), noise (B, z_dim); a scalar."""
    ratio = (fake_1 - fake_2).abs().mean() / (z_1 - z_2).abs().mean()
    return 1.0 / (ratio + eps)


def token_loss(logits: Tensor, tokens: Tensor) -> Tensor:
    """CE(r(x), t) = -1/L sum_l log softmax(r(x)_l)[t_l], averaged over the batch: how well a
    reader's token logits (B, L, V) predict a caption's token ids (B, L) int64, in nats per
    position, padding positions included (a template fixes where padding is). An auxiliary
    classifier as in AC-GAN (Odena et al. 2017), over a caption's tokens instead of a label."""
    return F.cross_entropy(logits.flatten(0, 1), tokens.flatten())


def d_loss_least_squares(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """LSGAN (a=0, b=c=1): 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]."""
    return 0.5 * ((real_out - 1).square().mean() + fake_out.square().mean())


def g_loss_least_squares(fake_out: Tensor) -> Tensor:
    """LSGAN: 1/2 E[(D(G(z)) - 1)^2]."""
    return 0.5 * (fake_out - 1).square().mean()


def d_loss_hinge(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1 - real_out).mean() + F.relu(1 + fake_out).mean()


def g_loss_critic(fake_out: Tensor) -> Tensor:
    """-E[D(G(z))] (WGAN and hinge generators)."""
    return -fake_out.mean()


def d_loss_wasserstein(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """E[D(G(z))] - E[D(x)]: minus the critic's estimate of W1."""
    return fake_out.mean() - real_out.mean()


def gradient_penalty(critic, real: Tensor, fake: Tensor, rng: torch.Generator | None,
                     target: float = 1.0) -> tuple[Tensor, Tensor]:
    """E[(||grad_x D(x_hat)||_2 - target)^2] with x_hat = eps x + (1 - eps) x_fake,
    eps ~ U[0, 1] drawn per sample (Gulrajani et al. 2017, Algorithm 1).

    Returns (penalty, mean gradient norm). Computed in fp32 outside autocast: the squared
    norm of fp16 gradients overflows easily.
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, generator=rng, device=real.device, dtype=torch.float32)
    x_hat = (eps * real.float() + (1 - eps) * fake.detach().float()).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        grad = input_gradient(critic(x_hat), x_hat)
    norm = grad.flatten(1).norm(dim=1)                      # (B,)
    return (norm - target).square().mean(), norm.mean().detach()


def input_gradient(out: Tensor, x: Tensor) -> Tensor:
    """grad_x of sum(out) (same shape as x), with its graph kept (a penalty on it trains D).
    ``x`` must require grad and ``out`` (B,) or (B, k) be computed from it, per sample."""
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad


def r1_penalty(real_out: Tensor, real: Tensor) -> Tensor:
    """R1 = E_x ||grad_x D(x)||_2^2 on real data (Mescheder et al. 2018, eq. 9, without the
    gamma / 2), from D's logits ``real_out`` (B,) computed from ``real`` (requires grad)."""
    return input_gradient(real_out.float(), real).flatten(1).float().square().sum(1).mean()


def lazy_r1(real_out: Tensor, real: Tensor, gamma: float, interval: int) -> tuple[Tensor, Tensor]:
    """(N gamma / 2 R1, R1): the R1 term of a D loss applied every N = ``interval`` steps,
    scaled by N so its average weight stays gamma / 2 (lazy regularisation, Karras et al.
    2020, section 3.1); R1 as ``r1_penalty``."""
    r1 = r1_penalty(real_out, real)
    return gamma / 2 * interval * r1, r1
