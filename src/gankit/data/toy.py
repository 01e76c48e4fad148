"""Toy distributions: 1-D Gaussian and the 2-D mixtures of the PacGAN benchmarks.

Each is an infinite sampler with its own RNG, so a resumed run draws the same batches.

The distributions are infinite, so their held-out set is a fixed sample: ``HELDOUT_SIZE``
points drawn from a generator seeded with ``HELDOUT_SEED``, the same for every run, so
likelihoods of different runs are measured on the same points.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from scipy import stats
from torch import Tensor

from gankit.data.base import DataInfo, HeldOut, lazy_heldout, make_generator
from gankit.errors import DataError
from gankit.params import Params

HELDOUT_SEED = 7001
HELDOUT_SIZE = 10_000
# torch's CPU generator (mt19937) keeps only the low 32 bits of a seed: runs whose seed equals
# HELDOUT_SEED modulo 2**32 train on exactly the held-out stream.
_SEED_BITS = 2**32


class ToyParams(Params):
    name: str


class ToySource:
    """A sampler: subclasses implement ``draw(n, gen) -> (n, d)`` on the CPU."""

    source: ClassVar[str] = "built in"           # what a user needs for it (gankit list)
    kind: ClassVar[str] = "toy2d"
    shape: ClassVar[tuple[int, ...]] = (2,)      # one sample

    info: DataInfo

    @classmethod
    def describe(cls, params: ToyParams) -> DataInfo:
        """What the config says about the data (all of it, for a toy): kind and shape."""
        return DataInfo(cls.kind, cls.shape)

    def __init__(self, params: ToyParams, seed: int, device: torch.device | str = "cpu"):
        self.params, self.device = params, torch.device(device)
        self.info = self.describe(params)
        self.seed = int(seed)
        self.gen = make_generator(seed)
        self._heldout = lazy_heldout(self._draw_heldout)

    def draw(self, n: int, gen: torch.Generator) -> Tensor:
        raise NotImplementedError

    def next_batch(self, n: int) -> dict[str, Tensor]:
        return {"x": self.draw(n, self.gen).to(self.device)}

    def sample(self, n: int, seed: int) -> Tensor:
        """Samples from a separate stream (evaluation), leaving the training stream alone."""
        return self.draw(n, make_generator(seed))

    def heldout(self) -> HeldOut:
        """``HELDOUT_SIZE`` points (HELDOUT_SIZE, d) drawn once from stream ``HELDOUT_SEED``,
        identical for every run. Raises DataError for a run seeded with HELDOUT_SEED (mod
        2**32), whose training batches are drawn from that very stream."""
        return self._heldout()

    def _draw_heldout(self) -> HeldOut:
        if self.seed % _SEED_BITS == HELDOUT_SEED:
            raise DataError(f"run seed {self.seed} draws its training data from the held-out "
                            f"stream (seed {HELDOUT_SEED}) of {self.params.name}; use another "
                            "seed to measure held-out scores")
        points = self.draw(HELDOUT_SIZE, make_generator(HELDOUT_SEED))   # (N, d)
        return HeldOut(f"{HELDOUT_SIZE:,} fresh draws of {self.params.name} "
                       f"(seed {HELDOUT_SEED})", {"x": points}, device=self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"].to(torch.uint8))

    @classmethod
    def build(cls, params: ToyParams, *, seed: int, device="cpu") -> "ToySource":
        return cls(params, seed, device)


class Mixture2D(ToySource):
    """Equal-weight isotropic Gaussian mixture in 2-D; ``modes`` are its centres."""

    discrete_modes: ClassVar[bool] = True    # mode counts mean something (gankit.metrics.toy)

    modes: Tensor
    std: float

    def draw(self, n, gen):
        idx = torch.randint(len(self.modes), (n,), generator=gen)
        d = self.modes.shape[1]
        return self.modes[idx] + self.std * torch.randn(n, d, generator=gen)   # (n, d)

    @property
    def bounds(self) -> tuple[float, float]:
        r = float(self.modes.abs().max()) + 4 * self.std
        return -1.25 * r, 1.25 * r


class RingParams(ToyParams):
    name: Literal["ring"] = "ring"
    n_modes: int = Field(8, gt=0, le=1000)
    radius: float = Field(1.0, gt=0)
    std: float = Field(0.01, gt=0)


class Ring(Mixture2D):
    """Ring of 8 Gaussians (radius 1, std 0.01), as in PacGAN / unrolled GAN."""

    kind: ClassVar[str] = "toy2d"

    Params = RingParams

    def __init__(self, params: RingParams, seed: int, device="cpu"):
        super().__init__(params, seed, device)
        angles = torch.arange(params.n_modes, dtype=torch.float64) * 2 * math.pi / params.n_modes
        self.modes = (params.radius * torch.stack([angles.cos(), angles.sin()], 1)).float()
        self.std = params.std


class GridParams(ToyParams):
    name: Literal["grid"] = "grid"
    side: int = Field(5, gt=0, le=50)
    spacing: float = Field(2.0, gt=0)
    std: float = Field(0.05, gt=0)


class Grid(Mixture2D):
    """Grid of 25 Gaussians at {-4, -2, 0, 2, 4}^2 with std 0.05, as in PacGAN."""

    kind: ClassVar[str] = "toy2d"

    Params = GridParams

    def __init__(self, params: GridParams, seed: int, device="cpu"):
        super().__init__(params, seed, device)
        ticks = (torch.arange(params.side) - (params.side - 1) / 2) * params.spacing
        gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
        self.modes = torch.stack([gx.flatten(), gy.flatten()], 1).float()   # (side^2, 2)
        self.std = params.std


class SpiralParams(ToyParams):
    name: Literal["spiral"] = "spiral"
    turns: float = Field(1.5, gt=0)
    std: float = Field(0.05, ge=0)


class Spiral(ToySource):
    """An Archimedean spiral with Gaussian noise: a continuous manifold, no discrete modes.

    For metrics its ``modes`` are 200 points spaced along the curve; only the high-quality
    fraction is meaningful for it.
    """

    discrete_modes: ClassVar[bool] = False

    kind: ClassVar[str] = "toy2d"

    Params = SpiralParams

    def __init__(self, params: SpiralParams, seed: int, device="cpu"):
        super().__init__(params, seed, device)
        self.std = max(params.std, 1e-3)
        self.modes = self._curve(torch.linspace(0, 1, 200))

    def _curve(self, t: Tensor) -> Tensor:
        theta = 2 * math.pi * self.params.turns * t + 0.5
        r = 4 * (0.1 + 0.9 * t)
        return torch.stack([r * theta.cos(), r * theta.sin()], 1)

    def draw(self, n, gen):
        t = torch.rand(n, generator=gen)
        return self._curve(t) + self.params.std * torch.randn(n, 2, generator=gen)

    bounds = Mixture2D.bounds


class Gaussian1DParams(ToyParams):
    name: Literal["gaussian1d"] = "gaussian1d"
    mean: float = 4.0
    std: float = Field(0.5, gt=0)


class Gaussian1D(ToySource):
    """1-D Gaussian N(mean, std^2): the course-slide toy problem."""

    kind: ClassVar[str] = "toy1d"
    shape: ClassVar[tuple[int, ...]] = (1,)

    Params = Gaussian1DParams

    def __init__(self, params: Gaussian1DParams, seed: int, device="cpu"):
        super().__init__(params, seed, device)

    def draw(self, n, gen):
        return self.params.mean + self.params.std * torch.randn(n, 1, generator=gen)

    def pdf(self, x: np.ndarray) -> np.ndarray:
        return stats.norm.pdf(x, self.params.mean, self.params.std)

    def inverse_cdf(self, u: np.ndarray) -> np.ndarray:
        return stats.norm.ppf(u, self.params.mean, self.params.std)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.params.mean - 5 * self.params.std, self.params.mean + 5 * self.params.std


class DrawnParams(ToyParams):
    name: Literal["drawn"] = "drawn"
    std: float = Field(0.05, gt=0)


class Drawn(Mixture2D):
    """A target drawn by hand: equal-weight isotropic Gaussians of std ``std`` at ``points``
    (m, d), d = 1 or 2 (the live view's clicks). Not registered (no config names it): the
    live view puts it in place of a toy run's data source between steps. ``bounds`` is the
    x-range of the source it replaces widened to the points (the picture keeps its axes).
    Mode metrics (``gankit.metrics.toy``) count the points as modes."""

    def __init__(self, points: Tensor, std: float, bounds: tuple[float, float], seed: int,
                 device: torch.device | str = "cpu"):
        super().__init__(DrawnParams(std=std), seed, device)
        self.modes = torch.as_tensor(points, dtype=torch.float32).reshape(len(points), -1)
        if len(self.modes) == 0 or self.modes.shape[1] not in (1, 2):
            raise DataError("a drawn target needs at least one point of 1 or 2 coordinates")
        self.std = std
        d = self.modes.shape[1]
        self.kind = "toy1d" if d == 1 else "toy2d"
        self.info = DataInfo(self.kind, (d,))
        lo, hi = float(self.modes.min()) - 4 * std, float(self.modes.max()) + 4 * std
        self._bounds = min(bounds[0], lo), max(bounds[1], hi)

    @property
    def bounds(self) -> tuple[float, float]:
        return self._bounds

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """The density at 1-D points x (n,) (1-D targets)."""
        m = self.modes[:, 0].numpy()
        return stats.norm.pdf(np.asarray(x)[:, None], m[None, :], self.std).mean(1)

    def inverse_cdf(self, u: np.ndarray) -> np.ndarray:
        """F^-1(u) for u in (0, 1) (1-D targets), interpolated on a grid of 4,000 points."""
        m = self.modes[:, 0].numpy()
        xs = np.linspace(m.min() - 6 * self.std, m.max() + 6 * self.std, 4000)
        cdf = stats.norm.cdf(xs[:, None], m[None, :], self.std).mean(1)
        return np.interp(u, cdf, xs)
