"""pix2pix: paired image-to-image translation with a conditional GAN (Isola et al. 2017)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.objectives import functional as L
from gankit.objectives.base import Objective, ObjectiveParams, Phase, Role
from gankit.objectives.cyclegan import DomainRole, example_inputs, translate_inputs


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
    # Dropout draws from torch's global RNG, which a checkpoint restores for the process; the
    # contract test interleaves two trainers in one process, so its smoke run has none.
    smoke_config: ClassVar[dict[str, Any]] = {
        "data": {"name": "fashion-edges", "split": "test", "n_examples": 4},
        "model": {"name": "translation", "generator": "unet", "ngf": 4, "ndf": 4,
                  "unet_dropout": 0.0}}
    directions: ClassVar[dict[str, str]] = {"AtoB": "G"}
    inverse: ClassVar[dict[str, str]] = {}

    def __init__(self, params: Pix2PixParams, nets: dict[str, nn.Module], latent, info,
                 d_steps: int = 1, **options):
        super().__init__(params, nets, latent, info, d_steps, **options)
        if info.kind != "paired":
            raise ConfigError(f"the pix2pix objective needs paired data (a paired data set such "
                              f"as paired-folder or fashion-edges), not {info.kind!r} data")

    def phases(self) -> list[Phase]:
        return [Phase("D", ("D",), repeats=self.d_steps), Phase("G", ("G",))]

    @classmethod
    def roles(cls, params, info) -> dict[str, Role]:
        return {"G": DomainRole("translator", reads=("a",), writes="b"),
                "D": DomainRole("critic", reads=("a", "b"))}

    @classmethod
    def default_optim(cls, phase: str) -> dict[str, Any]:
        return {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}

    def critic(self, a: Tensor, b: Tensor) -> Tensor:
        return self.nets["D"](torch.cat([a, b], 1))           # (B, 1, h, w) logits

    def loss_D(self, batch, rng):
        a, b = batch["a"], batch["b"]
        with torch.no_grad():
            fake = self.nets["G"](a)
        real_out, fake_out = self.critic(a, b), self.critic(a, fake)
        loss = 0.5 * L.d_loss_bce(real_out, fake_out)
        return loss, {"loss/D": loss.detach(), "D(a,b)": torch.sigmoid(real_out.detach()).mean(),
                      "D(a,G(a))": torch.sigmoid(fake_out.detach()).mean()}

    def loss_G(self, batch, rng):
        a, b = batch["a"], batch["b"]
        fake = self.nets["G"](a)
        adv = L.g_loss_nonsaturating(self.critic(a, fake))
        l1 = (fake - b).abs().mean()
        loss = adv + self.params.lambda_l1 * l1
        return loss, {"loss/G": loss.detach(), "loss/G_adv": adv.detach(), "loss/L1": l1.detach()}

    # ---- sampling: translating held-out inputs --------------------------------------
    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        return example_inputs(self.info, n, self.device)

    def generate(self, inputs: dict[str, Tensor], G: nn.Module | None = None) -> Tensor:
        return translate_inputs(G or self.nets["G"], inputs)
