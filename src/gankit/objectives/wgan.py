"""Wasserstein GANs: weight clipping (Arjovsky 2017) and gradient penalty (Gulrajani 2017)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from gankit.core.roles import CriticRole, GeneratorRole
from gankit.objectives import functional as L
from gankit.objectives.base import ObjectiveParams
from gankit.objectives.gan import AdversarialObjective


class WGANParams(ObjectiveParams):
    name: Literal["wgan"] = "wgan"
    clip: float = Field(0.01, gt=0)


class WGAN(AdversarialObjective):
    """WGAN with weight clipping, Arjovsky, Chintala & Bottou 2017 (Algorithm 1).

    n_critic = 5 critic steps per generator step, RMSProp(lr 5e-5), weights clipped to [-c, c]:
        L_D = E_z[D(G(z))] - E_x[D(x)]
        L_G = -E_z[D(G(z))]
    """

    Params = WGANParams
    default_d_steps = 5

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        return {"name": "rmsprop", "lr": 5e-5}

    def d_terms(self, real_out, fake_out):
        return L.d_loss_wasserstein(real_out, fake_out)

    def g_term(self, fake_out):
        return L.g_loss_critic(fake_out)

    def loss_D(self, ctx):
        loss, logs = super().loss_D(ctx)
        logs["W1_estimate"] = -loss.detach()
        return loss, logs

    @torch.no_grad()
    def post_step(self, phase: str) -> None:
        if phase == "D":   # the Lipschitz constraint is a projection after each critic step
            for p in self.nets["D"].parameters():
                p.clamp_(-self.params.clip, self.params.clip)


class WGANGPParams(ObjectiveParams):
    name: Literal["wgan-gp"] = "wgan-gp"
    gp_weight: float = Field(10.0, ge=0)   # lambda


class WGANGP(AdversarialObjective):
    """WGAN-GP, Gulrajani et al. 2017 (Algorithm 1): n_critic = 5, Adam(1e-4, 0, 0.9).

        L_D = E_z[D(G(z))] - E_x[D(x)] + lambda E_xhat[(||grad D(xhat)||_2 - 1)^2]
        xhat = eps x + (1 - eps) G(z),  eps ~ U[0, 1] per sample,  lambda = 10
        L_G = -E_z[D(G(z))]
    The penalty is per sample, so the critic must not use batch norm. On text (their
    language model) the critic reads one-hot real lines and G's softmax, and xhat mixes them.
    """

    Params = WGANGPParams
    default_d_steps = 5
    data_kinds = AdversarialObjective.data_kinds + ("text",)

    @classmethod
    def roles(cls, params, info, latent):
        # per sample and twice differentiable: the penalty differentiates grad_x D
        return {"G": GeneratorRole(z_dim=latent.dim),
                "D": CriticRole(per_sample=True, double_backward=True)}

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        return {"name": "adam", "lr": 1e-4, "betas": (0.0, 0.9)}

    def g_term(self, fake_out):
        return L.g_loss_critic(fake_out)

    def loss_D(self, ctx):
        real = ctx.batch["x"]
        _, fake = self.fakes_for_D(ctx, real.shape[0])
        D = self.nets["D"]
        w_loss = L.d_loss_wasserstein(D(real), D(fake))
        gp, grad_norm = L.gradient_penalty(D, real, fake, ctx.rng)
        loss = w_loss + self.params.gp_weight * gp
        return loss, {"loss/D": loss.detach(), "W1_estimate": -w_loss.detach(),
                      "gp": gp.detach(), "grad_norm": grad_norm}
