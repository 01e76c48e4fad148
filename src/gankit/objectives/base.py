"""What every objective provides, and the plumbing they share.

An objective computes losses; it never calls ``backward()`` or an optimizer. The trainer asks
it for its *phases* (who is updated, how often, with what optimizer defaults) and, for each
phase, for ``loss(phase, batch, rng) -> (loss, scalars)``; then the trainer does backward,
NaN checks, clipping, stepping, AMP, DDP and EMA once for every variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.data.base import DataInfo

Scalars = dict[str, Tensor]


@dataclass(frozen=True)
class Phase:
    """One kind of update: the nets it trains and how many times it runs per step."""

    name: str                         # also the key of its optimizer config (optim.<name>)
    players: tuple[str, ...]          # nets whose parameters this phase updates
    repeats: int = 1                  # k discriminator steps (Algorithm 1) / n_critic
    needs_real: bool = True           # draws a batch of real data
    # nets that keep requires_grad in this phase without being updated: the phase builds
    # their graph for a later phase (fakes reused by the G step, ``train.reuse_fakes``)
    keeps_graph: tuple[str, ...] = ()


@dataclass(frozen=True)
class Role:
    """What an objective needs a network to be; the network family decides how."""

    kind: Literal["generator", "critic", "translator"]
    out_dim: int = 1                  # critic outputs (1 + auxiliary heads)
    code_dim: int = 0                 # extra generator inputs beyond z (InfoGAN codes)
    num_classes: int = 0              # class labels fed in (conditional G / projection D)
    batchnorm: bool = True            # False: per-sample critic (gradient penalty)


@dataclass(frozen=True)
class Latent:
    dim: int
    dist: Literal["normal", "uniform"] = "normal"   # uniform is U[-1, 1]

    def sample(self, n: int, rng: torch.Generator | None, device: torch.device) -> Tensor:
        if self.dist == "uniform":
            return torch.rand(n, self.dim, generator=rng, device=device) * 2 - 1
        return torch.randn(n, self.dim, generator=rng, device=device)


class ObjectiveParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


class Objective:
    """Base class: a standard two-player game with a D phase and a G phase.

    Subclasses set ``Params`` and implement ``loss_D`` / ``loss_G``; multi-player variants
    override ``phases``, ``roles`` and add ``loss_<phase>`` methods.
    """

    Params: ClassVar[type[ObjectiveParams]] = ObjectiveParams
    default_d_steps: ClassVar[int] = 1
    can_reuse_fakes: ClassVar[bool] = False           # uses fakes_for_D / fakes_for_G
    sample_nets: ClassVar[tuple[str, ...]] = ("G",)   # nets that make samples (EMA'd)
    # A tiny run of this variant for the contract test (tests/test_contract.py): the config
    # sections that differ from the default ring/mlp demo.
    smoke_config: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: ObjectiveParams, nets: dict[str, nn.Module], latent: Latent,
                 info: DataInfo, d_steps: int = 1, reuse_fakes: bool = False):
        self.params, self.nets, self.latent, self.info = params, nets, latent, info
        self.d_steps = d_steps
        # Only with k = 1: for k > 1 the G step would see the last critic step's batch.
        self.reuse_fakes = reuse_fakes and d_steps == 1
        self._kept: tuple[dict[str, Tensor], Tensor] | None = None

    # ---- structure ------------------------------------------------------------------
    @classmethod
    def phase_names(cls) -> tuple[str, ...]:
        return ("D", "G")

    def phases(self) -> list[Phase]:
        keep = ("G",) if self.reuse_fakes else ()
        return [Phase("D", ("D",), repeats=self.d_steps, keeps_graph=keep),
                Phase("G", ("G",), needs_real=False)]

    @classmethod
    def roles(cls, params: ObjectiveParams, info: DataInfo) -> dict[str, Role]:
        return {"G": Role("generator"), "D": Role("critic")}

    @classmethod
    def capabilities(cls, params: ObjectiveParams) -> frozenset[str]:
        """What a trained model of this objective offers (``gankit.core.capabilities``)."""
        return frozenset({caps.SAMPLES, caps.LATENT})

    @classmethod
    def default_optim(cls, phase: str) -> dict[str, Any]:
        """Optimizer settings the paper used; the user's ``optim.<phase>`` keys override."""
        return {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}

    # ---- losses ---------------------------------------------------------------------
    def loss(self, phase: str, batch: dict[str, Tensor],
             rng: torch.Generator | None) -> tuple[Tensor, Scalars]:
        return getattr(self, f"loss_{phase}")(batch, rng)

    def post_step(self, phase: str) -> None:
        """A projection applied after the phase's optimizer step (e.g. weight clipping)."""

    # ---- sampling -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(iter(self.nets.values())).parameters().__next__().device

    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        return {"z": self.latent.sample(n, rng, self.device)}

    def generate(self, inputs: dict[str, Tensor], G: nn.Module | None = None) -> Tensor:
        return (G or self.nets["G"])(inputs["z"])

    def fake(self, n: int, rng: torch.Generator | None) -> Tensor:
        return self.generate(self.sample_inputs(n, rng))

    def fakes_for_D(self, n: int, rng: torch.Generator | None) -> tuple[dict[str, Tensor], Tensor]:
        """(inputs, fakes) for a critic update, without a graph into G. With ``reuse_fakes``
        G's graph is built anyway and kept for the G step (``fakes_for_G``)."""
        inputs = self.sample_inputs(n, rng)
        if not self.reuse_fakes:
            with torch.no_grad():
                return inputs, self.generate(inputs)
        fake = self.generate(inputs)                     # G keeps requires_grad (keeps_graph)
        self._kept = (inputs, fake)
        return inputs, fake.detach()

    def fakes_for_G(self, n: int, rng: torch.Generator | None) -> tuple[dict[str, Tensor], Tensor]:
        """(inputs, fakes) with G's graph: the D step's when kept, else fresh ones."""
        kept, self._kept = self._kept, None
        if kept is not None and kept[1].shape[0] == n:
            return kept
        inputs = self.sample_inputs(n, rng)
        return inputs, self.generate(inputs)

    # ---- state (history pools, k_t, ...) --------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        pass


class AdversarialObjective(Objective):
    """D/G games whose losses are functions of the critic's outputs on real and fake data."""

    can_reuse_fakes = True

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.LATENT, caps.CRITIC})

    def d_terms(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        raise NotImplementedError

    def g_term(self, fake_out: Tensor) -> Tensor:
        raise NotImplementedError

    def loss_D(self, batch, rng):
        real = batch["x"]
        _, fake = self.fakes_for_D(real.shape[0], rng)      # (B, *shape), no G graph
        real_out, fake_out = self.nets["D"](real), self.nets["D"](fake)
        loss = self.d_terms(real_out, fake_out)
        return loss, {"loss/D": loss.detach(), "D(x)": self.score(real_out),
                      "D(G(z))": self.score(fake_out)}

    def loss_G(self, batch, rng):
        fake_out = self.nets["D"](self.fakes_for_G(self.batch_size(batch), rng)[1])
        loss = self.g_term(fake_out)
        return loss, {"loss/G": loss.detach()}

    def batch_size(self, batch: dict[str, Tensor]) -> int:
        return int(batch["n"]) if "n" in batch else batch["x"].shape[0]

    @staticmethod
    def score(out: Tensor) -> Tensor:
        """What the logs show as D(.): a probability for sigmoid games, the raw critic value
        for the others."""
        return out.detach().mean()
