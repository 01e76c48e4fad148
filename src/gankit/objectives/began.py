"""BEGAN: an autoencoder discriminator kept in equilibrium with the generator."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from gankit.core import capabilities as caps
from gankit.core.roles import AutoencoderRole, GeneratorRole, Role
from gankit.core.step import PhaseOptions, StepContext
from gankit.objectives.base import ObjectiveParams, Scalars
from gankit.objectives.gan import GANObjective

L_REAL = "began/L(x)"        # scratch: the D step's detached L(x), one per repeat
L_FAKE = "began/L(G(z))"     # scratch: the G step's detached L(G(z_G))


class BEGANParams(ObjectiveParams):
    name: Literal["began"] = "began"
    gamma: float = Field(0.5, gt=0, le=1)        # diversity ratio E[L(G(z))] / E[L(x)]
    lambda_k: float = Field(0.001, ge=0, le=1)   # proportional gain of k_t
    code_dim: int = Field(64, gt=0, le=4096)     # h: width of the autoencoder's code
    # Not in the paper (its k_t lives in [0, 1]): a floor that keeps D pushing on G's samples,
    # measured against the paper's 0 in benchmarks/RESULTS.md (BEGAN section).
    k_min: float = Field(0.0, ge=0, lt=1)


def reconstruction_error(ae_out: Tensor, x: Tensor) -> Tensor:
    """Per-sample pixel-wise L1 error: (B, *shape) twice -> (B,), mean |AE(v) - v| over
    every value of a sample (BEGAN's L(v) with eta = 1)."""
    return (ae_out - x).abs().flatten(1).mean(1)


def d_loss(l_real: Tensor, l_fake: Tensor, k: Tensor | float) -> Tensor:
    """L_D = L(x) - k_t L(G(z_D)) (Berthelot et al. 2017, section 3.4) from the batch means of the
    L1 errors on real images and on the D step's fakes (scalars)."""
    return l_real - k * l_fake


def convergence_measure(l_real: Tensor, l_fake: Tensor, gamma: float) -> Tensor:
    """M_global = L(x) + |gamma L(x) - L(G(z_G))| (Berthelot et al. 2017, section 3.4.1):
    falls as the model converges; scalars in, a scalar out."""
    return l_real + (gamma * l_real - l_fake).abs()


def k_update(k: Tensor, l_real: Tensor, l_fake: Tensor, gamma: float, lambda_k: float,
             k_min: float = 0.0) -> Tensor:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), k_min, 1) (proportional control,
    Berthelot et al. 2017, section 3.4, where k_min = 0). A non-finite update leaves k_t as it
    is (a step the NaN guard skipped must not poison k). Scalars in, a scalar tensor out."""
    new = (k + lambda_k * (gamma * l_real - l_fake)).clamp(k_min, 1.0)
    return torch.where(torch.isfinite(new), new, k)


class BEGAN(GANObjective):
    """BEGAN, Berthelot, Schumm & Metz 2017 (arXiv:1703.10717): boundary equilibrium GAN.

    D is an autoencoder; its energy is the pixel-wise L1 reconstruction error
    L(v) = mean |D(v) - v|. With the equilibrium control k_t (k_0 = 0):
        L_D = L(x) - k_t L(G(z_D))          (G(z_D) detached: only D learns from it)
        L_G = L(G(z_G))
        k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1),   lambda_k = 0.001
        M_global = L(x) + |gamma L(x) - L(G(z_G))|       (convergence measure, logged)
    gamma = E[L(G(z))] / E[L(x)] at equilibrium (the diversity ratio of section 3.3, default
    0.5): lower values let D focus on reconstructing real images, at the cost of sample
    diversity. Networks: ``gankit.nn.began`` (images), the mlp family's autoencoder (2-D).

    k_t is updated after both phases of a step (``end_step``) from their detached losses,
    averaged over the data-parallel ranks, so it is the same number on every rank; it is
    saved in checkpoints. ``k_min`` (default 0, the paper) is an optional floor of k_t, not in
    the paper: D then always pushes on G's samples (benchmarks/RESULTS.md measures it against
    collapse). Logged: ``L(x)``, ``L(G(z))``, ``k_t`` (the value the step's D loss
    used), ``M_global``. Optimizer: Adam(1e-4, beta1 0.5) as in the reference TensorFlow
    code (carpedm20/BEGAN-tensorflow); the paper halves the rate when M_global stalls,
    that code every 100k steps, and its users report collapse once the rate has decayed too
    far: presets decay with a floor (``optim.*.min_lr``).
    """

    Params = BEGANParams
    data_kinds: ClassVar[tuple[str, ...]] = ("toy2d", "image")
    critic_is_probability: ClassVar[bool] = False
    critic_is_energy: ClassVar[bool] = True       # the critic map L(x) is low on the data
    critic_label: ClassVar[str] = "reconstruction error L(x)"      # what the critic map shows
    smoke_config: ClassVar[dict[str, Any]] = {"objective": {"code_dim": 4}}

    def __init__(self, params, nets, latent, info, options: PhaseOptions = PhaseOptions()):
        super().__init__(params, nets, latent, info, options)
        self.k = torch.full((), params.k_min, device=self.device)   # k_0 = k_min (paper: 0), fp32

    @classmethod
    def roles(cls, params, info, latent) -> dict[str, Role]:
        return {"G": GeneratorRole(z_dim=latent.dim), "D": AutoencoderRole(code_dim=params.code_dim)}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.LATENT, caps.CRITIC, caps.RECONSTRUCTION})

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        """Adam(1e-4, betas (0.5, 0.999)): the reference code's settings (the paper: Adam
        with an initial rate in [5e-5, 1e-4])."""
        return {"name": "adam", "lr": 1e-4, "betas": (0.5, 0.999)}

    # ---- the energy ---------------------------------------------------------------------
    def energy(self, x: Tensor) -> Tensor:
        """L1 reconstruction error of each sample: x (B, *shape) -> (B,), with graph."""
        return reconstruction_error(self.nets["D"](x), x)

    # ---- losses ---------------------------------------------------------------------
    def loss_D(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        real = ctx.batch["x"]
        _, fake = self.fakes_for_D(ctx, real.shape[0])          # (B, *shape), no G graph
        l_real, l_fake = self.energy(real).mean(), self.energy(fake).mean()
        k = self.k
        loss = d_loss(l_real, l_fake, k)
        ctx.scratch.setdefault(L_REAL, []).append(l_real.detach().float())
        return loss, {"loss/D": loss.detach(), "L(x)": l_real.detach(), "k_t": k.clone()}

    def loss_G(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        l_fake = self.energy(self.fakes_for_G(ctx, ctx.local_batch)[1]).mean()
        ctx.scratch[L_FAKE] = l_fake.detach().float()
        logs = {"loss/G": l_fake.detach(), "L(G(z))": l_fake.detach()}
        reals = ctx.scratch.get(L_REAL)
        if reals:                       # this step's D phase ran: the convergence measure
            l_real = torch.stack(reals).mean()
            logs["M_global"] = convergence_measure(l_real, l_fake.detach(), self.params.gamma)
        return l_fake, logs

    def end_step(self, ctx: StepContext) -> None:
        """k_{t+1} from this step's L(x) (the mean over the D repeats) and L(G(z_G)), both
        averaged over the ranks first: every rank computes the same k."""
        reals, fake = ctx.scratch.get(L_REAL), ctx.scratch.get(L_FAKE)
        if not reals or fake is None:
            return
        l_real, l_fake = ctx.mean_over_ranks(torch.stack([torch.stack(reals).mean(), fake]))
        self.k = k_update(self.k, l_real.to(self.k), l_fake.to(self.k), self.params.gamma,
                          self.params.lambda_k, self.params.k_min)

    # ---- state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        return {"k": self.k.detach().clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.k = state["k"].to(device=self.device, dtype=torch.float32).clone()

    # ---- capabilities: reconstruction and the energy as a critic map ---------------
    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """D's reconstruction of x (n, *shape) -> (n, *shape), without gradients."""
        return self.nets["D"](x)

    @torch.no_grad()
    def critic_map(self, x: Tensor) -> Tensor:
        """The energy L(x) of each point x (n, *shape) -> (n,): low where D reconstructs
        well (the data, when D wins); hence ``critic_is_energy``."""
        return self.energy(x).float()

    def generator_field(self, x: Tensor) -> Tensor:
        """-grad_x L(x) at points x (n, *shape): where G's samples at x would be pushed
        (G descends the energy of its samples)."""
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.energy(x).sum(), x)
        return -g.detach()
