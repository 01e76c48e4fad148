"""What adversarial objectives share: a generator G(z), a critic D, and its fakes.

``GANObjective`` holds the machinery of the generator/critic game (phases D then G, the
latent, fakes for the D step, fakes reused by the G step, the critic map and generator field
that the toy figures draw) and the options of Salimans et al. 2016 that its sigmoid games
offer (``SigmoidGameParams``: feature matching, historical averaging, one-sided label
smoothing); ``AdversarialObjective`` is the common case whose two losses are functions of the
critic's outputs on real and fake data.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import CriticRole, GeneratorRole, Role
from gankit.core.step import Phase, PhaseOptions, StepContext
from gankit.objectives import functional as L
from gankit.objectives.base import Objective, ObjectiveParams, Scalars
from gankit.objectives.improved import HistoricalAverage, feature_matching_loss

KEPT = "gan/kept_fakes"      # scratch key: the D step's (inputs, fakes) for the G step
CHUNK = 512                  # critic map rows per call (a minibatch layer compares a batch)


class GANObjective(Objective):
    """A generator/critic game: k critic steps on fresh real batches, then one G step."""

    can_reuse_fakes: ClassVar[bool] = True
    sample_nets: ClassVar[tuple[str, ...]] = ("G",)
    critic_is_probability: ClassVar[bool] = False     # D(x) = sigmoid(logit) is a probability
    critic_is_energy: ClassVar[bool] = False          # the map is low on the data (BEGAN's L(x))

    def __init__(self, params, nets, latent, info, options: PhaseOptions = PhaseOptions()):
        super().__init__(params, nets, latent, info, options)
        self.reuse_fakes = self.reuses_fakes(options)
        phases = self.phases(params, options)
        self.players = {ph.name: ph.players for ph in phases}
        # historical averaging (Salimans et al. 2016, section 3.3): a running mean per player
        self.history = ({n: HistoricalAverage() for ph in phases for n in ph.players}
                        if self.history_weight else {})

    # ---- options of the sigmoid games (SigmoidGameParams; absent elsewhere) ------------
    @staticmethod
    def matches_features(params: ObjectiveParams) -> bool:
        """G's adversarial loss is feature matching (``objective.g_loss=feature_matching``)."""
        return getattr(params, "g_loss", None) == "feature_matching"

    @property
    def history_weight(self) -> float:
        """The weight of the historical-averaging term (``objective.historical_averaging``)."""
        return float(getattr(self.params, "historical_averaging", 0.0))

    @staticmethod
    def r1_gamma(params: ObjectiveParams) -> float:
        """The weight gamma of the R1 penalty on D (``objective.r1_gamma``; 0: off)."""
        return float(getattr(params, "r1_gamma", 0.0))

    def r1_interval(self) -> int:
        """N of the lazy R1 penalty: added every N-th D step (``objective.r1_interval``)."""
        return int(getattr(self.params, "r1_interval", 1))

    def r1_due(self, ctx: StepContext) -> bool:
        """Whether this D step adds the lazy R1 penalty: ``r1_gamma`` > 0 and the step a
        multiple of ``r1_interval`` (Karras et al. 2020, section 3.1)."""
        return self.r1_gamma(self.params) > 0 and ctx.step % self.r1_interval() == 0

    def add_r1(self, loss: Tensor, scalars: Scalars, real_out: Tensor, real: Tensor) -> Tensor:
        """``loss`` + N gamma/2 E_x ||grad_x D(x)||^2 (Mescheder et al. 2018, eq. 9; N =
        ``r1_interval``), from D's outputs ``real_out`` on ``real`` (which requires grad);
        logs the penalty as ``r1``."""
        term, r1 = L.lazy_r1(self.adversarial_output(real_out), real,
                             self.r1_gamma(self.params), self.r1_interval())
        scalars["r1"] = r1.detach()
        return loss + term

    @classmethod
    def critic_role(cls, params: ObjectiveParams, **fields: Any) -> CriticRole:
        """D's role; it also returns its intermediate features under feature matching, and
        is differentiated twice under R1."""
        if cls.r1_gamma(params) > 0:
            fields["double_backward"] = True
        return CriticRole(features=cls.matches_features(params), **fields)

    @staticmethod
    def reuses_fakes(options: PhaseOptions) -> bool:
        """``train.reuse_fakes`` applies only with k = 1: for k > 1 the G step would see the
        last critic step's batch."""
        return options.reuse_fakes and options.d_steps == 1

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        """Adam(2e-4, beta1 0.5), Radford et al. 2016's DCGAN settings, used by most GANs."""
        return {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}

    @classmethod
    def g_reads_real(cls, params: ObjectiveParams) -> bool:
        """The G step reads a real batch of its own: feature matching compares D's features
        of real and generated data (a fresh batch, as the authors' code draws one)."""
        return cls.matches_features(params)

    @classmethod
    def phases(cls, params: ObjectiveParams, options: PhaseOptions) -> tuple[Phase, ...]:
        keep = ("G",) if cls.reuses_fakes(options) else ()
        return (Phase("D", ("D",), repeats=options.d_steps, real="fresh", keeps_graph=keep),
                Phase("G", ("G",), real="fresh" if cls.g_reads_real(params) else "none"))

    @classmethod
    def roles(cls, params, info, latent) -> dict[str, Role]:
        return {"G": GeneratorRole(z_dim=latent.dim), "D": cls.critic_role(params)}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.LATENT, caps.CRITIC})

    # ---- sampling -------------------------------------------------------------------
    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        return {"z": self.latent.sample(n, rng, self.device)}

    def training_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        """The inputs of the fakes of a training step (default: ``sample_inputs``; a game
        may add training-only randomness, e.g. StyleGAN's style mixing)."""
        return self.sample_inputs(n, rng)

    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        return (net or self.nets["G"])(inputs["z"])

    def fakes_for_D(self, ctx: StepContext, n: int) -> tuple[dict[str, Tensor], Tensor]:
        """(inputs, fakes) for a critic update, without a graph into G. With ``reuse_fakes``
        G's graph is built anyway and kept in the step's scratch for ``fakes_for_G``."""
        inputs = self.training_inputs(n, ctx.rng)
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
        inputs = self.training_inputs(n, ctx.rng)
        return inputs, self.generate(inputs)

    # ---- losses shared by the games --------------------------------------------------
    def loss(self, phase: str, ctx: StepContext) -> tuple[Tensor, Scalars]:
        """The phase's loss plus, with ``historical_averaging`` w > 0, w times the historical
        term of each of its players (logged as ``hist/<phase>``)."""
        loss, scalars = super().loss(phase, ctx)
        if self.history:
            term = sum(self.history_term(n, update=True) for n in self.players[phase])
            loss = loss + self.history_weight * term
            scalars[f"hist/{phase}"] = term.detach()
        return loss, scalars

    def history_term(self, player: str, params: dict[str, Tensor] | None = None,
                     update: bool = False) -> Tensor:
        """|| theta - (1/t) sum_i theta[i] ||^2 for ``player`` (Salimans et al. 2016, 3.3),
        a scalar differentiable in ``params`` (default: the net's own parameters; an
        unrolled copy's for its inner steps). ``update`` first adds them to the mean."""
        if params is None:
            params = {k.removeprefix("_orig_mod."): p         # a compiled net's names
                      for k, p in self.nets[player].named_parameters()}
        if update:
            self.history[player].update(params)
        return self.history[player].penalty(params)

    def g_adversarial(self, ctx: StepContext, fake: Tensor,
                      y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(G's adversarial loss, D's outputs on ``fake`` (B,) or (B, out_dim)); ``y``: the
        fakes' labels for a conditional critic D(x, y).

        The game's ``g_term`` of D's adversarial output, or with feature matching
        (Salimans et al. 2016, section 3.1) || E_x f(x) - E_z f(G(z)) ||_2^2 over D's
        intermediate features f, the real ones from the G step's own batch (``ctx.batch``,
        its labels for a conditional critic; no graph: they do not depend on G)."""
        D, cond = self.nets["D"], () if y is None else (y,)
        if not self.matches_features(self.params):
            out = D(fake, *cond)
            return self.g_term(self.adversarial_output(out)), out
        out, fake_features = D(fake, *cond, features=True)
        with torch.no_grad():
            real_cond = () if y is None else (ctx.batch["y"],)
            _, real_features = D(ctx.batch["x"], *real_cond, features=True)
        return feature_matching_loss(real_features, fake_features), out

    # ---- state (historical averages) -------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for player, avg in self.history.items():
            out |= avg.state_dict(f"history/{player}/")
        return out

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for player, avg in self.history.items():
            avg.load_state_dict(state, f"history/{player}/", self.device)

    # ---- the critic as a picture (capability "critic") ------------------------------
    def adversarial_output(self, out: Tensor) -> Tensor:
        """The adversarial logit / critic value (B,) from D's output (B,) or (B, 1 + heads)."""
        return out if out.dim() == 1 else out[:, 0]

    def g_term(self, fake_out: Tensor) -> Tensor:
        """G's adversarial loss from the critic's adversarial outputs on fakes (the game's
        own; the generator field draws it also when G trains by feature matching)."""
        return L.g_loss_nonsaturating(fake_out)

    @classmethod
    def score(cls, out: Tensor) -> Tensor:
        """What the logs show as D(.): the mean D(x) = sigmoid(logit) for sigmoid games
        (``critic_is_probability``), else the mean raw critic value."""
        out = out.detach()
        return (torch.sigmoid(out) if cls.critic_is_probability else out).mean()

    def critic_map(self, x: Tensor) -> Tensor:
        """D at points x (n, *shape) -> (n,): D(x) in [0, 1] for sigmoid games, else the raw
        critic value (``critic_is_probability`` says which). Evaluated in chunks of 512
        points: a critic with minibatch discrimination compares each with its chunk."""
        with torch.no_grad():
            out = torch.cat([self.adversarial_output(self.nets["D"](part)).float()
                             for part in x.split(CHUNK)])
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
        """The game's ``d_terms``; with ``r1_gamma`` > 0 plus the lazy R1 penalty
        N gamma/2 E_x ||grad_x D(x)||^2 on every N-th step (N = ``r1_interval``;
        Mescheder et al. 2018, eq. 9; lazy: Karras et al. 2020, section 3.1)."""
        real = ctx.batch["x"]
        _, fake = self.fakes_for_D(ctx, real.shape[0])      # (B, *shape), no G graph
        lazy = self.r1_due(ctx)
        if lazy:
            real = real.detach().requires_grad_(True)
        real_out, fake_out = self.nets["D"](real), self.nets["D"](fake)
        loss = self.d_terms(real_out, fake_out)
        scalars = {"loss/D": loss.detach(), "D(x)": self.score(real_out),
                   "D(G(z))": self.score(fake_out)}
        if lazy:
            loss = self.add_r1(loss, scalars, real_out, real)
        return loss, scalars

    def loss_G(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        loss, _ = self.g_adversarial(ctx, self.fakes_for_G(ctx, ctx.local_batch)[1])
        return loss, {"loss/G": loss.detach()}


class SigmoidGameParams(ObjectiveParams):
    """Options of every game on D(x) = sigmoid(logit): the improved techniques of Salimans
    et al. 2016 that change losses (the network ones are ``model.*`` options)."""

    # one-sided label smoothing (section 3.4): real target, e.g. 0.9
    real_label: float = Field(1.0, gt=0.5, le=1.0)
    # G's loss: the game's own, or feature matching (section 3.1): ||E f(x) - E f(G(z))||^2
    # over D's last hidden features, a fresh real batch per G step
    g_loss: Literal["nonsaturating", "feature_matching"] = "nonsaturating"
    # historical averaging (section 3.3): weight of ||theta - mean of past theta||^2 added
    # to each player's loss (0: off)
    historical_averaging: float = Field(0.0, ge=0, le=1e6)


class R1Params(ObjectiveParams):
    """The lazy R1 penalty (``GANObjective.r1_due`` / ``add_r1``) of the unconditional games
    whose D loss is ``AdversarialObjective``'s; StyleGAN overrides the defaults."""

    # gamma/2 E_x ||grad_x D(x)||^2 on real data (Mescheder et al. 2018; 0: off), applied
    # lazily every r1_interval D steps with the weight scaled by the interval
    r1_gamma: float = Field(0.0, ge=0, le=1e4)
    r1_interval: int = Field(1, ge=1, le=1000)


class SigmoidGame(AdversarialObjective):
    """Games on D(x) = sigmoid(logit): the logs and pictures show probabilities."""

    critic_is_probability: ClassVar[bool] = True

    def d_terms(self, real_out, fake_out):
        return L.d_loss_bce(real_out, fake_out, self.params.real_label)
