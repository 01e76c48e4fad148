"""A non-adversarial objective as a plug-in: maximum-likelihood fit of a Gaussian mixture.

The whole plug-in is this file plus ``register()``: an objective, the network family that
builds its one role (a density model), and their registration. It proves that the engine,
views and metrics take a model with no critic and no latent as it is (tests/test_plugins.py).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import DensityRole
from gankit.core.step import Phase
from gankit.objectives.base import Objective, ObjectiveParams
from gankit.params import Params
from gankit.registry import NETWORKS, OBJECTIVES


class GaussianMixture(nn.Module):
    """p(x) = sum_k pi_k N(x; mu_k, diag sigma_k^2) over x in R^d."""

    def __init__(self, dim: int, components: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(torch.randn(components, dim))
        self.log_std = nn.Parameter(torch.zeros(components, dim))

    def log_prob(self, x: Tensor) -> Tensor:
        """(B, d) -> (B,) log-densities in nats."""
        z = (x[:, None, :] - self.means) / self.log_std.exp()                 # (B, K, d)
        comp = -0.5 * z.square().sum(-1) - self.log_std.sum(-1) \
            - 0.5 * x.shape[1] * math.log(2 * math.pi)                          # (B, K)
        return torch.logsumexp(comp + torch.log_softmax(self.logits, 0), dim=1)

    def forward(self, u: Tensor, eps: Tensor) -> Tensor:
        """Samples from uniforms u (B,) (the component, by inverse CDF) and noise eps (B, d)."""
        cdf = torch.softmax(self.logits, 0).cumsum(0)
        k = torch.searchsorted(cdf.detach(), u.contiguous()).clamp_max(len(cdf) - 1)
        return self.means[k] + self.log_std[k].exp() * eps


class GMMParams(Params):
    name: Literal["gmm"] = "gmm"
    components: int = Field(8, gt=0, le=1000)


class GMMFamily:
    """A Gaussian mixture density model (for vector data)."""

    Params = GMMParams
    data_kinds = ("toy1d", "toy2d")
    builders = {DensityRole: lambda p, info, role: GaussianMixture(info.shape[0], p.components)}


class GMMFitParams(ObjectiveParams):
    name: Literal["gmm-fit"] = "gmm-fit"


class GMMFit(Objective):
    """Maximum-likelihood fit of a Gaussian mixture by gradient descent (Bishop 2006, 9.2).

        L_fit = -E_x[log p(x)],   p(x) = sum_k pi_k N(x; mu_k, diag sigma_k^2)
    """

    Params = GMMFitParams
    sample_nets: ClassVar[tuple[str, ...]] = ("density",)
    data_kinds: ClassVar[tuple[str, ...]] = ("toy2d",)
    smoke_config: ClassVar[dict] = {"model": {"name": "gmm"}}

    @classmethod
    def phases(cls, params, options):
        return (Phase("fit", ("density",), real="fresh"),)

    @classmethod
    def roles(cls, params, info, latent):
        return {"density": DensityRole()}

    @classmethod
    def capabilities(cls, params):
        return frozenset({caps.SAMPLES, caps.LIKELIHOOD})

    @classmethod
    def default_optim(cls, params, phase):
        return {"name": "adam", "lr": 5e-2, "betas": (0.9, 0.999)}

    def loss_fit(self, ctx):
        nll = -self.nets["density"].log_prob(ctx.batch["x"]).mean()
        return nll, {"loss/nll": nll.detach()}

    def sample_inputs(self, n, rng):
        dim = self.info.shape[0]
        return {"u": torch.rand(n, generator=rng, device=self.device),
                "eps": torch.randn(n, dim, generator=rng, device=self.device)}

    def generate(self, inputs, net=None):
        return (net or self.nets["density"])(inputs["u"], inputs["eps"])

    def log_likelihood(self, x: Tensor, net: nn.Module | None = None,
                       samples: int | None = None) -> Tensor:
        return (net or self.nets["density"]).log_prob(x)

    def likelihood_protocol(self, samples: int | None = None) -> dict:
        return {"estimator": "exact"}


def register() -> None:
    OBJECTIVES.register("gmm-fit", GMMFit)
    NETWORKS.register("gmm", GMMFamily)


def unregister() -> None:
    OBJECTIVES.unregister("gmm-fit")
    NETWORKS.unregister("gmm")
