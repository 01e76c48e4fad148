"""pix2pix: paired image-to-image translation with a conditional GAN (Isola et al. 2017)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import CriticRole, Role, TranslatorRole
from gankit.core.step import Phase, PhaseOptions, StepContext
from gankit.objectives import functional as L
from gankit.objectives.base import Objective, ObjectiveParams
from gankit.objectives.cyclegan import example_inputs, translate_inputs


class Pix2PixParams(ObjectiveParams):
    name: Literal["pix2pix"] = "pix2pix"
    lambda_l1: float = Field(100.0, ge=0)


class Pix2Pix(Objective):
    """pix2pix, Isola et al. 2017: conditional GAN + L1 (lambda = 100) on paired data.

    G maps an input a to an output; the PatchGAN D judges (a, output) pairs, concatenated on
    channels. Non-saturating losses on logits (log D = -softplus(-l)):
        L_D = 1/2 (-E[log D(a, b)] - E[log(1 - D(a, G(a)))])
        L_G = -E[log D(a, G(a))] + lambda E|b - G(a)|_1
    (the 1/2 slows D relative to G, as in the paper). Adam(2e-4, 0.5).
    """

    Params = Pix2PixParams
    sample_nets: ClassVar[tuple[str, ...]] = ("G",)
    data_kinds: ClassVar[tuple[str, ...]] = ("paired",)
    # Dropout draws from torch's global RNG, which a checkpoint restores for the process; the
    # contract test interleaves two trainers in one process, so its smoke run has none.
    smoke_config: ClassVar[dict[str, Any]] = {
        "model": {"name": "translation", "generator": "unet", "ngf": 4, "ndf": 4,
                  "unet_dropout": 0.0}}
    directions: ClassVar[dict[str, str]] = {"AtoB": "G"}
    inverse: ClassVar[dict[str, str]] = {}

    @classmethod
    def phases(cls, params, options: PhaseOptions) -> tuple[Phase, ...]:
        # D then G on the step's one batch of pairs
        return (Phase("D", ("D",), repeats=options.d_steps, real="shared"),
                Phase("G", ("G",), real="shared"))

    @classmethod
    def roles(cls, params, info, latent) -> dict[str, Role]:
        return {"G": TranslatorRole(reads=("a",), writes="b"),
                "D": CriticRole(reads=("a", "b"))}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.TRANSLATION})

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        return {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}

    def critic(self, a: Tensor, b: Tensor) -> Tensor:
        return self.nets["D"](torch.cat([a, b], 1))           # (B, 1, h, w) logits

    def loss_D(self, ctx: StepContext):
        a, b = ctx.batch["a"], ctx.batch["b"]
        with torch.no_grad():
            fake = self.nets["G"](a)
        real_out, fake_out = self.critic(a, b), self.critic(a, fake)
        loss = 0.5 * L.d_loss_bce(real_out, fake_out)
        return loss, {"loss/D": loss.detach(), "D(a,b)": torch.sigmoid(real_out.detach()).mean(),
                      "D(a,G(a))": torch.sigmoid(fake_out.detach()).mean()}

    def loss_G(self, ctx: StepContext):
        a, b = ctx.batch["a"], ctx.batch["b"]
        fake = self.nets["G"](a)
        adv = L.g_loss_nonsaturating(self.critic(a, fake))
        l1 = (fake - b).abs().mean()
        loss = adv + self.params.lambda_l1 * l1
        return loss, {"loss/G": loss.detach(), "loss/G_adv": adv.detach(), "loss/L1": l1.detach()}

    # ---- sampling: translating held-out inputs --------------------------------------
    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        return example_inputs(self.info, n, self.device)

    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        return translate_inputs(net or self.nets["G"], inputs)
