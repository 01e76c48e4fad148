"""What adversarial objectives share: a generator G(z), a critic D, and its fakes.

``GANObjective`` holds the machinery of the generator/critic game (phases D then G, the
latent, fakes for the D step, fakes reused by the G step, the critic map and generator field
that the toy figures draw); ``AdversarialObjective`` is the common case whose two losses are
functions of the critic's outputs on real and fake data.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import CriticRole, GeneratorRole, Role
from gankit.core.step import Phase, PhaseOptions, StepContext
from gankit.objectives import functional as L
from gankit.objectives.base import Objective, ObjectiveParams, Scalars

KEPT = "gan/kept_fakes"      # scratch key: the D step's (inputs, fakes) for the G step


class GANObjective(Objective):
    """A generator/critic game: k critic steps on fresh real batches, then one G step."""

    can_reuse_fakes: ClassVar[bool] = True
    sample_nets: ClassVar[tuple[str, ...]] = ("G",)
    critic_is_probability: ClassVar[bool] = False     # D(x) = sigmoid(logit) is a probability

    def __init__(self, params, nets, latent, info, options: PhaseOptions = PhaseOptions()):
        super().__init__(params, nets, latent, info, options)
        self.reuse_fakes = self.reuses_fakes(options)

    @staticmethod
    def reuses_fakes(options: PhaseOptions) -> bool:
        """``train.reuse_fakes`` applies only with k = 1: for k > 1 the G step would see the
        last critic step's batch."""
        return options.reuse_fakes and options.d_steps == 1

    @classmethod
    def default_optim(cls, phase: str) -> dict[str, Any]:
        """Adam(2e-4, beta1 0.5), Radford et al. 2016's DCGAN settings, used by most GANs."""
        return {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}

    @classmethod
    def phases(cls, params: ObjectiveParams, options: PhaseOptions) -> tuple[Phase, ...]:
        keep = ("G",) if cls.reuses_fakes(options) else ()
        return (Phase("D", ("D",), repeats=options.d_steps, real="fresh", keeps_graph=keep),
                Phase("G", ("G",), real="none"))

    @classmethod
    def roles(cls, params, info, latent) -> dict[str, Role]:
        return {"G": GeneratorRole(z_dim=latent.dim), "D": CriticRole()}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.LATENT, caps.CRITIC})

    # ---- sampling -------------------------------------------------------------------
    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        return {"z": self.latent.sample(n, rng, self.device)}

    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        return (net or self.nets["G"])(inputs["z"])

    def fakes_for_D(self, ctx: StepContext, n: int) -> tuple[dict[str, Tensor], Tensor]:
        """(inputs, fakes) for a critic update, without a graph into G. With ``reuse_fakes``
        G's graph is built anyway and kept in the step's scratch for ``fakes_for_G``."""
        inputs = self.sample_inputs(n, ctx.rng)
        if not self.reuse_fakes:
            with torch.no_grad():
                return inputs, self.generate(inputs)
        fake = self.generate(inputs)                     # G keeps requires_grad (keeps_graph)
        ctx.scratch[KEPT] = (inputs, fake)
        return inputs, fake.detach()

    def fakes_for_G(self, ctx: StepContext, n: int) -> tuple[dict[str, Tensor], Tensor]:
        """(inputs, fakes) with G's graph: the D step's when kept, else fresh ones."""
        kept = ctx.scratch.pop(KEPT, None)
        if kept is not None and kept[1].shape[0] == n:
            return kept
        inputs = self.sample_inputs(n, ctx.rng)
        return inputs, self.generate(inputs)

    # ---- the critic as a picture (capability "critic") ------------------------------
    def adversarial_output(self, out: Tensor) -> Tensor:
        """The adversarial logit / critic value (B,) from D's output (B,) or (B, 1 + heads)."""
        return out if out.dim() == 1 else out[:, 0]

    def g_term(self, fake_out: Tensor) -> Tensor:
        """G's adversarial loss from the critic's adversarial outputs on fakes."""
        return L.g_loss_nonsaturating(fake_out)

    @classmethod
    def score(cls, out: Tensor) -> Tensor:
        """What the logs show as D(.): the mean D(x) = sigmoid(logit) for sigmoid games
        (``critic_is_probability``), else the mean raw critic value."""
        out = out.detach()
        return (torch.sigmoid(out) if cls.critic_is_probability else out).mean()

    def critic_map(self, x: Tensor) -> Tensor:
        """D at points x (n, *shape) -> (n,): D(x) in [0, 1] for sigmoid games, else the raw
        critic value (``critic_is_probability`` says which)."""
        with torch.no_grad():
            out = self.adversarial_output(self.nets["D"](x)).float()
        return torch.sigmoid(out) if self.critic_is_probability else out

    def generator_field(self, x: Tensor) -> Tensor:
        """-grad_x of G's adversarial loss at points x (n, *shape): where G's samples at x
        would be pushed."""
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = self.g_term(self.adversarial_output(self.nets["D"](x))) * len(x)
            (g,) = torch.autograd.grad(loss, x)
        return -g.detach()


class AdversarialObjective(GANObjective):
    """D/G games whose losses are functions of the critic's outputs on real and fake data."""

    def d_terms(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        raise NotImplementedError

    def loss_D(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        real = ctx.batch["x"]
        _, fake = self.fakes_for_D(ctx, real.shape[0])      # (B, *shape), no G graph
        real_out, fake_out = self.nets["D"](real), self.nets["D"](fake)
        loss = self.d_terms(real_out, fake_out)
        return loss, {"loss/D": loss.detach(), "D(x)": self.score(real_out),
                      "D(G(z))": self.score(fake_out)}

    def loss_G(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        fake_out = self.nets["D"](self.fakes_for_G(ctx, ctx.local_batch)[1])
        loss = self.g_term(fake_out)
        return loss, {"loss/G": loss.detach()}


class SigmoidGameParams(ObjectiveParams):
    """Options of every game on D(x) = sigmoid(logit)."""

    # one-sided label smoothing (Salimans et al. 2016, section 3.4): real target, e.g. 0.9
    real_label: float = Field(1.0, gt=0.5, le=1.0)


class SigmoidGame(AdversarialObjective):
    """Games on D(x) = sigmoid(logit): the logs and pictures show probabilities."""

    critic_is_probability: ClassVar[bool] = True

    def d_terms(self, real_out, fake_out):
        return L.d_loss_bce(real_out, fake_out, self.params.real_label)
