"""InfoGAN, Chen et al. 2016: disentangled codes by maximising a mutual-information bound."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import GeneratorRole
from gankit.objectives import functional as L
from gankit.objectives.gan import GANObjective, SigmoidGameParams


class InfoGANParams(SigmoidGameParams):
    name: Literal["infogan"] = "infogan"
    categorical: int = Field(10, ge=0, le=1000)   # size of the categorical code (0: none)
    continuous: int = Field(2, ge=0, le=64)       # continuous codes ~ U[-1, 1]
    info_weight: float = Field(1.0, ge=0)                           # lambda
    cont_weight: float = Field(1.0, ge=0)                           # extra factor on continuous
    # "mse": Gaussian NLL with unit variance, 0.5 (c - mu)^2 up to a constant (the authors'
    # MNIST code fixes the std); "gaussian": Q also predicts log sigma per code.
    cont_loss: Literal["mse", "gaussian"] = "mse"
    # sigma > 0: Q reads its own noisy copy of the fakes, G(z, c) + sigma eps, through a second
    # pass of D's trunk (0: the paper; Q reads the fakes D judges). See the class docstring.
    q_noise: float = Field(0.0, ge=0, le=10)

    @model_validator(mode="after")
    def _some_code(self):
        if self.categorical + self.continuous == 0:
            raise ValueError("infogan needs at least one code (categorical or continuous)")
        return self


class InfoGAN(GANObjective):
    """InfoGAN, Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel 2016.

    G(z, c) with c = (c_1 ~ Cat(K), c_2.. ~ U[-1, 1]); Q(c | x) is an extra head on D's trunk.
    The variational lower bound of I(c; G(z, c)) is
        L_I = E_{c, x=G(z,c)}[log Q(c | x)] + H(c)
    and, with non-saturating G and lambda = 1,
        L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z, c)))] - lambda L_I     (updates D and Q)
        L_G = -E_z[log D(G(z, c))] - lambda L_I                          (updates G)
    -log Q is the cross-entropy for the categorical code and a Gaussian negative
    log-likelihood for each continuous one (``cont_loss``: unit variance by default, i.e.
    0.5 (c - mu(x))^2 + const, as in the authors' MNIST experiment; or learned sigma).

    ``q_noise`` sigma > 0 (not in the paper) evaluates L_I on Q(c | G(z, c) + sigma eps),
    eps ~ N(0, I), in both losses; the adversarial terms still see the clean fakes. On MNIST,
    the paper's form lets two codes draw the same digits (4 and 9, chosen by z) told apart by
    a faint style mark that Q reads perfectly; behind noise only visible differences carry
    the code. Costs one more pass of D over the fakes per phase (benchmarks/RESULTS.md).
    ``g_loss=feature_matching`` (Salimans et al. 2016) replaces G's -E[log D(G(z, c))].
    """

    Params = InfoGANParams
    critic_is_probability = True

    @classmethod
    def q_dim(cls, p: InfoGANParams) -> int:
        return p.categorical + p.continuous * (2 if p.cont_loss == "gaussian" else 1)

    @classmethod
    def roles(cls, params, info, latent):
        code = params.categorical + params.continuous
        return {"G": GeneratorRole(z_dim=latent.dim, code_dim=code),
                "D": cls.critic_role(params, out_dim=1 + cls.q_dim(params))}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        categorical = {caps.CATEGORICAL} if params.categorical >= 2 else set()
        return super().capabilities(params) | {caps.CODES} | categorical

    def code_spec(self) -> tuple[int, int]:
        """(categorical K, continuous m): the sizes of the codes ``c_cat`` and ``c_cont``."""
        return self.params.categorical, self.params.continuous

    # ---- sampling -------------------------------------------------------------------
    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        """z, the categorical code ``c_cat`` (n,) and the continuous codes ``c_cont`` (n, m)."""
        p, dev = self.params, self.device
        z = self.latent.sample(n, rng, dev)
        cat = torch.randint(max(p.categorical, 1), (n,), generator=rng, device=dev)
        cont = torch.rand(n, p.continuous, generator=rng, device=dev) * 2 - 1
        return {"z": z, "c_cat": cat, "c_cont": cont}

    def codes(self, inputs: dict[str, Tensor]) -> Tensor:
        """The generator's extra inputs: the one-hot categorical code, then continuous ones."""
        z = inputs["z"]
        parts = [F.one_hot(inputs["c_cat"], self.params.categorical).to(z.dtype)] \
            if self.params.categorical else []
        return torch.cat(parts + [inputs["c_cont"].to(z.dtype)], 1)

    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        return (net or self.nets["G"])(torch.cat([inputs["z"], self.codes(inputs)], 1))

    # ---- losses ---------------------------------------------------------------------
    def info_loss(self, q: Tensor, inputs: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """-E[log Q(c | x)] (without the constant H(c)) from Q's outputs q (B, q_dim)."""
        p = self.params
        logs: dict[str, Tensor] = {}
        cat_loss = q.new_zeros(())
        start = p.categorical
        if p.categorical:
            logits, c = q[:, :start], inputs["c_cat"]
            cat_loss = F.cross_entropy(logits, c)
            logs["info/cat_acc"] = (logits.detach().argmax(1) == c).float().mean()
        cont_loss = q.new_zeros(())
        if p.continuous:
            c = inputs["c_cont"]
            mu = q[:, start:start + p.continuous]
            if p.cont_loss == "gaussian":
                log_sigma = q[:, start + p.continuous:start + 2 * p.continuous].clamp(-5, 5)
                nll = 0.5 * ((c - mu) / log_sigma.exp()).square() + log_sigma
            else:
                nll = 0.5 * (c - mu).square()
            cont_loss = nll.sum(1).mean()
            logs["info/cont_mse"] = (c - mu).detach().square().mean()
        logs["info/cat_ce"], logs["info/cont_nll"] = cat_loss.detach(), cont_loss.detach()
        return cat_loss + p.cont_weight * cont_loss, logs

    def q_out(self, fake: Tensor, out: Tensor, rng) -> Tensor:
        """Q's outputs (B, q_dim) for the info loss: from D's pass ``out`` over ``fake``, or
        with ``q_noise`` from a pass over fake + sigma eps."""
        s = self.params.q_noise
        if not s:
            return out[:, 1:]
        noise = torch.randn(fake.shape, generator=rng, device=fake.device, dtype=fake.dtype)
        return self.nets["D"](fake + s * noise)[:, 1:]

    def loss_D(self, ctx):
        real = ctx.batch["x"]
        inputs, fake = self.fakes_for_D(ctx, real.shape[0])     # no graph into G
        D = self.nets["D"]
        real_out, fake_out = D(real), D(fake)                     # (B, 1 + q_dim)
        adv = L.d_loss_bce(real_out[:, 0], fake_out[:, 0], self.params.real_label)
        info, logs = self.info_loss(self.q_out(fake, fake_out, ctx.rng), inputs)
        loss = adv + self.params.info_weight * info
        return loss, logs | {"loss/D": loss.detach(), "loss/info": info.detach(),
                             "D(x)": self.score(real_out[:, 0]),
                             "D(G(z))": self.score(fake_out[:, 0])}

    def loss_G(self, ctx):
        inputs, fake = self.fakes_for_G(ctx, ctx.local_batch)
        adv, out = self.g_adversarial(ctx, fake)                 # (B, 1 + q_dim)
        info, _ = self.info_loss(self.q_out(fake, out, ctx.rng), inputs)
        loss = adv + self.params.info_weight * info
        return loss, {"loss/G": loss.detach()}
