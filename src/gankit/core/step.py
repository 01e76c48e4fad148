"""One training step as objectives see it: phases, the latent, and the step context.

The trainer runs each declared ``Phase`` (``repeats`` times) and hands the objective a
``StepContext`` for the current step. Everything an objective may need from the engine goes
through it: the phase's real batch, another real batch, the local batch size, the noise
generator, the step number, a scratch space shared by the step's phases, a mean over the
data-parallel ranks, and differentiable copies of a network under its optimizer's update rule.
It offers no way to step a real optimizer or call ``backward()``: that stays the trainer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

from gankit.core import functional_optim

RealPolicy = Literal["shared", "fresh", "none"]


@dataclass(frozen=True)
class Phase:
    """One kind of update: the nets it trains, how often, and which real data it reads.

    ``real``: "shared" reads the step's one real batch (drawn once per step, whichever phase
    asks first: CycleGAN's G and D phases see the same images); "fresh" draws a new batch for
    every repeat (Algorithm 1 of Goodfellow et al. 2014 samples a minibatch for each of the k
    discriminator steps); "none" reads no real data (the generator step).
    """

    name: str                         # also the key of its optimizer config (optim.<name>)
    players: tuple[str, ...]          # nets whose parameters this phase updates
    repeats: int = 1                  # k discriminator steps (Algorithm 1) / n_critic
    real: RealPolicy = "fresh"
    # nets that keep requires_grad in this phase without being updated: it builds their
    # graph for a later phase (fakes reused by the G step, ``train.reuse_fakes``)
    keeps_graph: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhaseOptions:
    """The run settings that shape an objective's phases (from ``train.*``)."""

    d_steps: int = 1                  # k / n_critic
    reuse_fakes: bool = False


@dataclass(frozen=True)
class Latent:
    """The generator's noise: ``dim`` values per sample, N(0, I) or U[-1, 1]."""

    dim: int
    dist: Literal["normal", "uniform"] = "normal"

    @classmethod
    def of_model(cls, model: Any) -> "Latent":
        """The latent a network config resolves to (its ``z_dim`` / ``z_dist``; none: 0)."""
        return cls(getattr(model, "z_dim", 0), getattr(model, "z_dist", "normal"))

    def sample(self, n: int, rng: torch.Generator | None, device: torch.device) -> Tensor:
        """(n, dim) noise on ``device`` from ``rng``."""
        if self.dist == "uniform":
            return torch.rand(n, self.dim, generator=rng, device=device) * 2 - 1
        return torch.randn(n, self.dim, generator=rng, device=device)


class FunctionalNet:
    """A differentiable copy of a network that takes optimizer steps as tensor maths.

    Starts from the network's current parameters (as fresh leaves, so the real ones get no
    gradient) and from a copy of its optimizer's state, with that optimizer's rule and current
    learning rate. ``step(loss)`` replaces the parameters by the updated ones with the graph
    kept (``create_graph``), so a loss computed after K steps differentiates through all of
    them (unrolled GAN, Metz et al. 2017). The real network, its buffers (batch-norm running
    statistics are copied) and its optimizer are never changed.
    """

    def __init__(self, net: nn.Module, opt: torch.optim.Optimizer, cfg: Any, lr: float):
        self.net, self.cfg, self.lr = net, cfg, lr
        self.rule = functional_optim.RULES[cfg.name]
        named = dict(net.named_parameters())
        self.params = {k: p.detach().clone().requires_grad_(True) for k, p in named.items()}
        self.buffers = {k: b.detach().clone() for k, b in net.named_buffers()}
        self.state = {k: functional_optim.copy_state(opt.state.get(p, {}), p)
                      for k, p in named.items()}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return functional_call(self.net, {**self.params, **self.buffers}, args, kwargs)

    def step(self, loss: Tensor) -> None:
        """One update of the copy on ``loss`` (a scalar of its outputs), keeping the graph.

        As the real step: the phase's ``grad_clip`` (global norm) applies. Unlike it, the
        gradient is this process's own: with several ranks, inner steps are not averaged
        over them (as an unrolled GAN on one device takes them on its own batch)."""
        names = list(self.params)
        grads = torch.autograd.grad(loss, [self.params[k] for k in names], create_graph=True,
                                    allow_unused=True)
        if self.cfg.grad_clip:
            norm = torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g) for g in grads if g is not None]))
            scale = (self.cfg.grad_clip / (norm + 1e-6)).clamp(max=1.0)   # clip_grad_norm_'s
            grads = [g * scale if g is not None else None for g in grads]
        for k, g in zip(names, grads):
            if g is None:              # unused parameter: torch.optim skips it, and so do we
                continue
            self.params[k], self.state[k] = self.rule(self.params[k], g, self.state[k],
                                                      self.cfg, self.lr)


@dataclass
class StepContext:
    """The current step, as one phase of an objective sees it.

    ``batch`` is the phase's real batch (``{}`` when its ``real`` policy is "none"),
    ``local_batch`` the number of rows this process draws (the global batch split over the
    ranks), ``rng`` the training noise generator, ``scratch`` a dict cleared at the start of
    every step for values one phase hands to a later one (e.g. the D step's fakes).
    """

    step: int
    local_batch: int
    rng: torch.Generator
    device: torch.device
    batch: dict[str, Tensor] = field(default_factory=dict)
    scratch: dict[str, Any] = field(default_factory=dict)
    phase: str = ""
    _shared: dict[str, Tensor] | None = None      # the step's one "shared" real batch
    _draw_real: Callable[[], dict[str, Tensor]] | None = None
    _mean: Callable[[Tensor], Tensor] | None = None
    _functional: Callable[[str], FunctionalNet] | None = None

    @classmethod
    def standalone(cls, batch: dict[str, Tensor] | None = None, rng: torch.Generator | None = None,
                   local_batch: int | None = None, step: int = 0) -> "StepContext":
        """A context outside any trainer (tests, notebooks): a fixed ``batch``, no data source,
        no ranks, no functional updates. ``local_batch`` defaults to the batch's rows."""
        batch = dict(batch or {})
        first = next((v for v in batch.values() if isinstance(v, Tensor) and v.dim()), None)
        if local_batch is None:
            local_batch = int(first.shape[0]) if first is not None else 1
        device = first.device if first is not None else torch.device("cpu")
        return cls(step=step, local_batch=local_batch, rng=rng, device=device, batch=batch)

    def draw_real(self) -> dict[str, Tensor]:
        """Another real batch of ``local_batch`` rows (counted in ``images_seen``), e.g. the
        extra batches of unrolled critic steps."""
        if self._draw_real is None:
            raise RuntimeError("this step context has no data source")
        return self._draw_real()

    def shared_batch(self) -> dict[str, Tensor]:
        """The step's one real batch for phases whose ``real`` is "shared" (drawn on first
        use); each phase gets its own dict, so one phase's edits do not reach the next."""
        if self._shared is None:
            self._shared = self.draw_real()
        return dict(self._shared)

    def mean_over_ranks(self, x: Tensor) -> Tensor:
        """The mean of ``x`` over the data-parallel processes (``x`` itself in one process),
        detached, with ``x``'s dtype and device: state every rank must agree on, such as
        BEGAN's k_t, is updated from these."""
        x = x.detach()
        return x if self._mean is None else self._mean(x).to(x)

    def functional(self, net: str) -> FunctionalNet:
        """A differentiable copy of network ``net`` under the update rule and current
        learning rate of the phase that trains it (see ``FunctionalNet``)."""
        if self._functional is None:
            raise RuntimeError("this step context offers no functional updates")
        return self._functional(net)
