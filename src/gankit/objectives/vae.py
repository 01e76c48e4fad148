"""The variational autoencoder (Kingma & Welling 2014) and its importance-weighted likelihood.

Two networks: an encoder giving a diagonal Gaussian q(z|x) = N(mu(x), diag sigma^2(x)) (its
output is [mu, log sigma^2], ``EncoderRole``) and a decoder giving the parameters of p(x|z)
(``DecoderRole``): per-pixel Bernoulli logits for binary images (the likelihood is a binary
cross-entropy) or Gaussian means with a fixed standard deviation (a scaled squared error).
The prior is p(z) = N(0, I). Images arrive in [-1, 1]; a Bernoulli decoder models
x01 = (x + 1) / 2, which must be 0 / 1: binarised data (``data.binarize: dynamic``). On grey
levels the Bernoulli "likelihood" is no density (a cross-entropy against grey levels), so its
elbo and nll would be numbers of no model: ``VAE.check_data`` refuses that configuration.

The test log-likelihood is estimated by importance sampling from q (Burda, Grosse &
Salakhutdinov 2016, eq. 8): log p(x) >= log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x),
a lower bound that rises to log p(x) as k grows (k = 1: the ELBO, in expectation).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.modes import eval_mode
from gankit.core.roles import DecoderRole, EncoderRole, Role
from gankit.core.step import Phase, StepContext
from gankit.data.base import make_generator
from gankit.errors import ConfigError
from gankit.objectives.base import Objective, ObjectiveParams, Scalars

LOG_2PI = math.log(2 * math.pi)
IW_SEED = 20160101           # noise of the importance samples: a deterministic estimate
IW_BUDGET = 1 << 14          # (examples x samples) decoded per forward: ~50 MB of logits


class VAEParams(ObjectiveParams):
    name: Literal["vae"] = "vae"
    decoder: Literal["bernoulli", "gaussian"] = "bernoulli"
    beta: float = Field(1.0, gt=0, le=1000)          # weight of the KL term (beta-VAE)
    sigma: float = Field(0.1, gt=0, le=10)           # the Gaussian decoder's fixed std
    iw_samples: int = Field(5000, gt=0, le=1_000_000)   # k of the test likelihood (default)
    # k of the training bound: 1, the ELBO (a VAE); k > 1, the importance-weighted bound
    # (an IWAE, Burda et al. 2016: the same networks, a tighter bound; beta must be 1)
    train_samples: int = Field(1, gt=0, le=256)        # B k decodes kept for backward

    @model_validator(mode="after")
    def _beta_is_an_elbo_weight(self) -> "VAEParams":
        if self.train_samples > 1 and self.beta != 1:
            raise ValueError("objective.beta weighs the ELBO's KL term; the importance-"
                             "weighted bound (objective.train_samples > 1) has none: "
                             "set beta 1 or train_samples 1")
        return self
    # what a sample is: the decoder's mean image, or a draw from p(x|z) (binary pixels for a
    # Bernoulli decoder, on the support of binarised data); auto: draw for bernoulli, mean
    # for gaussian (whose draws add pixel noise)
    samples: Literal["auto", "mean", "draw"] = "auto"


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag e^logvar) || N(0, I)) per row, analytically (Kingma & Welling 2014,
    appendix B): -0.5 sum(1 + log sigma^2 - mu^2 - sigma^2). (B, d) twice -> (B,) nats."""
    return -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(-1)


def _logged(loss: Tensor, recon: Tensor, kl: Tensor) -> Scalars:
    """The scalars a VAE step logs: its loss, and the batch means of the reconstruction
    term -log p(x|z) and the KL (any shape; nats per example) with their ELBO."""
    recon, kl = recon.detach().mean(), kl.detach().mean()
    return {"loss/vae": loss.detach(), "loss/recon": recon, "loss/kl": kl, "elbo": -(recon + kl)}


