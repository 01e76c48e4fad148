"""Class-conditional GANs: cGAN (Mirza & Osindero 2014) and AC-GAN (Odena et al. 2017).

Both feed a class label y to the generator, G(z, y). They differ in how D uses it: the cGAN
discriminator is told the label, D(x, y); the AC-GAN discriminator is not, and instead
predicts it with an auxiliary classifier head. Labels of generated samples are drawn uniformly
over the classes; real labels come with the batch (``ctx.batch["y"]``).

Network calling convention (any family that honours ``Role.num_classes`` / ``out_dim``):
``G(z, y)`` and ``D(x, y)`` when the role has ``num_classes > 0``; a critic with
``out_dim > 1`` returns ``(B, out_dim)`` whose column 0 is the adversarial logit.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import GeneratorRole
from gankit.errors import ConfigError
from gankit.objectives import functional as L
from gankit.objectives.gan import GANObjective, SigmoidGameParams


def require_labels(name: str, info) -> int:
    if info.num_classes < 2:
        raise ConfigError(f"the {name} objective needs labelled data with at least 2 classes; "
                          "this data set has none (use data.labels=true or another objective)")
    return info.num_classes


class _Labelled(GANObjective):
    """Sampling for G(z, y) with y ~ Uniform{0..K-1}; the sigmoid-game score for logs."""

    critic_is_probability = True
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)      # labelled images

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.LATENT, caps.LABELS})

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        z = self.latent.sample(n, rng, self.device)
        y = torch.randint(self.num_classes, (n,), generator=rng, device=self.device)
        return {"z": z, "y": y}

    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        return (net or self.nets["G"])(inputs["z"], inputs["y"])



class CGANParams(SigmoidGameParams):
    name: Literal["cgan"] = "cgan"


class CGAN(_Labelled):
    """Conditional GAN, Mirza & Osindero 2014, with the non-saturating generator loss.

        L_D = -E_{x,y}[log D(x, y)] - E_{z,y'}[log(1 - D(G(z, y'), y'))]
        L_G = -E_{z,y'}[log D(G(z, y'), y')]
    (x, y) from the data, y' ~ Uniform over the K classes. The sigmoid-game options of
    Salimans et al. 2016 apply (``SigmoidGameParams``); feature matching compares D's
    features f(x, y) of labelled real data and of fakes with their drawn labels.
    """

    Params = CGANParams

    @classmethod
    def roles(cls, params, info, latent):
        k = require_labels("cgan", info)
        return {"G": GeneratorRole(z_dim=latent.dim, num_classes=k),
                "D": cls.critic_role(params, num_classes=k)}

    def loss_D(self, ctx):
        real, y = ctx.batch["x"], ctx.batch["y"]
        inputs, fake = self.fakes_for_D(ctx, real.shape[0])
        D = self.nets["D"]
        real_out, fake_out = D(real, y), D(fake, inputs["y"])
        loss = L.d_loss_bce(real_out, fake_out, self.params.real_label)
        return loss, {"loss/D": loss.detach(), "D(x)": self.score(real_out),
                      "D(G(z))": self.score(fake_out)}

    def loss_G(self, ctx):
        inputs, fake = self.fakes_for_G(ctx, ctx.local_batch)
        loss, _ = self.g_adversarial(ctx, fake, inputs["y"])    # feature matching: f(x, y)
        return loss, {"loss/G": loss.detach()}


class ACGANParams(SigmoidGameParams):
    name: Literal["acgan"] = "acgan"
    aux_weight: float = Field(1.0, ge=0)     # weight of the class log-likelihood L_C
    # D's classifier also fits the labels of generated images (the paper). Off: D classifies
    # real images only, so G must match a classifier of real digits, not one it co-trains.
    fake_class_loss: bool = True


class ACGAN(_Labelled):
    """Auxiliary-classifier GAN, Odena, Olah & Shlens 2017 (non-saturating form).

    D outputs a source logit s(x) and class logits c(x). With the log-likelihoods
        L_S = E[log P(S=real | x)] + E[log P(S=fake | G(z, y'))]
        L_C = E[log P(C=y | x)]    + E[log P(C=y' | G(z, y'))]
    D maximises L_S + L_C and G maximises L_C - L_S; as losses (CE = cross-entropy):
        L_D = -E[log D(x)] - E[log(1 - D(G(z, y')))] + w (CE(c(x), y) + CE(c(G(z, y')), y'))
        L_G = -E[log D(G(z, y'))] + w CE(c(G(z, y')), y')
    with the non-saturating -log D(G) for G's source term, and w = 1 as in the paper.
    ``fake_class_loss=false`` drops CE(c(G(z, y')), y') from L_D (D classifies real data only).
    ``g_loss=feature_matching`` (Salimans et al. 2016) replaces G's source term -E[log D(G)].
    """

    Params = ACGANParams

    @classmethod
    def roles(cls, params, info, latent):
        k = require_labels("acgan", info)
        return {"G": GeneratorRole(z_dim=latent.dim, num_classes=k),
                "D": cls.critic_role(params, out_dim=1 + k)}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return super().capabilities(params) | {caps.CRITIC}     # D(x) needs no label

    def loss_D(self, ctx):
        real, y = ctx.batch["x"], ctx.batch["y"]
        inputs, fake = self.fakes_for_D(ctx, real.shape[0])
        D = self.nets["D"]
        real_out, fake_out = D(real), D(fake)                  # (B, 1 + K)
        adv = L.d_loss_bce(real_out[:, 0], fake_out[:, 0], self.params.real_label)
        cls_real = F.cross_entropy(real_out[:, 1:], y)
        cls_fake = F.cross_entropy(fake_out[:, 1:], inputs["y"])
        cls = cls_real + cls_fake if self.params.fake_class_loss else cls_real
        loss = adv + self.params.aux_weight * cls
        return loss, {"loss/D": loss.detach(), "loss/D_class": cls_real.detach(),
                      "D(x)": self.score(real_out[:, 0]), "D(G(z))": self.score(fake_out[:, 0]),
                      "acc/real": accuracy(real_out[:, 1:], y),
                      "acc/fake": accuracy(fake_out[:, 1:], inputs["y"])}

    def loss_G(self, ctx):
        inputs, fake = self.fakes_for_G(ctx, ctx.local_batch)
        adv, out = self.g_adversarial(ctx, fake)                 # (B, 1 + K)
        cls = F.cross_entropy(out[:, 1:], inputs["y"])
        loss = adv + self.params.aux_weight * cls
        return loss, {"loss/G": loss.detach(), "loss/G_class": cls.detach()}


def accuracy(logits: Tensor, y: Tensor) -> Tensor:
    return (logits.detach().argmax(1) == y).float().mean()
