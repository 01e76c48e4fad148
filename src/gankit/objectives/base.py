"""The minimal objective: phases, roles, capabilities, losses, state.

An objective computes losses; it never calls ``backward()`` or an optimizer. The trainer asks
it for its *phases* (who is updated, how often, which real data each reads) and, for each
phase, for ``loss(phase, ctx) -> (loss, scalars)`` with the step's ``StepContext``; then the
trainer does backward, NaN checks, clipping, stepping, AMP, DDP and EMA once for every variant.
Nothing here assumes a generator/critic game: that lives in ``gankit.objectives.gan``.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import Role, reference_rows
from gankit.core.step import Latent, Phase, PhaseOptions, StepContext
from gankit.data.base import DataInfo
from gankit.params import Params

Scalars = dict[str, Tensor]


class ObjectiveParams(Params):
    name: str


class Objective:
    """Base class of every objective (adversarial or not).

    A subclass sets ``Params`` and declares, once, its ``phases`` and ``roles``; it implements
    ``loss_<phase>(ctx)`` for each phase, and the methods its ``capabilities`` promise
    (``gankit.core.capabilities``). Adding one is a module plus a line in ``gankit.registry``.
    """

    Params: ClassVar[type[ObjectiveParams]] = ObjectiveParams
    default_d_steps: ClassVar[int] = 1                # train.d_steps: repeats of repeating phases
    can_reuse_fakes: ClassVar[bool] = False           # accepts train.reuse_fakes
    sample_nets: ClassVar[tuple[str, ...]] = ()       # nets that make samples (EMA'd), first
                                                      # the default one
    # nets averaged besides the sample nets under train.ema_beta (e.g. a classifier whose
    # averaged weights are evaluated: Polyak averaging)
    averaged_nets: ClassVar[tuple[str, ...]] = ()
    # the kinds of data (``DataInfo.kind``) it trains on; others are refused at validation
    data_kinds: ClassVar[tuple[str, ...]] = ("toy1d", "toy2d", "image")
    # A tiny run for the contract test (tests/test_contract.py): config sections that differ
    # from the test's default for each data kind (e.g. a smaller network family).
    smoke_config: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: ObjectiveParams, nets: dict[str, nn.Module], latent: Latent,
                 info: DataInfo, options: PhaseOptions = PhaseOptions()):
        self.params, self.nets, self.latent, self.info = params, nets, latent, info
        self.options = options
        self.offers = self.capabilities(params)
        self.fix_references()

    def fix_references(self) -> None:
        """Give each sample net that waits for one its fixed reference batch (virtual batch
        norm, Salimans et al. 2016, section 3.4): its first call, on inputs drawn from this
        objective's own distribution (``sample_inputs``: noise, labels, codes) with torch's
        global generator, which the trainer has seeded, so every rank draws the same batch.
        A checkpoint's copy replaces it on resume."""
        for name in self.sample_nets:
            net = self.nets.get(name)
            rows = reference_rows(net) if net is not None else 0
            if rows:
                with torch.no_grad():
                    self.generate(self.sample_inputs(rows, None), net)

    def ema_nets(self) -> tuple[str, ...]:
        """The nets whose exponential moving average the trainer keeps (``train.ema_beta``):
        the sample nets, then the ``averaged_nets``, those of them this objective has."""
        names = self.sample_nets + tuple(n for n in self.averaged_nets
                                         if n not in self.sample_nets)
        return tuple(n for n in names if n in self.nets)

    @contextlib.contextmanager
    def reading(self, nets: dict[str, nn.Module]):
        """Inside, the objective reads ``nets`` in place of its own nets of those names:
        sampling from averaged weights (``train.ema_beta``) reads every averaged net, e.g.
        an averaged G's averaged caption encoder, not the trained one."""
        kept = {n: self.nets[n] for n in nets}
        self.nets.update(nets)
        try:
            yield
        finally:
            self.nets.update(kept)

    # ---- structure (class methods: a config is checked before anything is built) --------
    @classmethod
    def phases(cls, params: ObjectiveParams, options: PhaseOptions) -> tuple[Phase, ...]:
        """The phases of one training step, in order."""
        raise NotImplementedError

    @classmethod
    def phase_names(cls, params: ObjectiveParams) -> tuple[str, ...]:
        return tuple(p.name for p in cls.phases(params, PhaseOptions()))

    @classmethod
    def roles(cls, params: ObjectiveParams, info: DataInfo, latent: Latent) -> dict[str, Role]:
        """The networks it needs, by name; ``latent`` is the resolved noise of the run."""
        raise NotImplementedError

    @classmethod
    def capabilities(cls, params: ObjectiveParams) -> frozenset[str]:
        """What a trained model of this objective offers (``gankit.core.capabilities``)."""
        return frozenset({caps.SAMPLES})

    @classmethod
    def default_optim(cls, params: ObjectiveParams, phase: str) -> dict[str, Any]:
        """Optimizer settings the paper used for ``phase``, given the objective's validated
        ``params`` (StyleGAN corrects D's for its ``r1_interval``); the user's
        ``optim.<phase>`` keys override.
        Here: Adam with its authors' defaults (Kingma & Ba 2015)."""
        return {"name": "adam", "lr": 1e-3, "betas": (0.9, 0.999)}

    # ---- losses ---------------------------------------------------------------------
    def loss(self, phase: str, ctx: StepContext) -> tuple[Tensor, Scalars]:
        return getattr(self, f"loss_{phase}")(ctx)

    def end_step(self, ctx: StepContext) -> None:
        """After every phase of a step ran (e.g. BEGAN's k_t from both phases' losses, kept
        in ``ctx.scratch``; use ``ctx.mean_over_ranks`` so every rank agrees)."""

    def post_step(self, phase: str) -> None:
        """A projection applied after the phase's optimizer step (e.g. weight clipping)."""

    # ---- sampling -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(iter(self.nets.values())).parameters().__next__().device

    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        """What ``generate`` needs for n samples (noise, labels, codes, ...)."""
        raise NotImplementedError

    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        """Samples (n, *shape) from ``inputs``, by ``net`` (default: ``sample_nets[0]``)."""
        raise NotImplementedError

    # ---- state (history pools, k_t, ...) --------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        pass