def std_normal_logpdf(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dim: (..., d) -> (...) nats."""
    return -0.5 * (z.square() + LOG_2PI).sum(-1)


class VAE(Objective):
    """Variational autoencoder (Kingma & Welling 2014), with an importance-weighted likelihood.

    Kingma & Welling 2014 (arXiv:1312.6114), optional beta (Higgins et al. 2017); test
    likelihood by importance sampling (Burda et al. 2016).

        L_vae = E_x[ E_{q(z|x)}[-log p(x|z)] + beta KL(q(z|x) || N(0, I)) ]
        KL    = -0.5 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)        (analytic)
        z     = mu(x) + sigma(x) * eps,  eps ~ N(0, I)             (reparameterisation)
        -log p(x|z) = BCE(x01, logits)  (Bernoulli)  or  ||x - mean||^2 / (2 sigma^2)
                      + (D/2) log(2 pi sigma^2)  (Gaussian, fixed sigma)

    One sample of z per example per step; with ``train_samples`` = k > 1 the loss is the
    IWAE's -L_k (Burda et al. 2016, eq. 8; ``loss_iwae``) over k samples instead. Logged:
    ``elbo`` (the batch's -(recon + KL), nats per example, whatever beta), ``loss/recon`` and ``loss/kl``. The decoder is the sampling
    net (EMA'd when ``train.ema_beta``); a sample is x ~ p(x|z), z ~ N(0, I) (``samples``:
    draw; binary pixels from uniforms u of ``sample_inputs`` for a Bernoulli decoder) or the
    decoder's mean image (``samples``: mean; sigmoid of the logits). ``log_likelihood`` is the importance-weighted bound with
    k = ``samples`` (default ``iw_samples``) samples from q, a deterministic noise stream,
    decoded in batches of at most ``IW_BUDGET`` (example, sample) pairs. Adam(1e-3).
    """

    Params = VAEParams
    sample_nets: ClassVar[tuple[str, ...]] = ("decoder",)
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)
    reconstruction_of: ClassVar[str] = "dec(enc({}))"    # the reconstruction figure's rows
    sample_name: ClassVar[str] = "sample"
    # binarised: the default (Bernoulli) decoder models binary pixels (``check_data``)
    smoke_config: ClassVar[dict[str, Any]] = {
        "data": {"name": "mnist", "split": "test", "binarize": "dynamic"},
        "objective": {"iw_samples": 8}}

    @classmethod
    def phases(cls, params, options) -> tuple[Phase, ...]:
        return (Phase("vae", ("encoder", "decoder"), real="fresh"),)

    @classmethod
    def check_data(cls, params: VAEParams, data: Any) -> None:
        """ConfigError (one line) for a Bernoulli decoder on data served as grey levels by
        choice (``data.binarize`` none where the data set can binarise): its p(x|z) is a
        density of 0 / 1 pixels only, so the elbo, the nll and every likelihood-based score
        would measure no distribution. Data sets without that option (a folder of images)
        pass: their images may be binary already, which the config cannot tell."""
        if (params.decoder != "bernoulli" or "binarize" not in type(data).model_fields
                or data.binarize == "dynamic"):
            return
        raise ConfigError("the vae objective's Bernoulli decoder (objective.decoder=bernoulli) "
                          f"models binary pixels, and {data.name} serves grey levels "
                          "(data.binarize=none): set data.binarize=dynamic, or set "
                          "objective.decoder=gaussian")

    @classmethod
    def roles(cls, params, info, latent) -> dict[str, Role]:
        if latent.dist != "normal" or latent.dim <= 0:
            raise ConfigError("the vae objective needs a normal latent (model.z_dist: normal, "
                              "model.z_dim > 0): its prior is N(0, I)")
        return {"encoder": EncoderRole(z_dim=latent.dim, out_dim=2 * latent.dim),
                "decoder": DecoderRole(z_dim=latent.dim)}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.LATENT, caps.LIKELIHOOD, caps.RECONSTRUCTION,
                          caps.ENCODING, caps.ELBO})

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        """Adam(1e-3, betas 0.9/0.999): Kingma & Ba's defaults, as Burda et al. 2016."""
        return {"name": "adam", "lr": 1e-3, "betas": (0.9, 0.999)}

    # ---- the model's pieces ---------------------------------------------------------
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, log sigma^2) of q(z|x), each (B, z_dim), from images (B, *shape)."""
        mu, logvar = self.nets["encoder"](x).chunk(2, dim=1)
        return mu, logvar

    def log_px(self, out: Tensor, x: Tensor) -> Tensor:
        """log p(x|z) in nats from the decoder's outputs (..., D) and data (..., D) in
        [-1, 1] (broadcast), summed over D -> (...)."""
        if self.params.decoder == "bernoulli":
            x01 = (x + 1) / 2
            return (x01 * out - F.softplus(out)).sum(-1)
        s = self.params.sigma
        return -(0.5 * ((x - out) / s).square() + math.log(s) + 0.5 * LOG_2PI).sum(-1)

    def mean(self, out: Tensor) -> Tensor:
        """The decoder's mean image in [-1, 1] from its outputs (B, *shape)."""
        if self.params.decoder == "bernoulli":
            return torch.sigmoid(out) * 2 - 1
        return out.clamp(-1, 1)

    # ---- training ---------------------------------------------------------------------
    def loss_vae(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        if self.params.train_samples > 1:
            return self.loss_iwae(ctx)
        x = ctx.batch["x"]                                           # (B, *shape)
        mu, logvar = self.posterior(x)
        eps = torch.randn(mu.shape, generator=ctx.rng, device=mu.device)
        z = mu + (0.5 * logvar).exp() * eps                          # (B, z_dim)
        out = self.nets["decoder"](z)                                # (B, *shape)
        recon = -self.log_px(out.flatten(1), x.flatten(1))           # (B,)
        kl = gaussian_kl(mu, logvar)                                 # (B,)
        loss = (recon + self.params.beta * kl).mean()
        return loss, _logged(loss, recon, kl)

    def loss_iwae(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        """-L_k, the importance-weighted bound with k = ``train_samples`` (Burda et al.
        2016, eq. 8), as the training loss: log w_i = log p(x|z_i) + log p(z_i) -
        log q(z_i|x), L_k = logsumexp_i(log w_i) - log k, z_i = mu + sigma eps_i. The logged
        ``elbo`` / ``loss/recon`` / ``loss/kl`` stay the ELBO's (recon over the k samples,
        analytic KL); ``loss/vae`` is -L_k."""
        x, k = ctx.batch["x"], self.params.train_samples                # (B, *shape)
        mu, logvar = self.posterior(x)
        eps = torch.randn((len(x), k, mu.shape[1]), generator=ctx.rng, device=mu.device)
        log_w, log_px = self.log_weights(x, mu, logvar, eps, self.nets["decoder"])  # (B, k)
        bound = torch.logsumexp(log_w, 1) - math.log(k)                 # (B,)
        loss = -bound.mean()
        return loss, _logged(loss, -log_px, gaussian_kl(mu, logvar))

    # ---- sampling, reconstruction, encoding -------------------------------------------
    @property
    def draws(self) -> bool:
        """Whether a sample is a draw from p(x|z) rather than its mean (``samples``)."""
        mode = self.params.samples
        return mode == "draw" or (mode == "auto" and self.params.decoder == "bernoulli")

    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        """z (n, z_dim) ~ N(0, I); for draws also u (n, *shape): uniforms (Bernoulli) or
        standard normals (Gaussian) that pick x from p(x|z)."""
        inputs = {"z": self.latent.sample(n, rng, self.device)}
        if self.draws:
            shape = (n, *self.info.shape)
            inputs["u"] = (torch.rand(shape, generator=rng, device=self.device)
                           if self.params.decoder == "bernoulli" else
                           torch.randn(shape, generator=rng, device=self.device))
        return inputs

    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        """Samples (n, *shape) in [-1, 1]: the mean image, or a draw using ``inputs["u"]``."""
        out = (net or self.nets["decoder"])(inputs["z"])
        if "u" not in inputs:
            return self.mean(out)
        if self.params.decoder == "bernoulli":
            return torch.where(inputs["u"] < torch.sigmoid(out), 1.0, -1.0)
        return (out + self.params.sigma * inputs["u"]).clamp(-1, 1)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """The posterior means mu(x) (B, z_dim) of images (B, *shape)."""
        with eval_mode(self.nets["encoder"]):
            return self.posterior(x)[0]

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """The decoder's mean image (B, *shape) in [-1, 1] at codes z (B, z_dim)."""
        with eval_mode(self.nets["decoder"]):
            return self.mean(self.nets["decoder"](z))

    def reconstruct(self, x: Tensor) -> Tensor:
        """The decoder's mean at z = mu(x): (B, *shape) -> (B, *shape) in [-1, 1]."""
        return self.decode(self.encode(x))

    # ---- the likelihood -----------------------------------------------------------------
    def likelihood_protocol(self, samples: int | None = None) -> dict[str, Any]:
        """How ``log_likelihood`` estimates: the IWAE bound and its k."""
        return {"estimator": "importance-weighted lower bound (Burda et al. 2016), "
                             "proposal q(z|x)",
                "iw_samples": samples or self.params.iw_samples, "iw_seed": IW_SEED}

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, net: nn.Module | None = None,
                       samples: int | None = None) -> Tensor:
        """The importance-weighted estimate of log p(x) (a lower bound; Burda et al. 2016,
        eq. 8) with k = ``samples`` (default ``iw_samples``) draws z_i ~ q(z|x):
        log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x). Images (B, *shape) in [-1, 1] ->
        (B,) nats. ``net``: the decoder (default the trained one; the encoder is always the
        trained one: any proposal gives a valid bound). Deterministic: its noise comes from
        a stream seeded ``IW_SEED`` on every call."""
        dec, k = net or self.nets["decoder"], samples or self.params.iw_samples
        gen = make_generator(IW_SEED, x.device)
        with eval_mode(self.nets["encoder"], dec):
            mu, logvar = self.posterior(x)
            rows = max(1, IW_BUDGET // k)                 # examples per forward
            return torch.cat([self._iw_rows(x[i:i + rows], mu[i:i + rows],
                                            logvar[i:i + rows], dec, k, gen)
                              for i in range(0, len(x), rows)])

    @torch.no_grad()
    def elbo(self, x: Tensor, net: nn.Module | None = None, samples: int | None = None) -> Tensor:
        """The ELBO E_q[log p(x|z)] - KL(q(z|x) || N(0, I)) (Kingma & Welling 2014, eq. 7)
        of images (B, *shape) in [-1, 1] -> (B,) nats: the analytic KL and the mean of
        log p(x|z_i) over ``samples`` (default 1) draws z_i ~ q(z|x) from a stream seeded
        ``IW_SEED`` (deterministic). ``net``: the decoder (default the trained one)."""
        dec, k = net or self.nets["decoder"], samples or 1
        gen = make_generator(IW_SEED, x.device)
        with eval_mode(self.nets["encoder"], dec):
            mu, logvar = self.posterior(x)
            recon = torch.zeros(len(x), device=x.device)
            for _ in range(k):                 # one (B, D) decode per draw: memory stays flat
                eps = torch.randn(mu.shape, generator=gen, device=x.device)
                out = dec(mu + (0.5 * logvar).exp() * eps).flatten(1)
                recon += self.log_px(out, x.flatten(1))
            return recon / k - gaussian_kl(mu, logvar)

    def log_weights(self, x: Tensor, mu: Tensor, logvar: Tensor, eps: Tensor,
                    dec: nn.Module) -> tuple[Tensor, Tensor]:
        """Importance log-weights log w = log p(x|z) + log p(z) - log q(z|x) and log p(x|z),
        each (r, m) nats, of z = mu + sigma eps for images x (r, *shape), posterior
        parameters (r, d) and standard normal draws eps (r, m, d) (Burda et al. 2016)."""
        r, m = eps.shape[:2]
        z = mu[:, None] + (0.5 * logvar[:, None]).exp() * eps           # (r, m, d)
        log_q = std_normal_logpdf(eps) - 0.5 * logvar.sum(-1, keepdim=True)
        out = dec(z.flatten(0, 1)).reshape(r, m, -1)                    # (r, m, D)
        log_px = self.log_px(out, x.flatten(1)[:, None])                # (r, m)
        return log_px + std_normal_logpdf(z) - log_q, log_px

    def _iw_rows(self, x: Tensor, mu: Tensor, logvar: Tensor, dec: nn.Module, k: int,
                 gen: torch.Generator) -> Tensor:
        """log (1/k) sum_i w_i for a few examples (r, *shape), the k samples drawn in chunks
        of at most ``IW_BUDGET // r`` and combined by a running logsumexp -> (r,)."""
        r = len(x)
        total = torch.full((r,), -math.inf, device=x.device)
        chunk = max(1, IW_BUDGET // r)
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = torch.randn((r, m, mu.shape[1]), generator=gen, device=x.device)
            log_w = self.log_weights(x, mu, logvar, eps, dec)[0]      # (r, m)
            total = torch.logaddexp(total, torch.logsumexp(log_w, 1))
        return total - math.log(k)
