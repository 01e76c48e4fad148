"""f-AnoGAN (Schlegl et al. 2019): an encoder trained after a WGAN-GP, for anomaly scores.

Training happens in two stages. First a WGAN-GP (``objective: wgan-gp``) on normal images
only (``data.classes``: the one-class protocol). Then this objective reads that finished
run's generator and critic (``objective.gan_run``), keeps them frozen, and trains an encoder
E: x -> z so that G(E(x)) reproduces x in pixels and in the critic's features (the izi_f
architecture, "image -> z -> image" with the discriminator-feature residual). The anomaly
score of x is the same residual: normal images are reproduced well, anomalies are not.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import CriticRole, EncoderRole, GeneratorRole, Role
from gankit.core.step import Phase, StepContext
from gankit.errors import ConfigError
from gankit.objectives.base import Objective, ObjectiveParams, Scalars
from gankit.objectives.vae import eval_mode
from gankit.params import PathStr

CHUNK = 512                    # images per forward when scoring


class FAnoGANParams(ObjectiveParams):
    name: Literal["fanogan"] = "fanogan"
    # the finished WGAN-GP run whose G and critic are read (frozen); None leaves them
    # untrained (only for smoke tests of the machinery: the scores then mean nothing)
    gan_run: PathStr | None = None
    kappa: float = Field(1.0, ge=0, le=1e6)      # weight of the feature residual


class FAnoGAN(Objective):
    """f-AnoGAN's encoder for a frozen WGAN-GP's G and critic (Schlegl et al. 2019).

    Schlegl, Seeböck, Waldstein, Langs & Schmidt-Erfurth 2019 (Medical Image Analysis 54),
    encoder training izi_f (section 2.2.3) after a WGAN-GP (Gulrajani et al. 2017) whose G
    and critic f stay frozen:

        L_E = (1/n) ||x - G(E(x))||^2 + kappa (1/n_d) ||f(x) - f(G(E(x)))||^2
        A(x) = A_R(x) + kappa A_D(x)      (the same two terms per image: the anomaly score)

    n pixels, f the critic's last hidden layer (n_d features), kappa = 1 in the paper and
    in the PyTorch f-AnoGAN (A03ki). G and D are in eval mode and frozen (no phase updates
    them); only E is trained, with Adam(1e-4, 0, 0.9) as the WGAN-GP. The G and critic
    weights are copied from ``gan_run`` (G's EMA copy when that run kept one) at the first
    training step; afterwards they live in this run's checkpoints, so scoring needs only
    this run's folder. Logged: ``loss/E``, ``residual/pixel``, ``residual/feature``.
    """

    Params = FAnoGANParams
    sample_nets: ClassVar[tuple[str, ...]] = ("G",)
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)
    reconstruction_of: ClassVar[str] = "G(E({}))"
    sample_name: ClassVar[str] = "G(z)"

    def ema_nets(self) -> tuple[str, ...]:
        """None: G is frozen (an average of it would start from its random weights, before
        the copy from ``gan_run``), and scores read E itself."""
        return ()

    def __init__(self, params, nets, latent, info, options=None):
        from gankit.core.step import PhaseOptions
        super().__init__(params, nets, latent, info, options or PhaseOptions())
        self.loaded = torch.zeros((), dtype=torch.int64)   # 1 once G and D were copied

    @classmethod
    def phases(cls, params, options) -> tuple[Phase, ...]:
        return (Phase("E", ("E",), real="fresh"),)

    @classmethod
    def roles(cls, params, info, latent) -> dict[str, Role]:
        # G and D exactly as the WGAN-GP built them; D also hands out its features
        return {"G": GeneratorRole(z_dim=latent.dim),
                "D": CriticRole(per_sample=True, double_backward=True, features=True),
                "E": EncoderRole(z_dim=latent.dim, out_dim=latent.dim)}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.LATENT, caps.RECONSTRUCTION, caps.ANOMALY})

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        """Adam(1e-4, betas 0, 0.9): the WGAN-GP's, as the f-AnoGAN code trains E."""
        return {"name": "adam", "lr": 1e-4, "betas": (0.0, 0.9)}

    # ---- the frozen GAN ---------------------------------------------------------------
    def load_gan(self) -> None:
        """Copy G and D from ``gan_run``'s newest intact checkpoint. ConfigError (one line)
        when it is not a finished WGAN-GP run of this model and data shape."""
        from gankit.train.model import load_run_model as load_model
        from gankit.errors import GankitError

        run = self.params.gan_run
        try:
            gan = load_model(run, device=str(self.device))[1]
        except GankitError as e:
            raise ConfigError(f"objective.gan_run {run}: {e}") from None
        if gan.cfg.objective.name != "wgan-gp":
            raise ConfigError(f"objective.gan_run {run} was trained with "
                              f"{gan.cfg.objective.name}; f-AnoGAN reads a wgan-gp run")
        if tuple(gan.data.info.shape) != tuple(self.info.shape):
            raise ConfigError(f"objective.gan_run {run} models {gan.data.info.shape} images, "
                              f"this run {self.info.shape}")
        for name in ("G", "D"):
            try:
                self.nets[name].load_state_dict(gan.sampler(name).state_dict()
                                                if name == "G" else gan.nets[name].state_dict())
            except RuntimeError:
                raise ConfigError(f"objective.gan_run {run}: its {name} differs from this "
                                  "run's model section; use the same model settings") from None
        self.loaded.fill_(1)

    def state_dict(self) -> dict[str, Tensor]:
        return {"loaded": self.loaded.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.loaded = state["loaded"].clone()

    # ---- the residuals -------------------------------------------------------------------
    def residuals(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(G(E(x)), pixel residual (B,), feature residual (B,)) for images x (B, *shape):
        mean squared differences over pixels and over the critic's features."""
        G, D = self.nets["G"], self.nets["D"]
        with eval_mode(G, D):
            rec = G(self.nets["E"](x))
            _, f_x = D(x, features=True)
            _, f_rec = D(rec, features=True)
        pixel = (x - rec).flatten(1).square().mean(1)
        feature = (f_x - f_rec).flatten(1).square().mean(1)
        return rec, pixel, feature

    def loss_E(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        if not int(self.loaded) and self.params.gan_run is not None:
            self.load_gan()
        _, pixel, feature = self.residuals(ctx.batch["x"])
        loss = (pixel + self.params.kappa * feature).mean()
        return loss, {"loss/E": loss.detach(), "residual/pixel": pixel.detach().mean(),
                      "residual/feature": feature.detach().mean()}

    @torch.no_grad()
    def anomaly_score(self, x: Tensor) -> dict[str, Tensor]:
        """A(x) = pixel + kappa * feature residual, per image (B,), with its two parts."""
        with eval_mode(self.nets["E"]):
            parts = [self.residuals(c)[1:] for c in x.split(CHUNK)]
        pixel = torch.cat([p for p, _ in parts])
        feature = torch.cat([f for _, f in parts])
        return {"score": pixel + self.params.kappa * feature, "pixel": pixel,
                "feature": feature}

    def anomaly_protocol(self) -> dict[str, Any]:
        return {"score": "f-AnoGAN izi_f (Schlegl et al. 2019): mean squared pixel residual "
                         "+ kappa * mean squared critic-feature residual of G(E(x))",
                "kappa": self.params.kappa, "gan_run": self.params.gan_run}

    # ---- sampling and reconstruction ------------------------------------------------
    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        return {"z": self.latent.sample(n, rng, self.device)}

    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        return (net or self.nets["G"])(inputs["z"])

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """G(E(x)): (B, *shape) -> (B, *shape) in [-1, 1]."""
        with eval_mode(self.nets["G"], self.nets["E"]):
            return self.nets["G"](self.nets["E"](x))
