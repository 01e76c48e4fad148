"""StyleGAN's training game: non-saturating logistic loss, lazy R1, style mixing, truncation.

Karras et al. 2019 ("A Style-Based Generator Architecture for GANs") and 2020 ("Analyzing and
Improving the Image Quality of StyleGAN"); the hyper-parameters follow NVlabs'
stylegan2-ada-pytorch (``training/loss.py``): R1 every 16 D steps with gamma scaled by the
interval, style-mixing probability 0.9, Adam(0.0025, betas (0, 0.99)) with the lazy
regularisation correction of D's rate and beta2 (StyleGAN2 appendix B).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import CriticRole, GeneratorRole, Role
from gankit.errors import ConfigError
from gankit.objectives import functional as L
from gankit.objectives.gan import AdversarialObjective, R1Params

LR, BETA2 = 0.0025, 0.99                  # stylegan2-ada's Adam for G and D
GROUPS = ("coarse", "middle", "fine")


class StyleGANParams(R1Params):
    name: Literal["stylegan"] = "stylegan"
    # R1 weight gamma (Mescheder et al. 2018); StyleGAN used 10 on FFHQ (0: off)
    r1_gamma: float = Field(10.0, ge=0, le=1e4)
    # lazy regularisation (StyleGAN2 section 3.1): R1 every N D steps, weighted by N
    r1_interval: int = Field(16, ge=1, le=1000)
    # style-mixing regularisation (StyleGAN section 3.1): share of fakes with two z
    mixing_prob: float = Field(0.9, ge=0, le=1)


def style_groups(ws_res: list[int]) -> dict[str, tuple[int, int]]:
    """w index ranges [lo, hi) of the coarse / middle / fine styles from the resolution each
    w acts at: coarse <= 8x8 (StyleGAN figure 3: 4^2-8^2), fine the output resolution (and
    above half of it), middle between (16^2 .. R/2; at 32 px: 16^2)."""
    top = max(ws_res)
    coarse = sum(r <= 8 for r in ws_res)
    fine_from = next(i for i, r in enumerate(ws_res) if r > max(16, top // 2))
    return {"coarse": (0, coarse), "middle": (coarse, fine_from),
            "fine": (fine_from, len(ws_res))}


class StyleGAN(AdversarialObjective):
    """StyleGAN / StyleGAN2 training (Karras et al. 2019, 2020): logistic loss, lazy R1.

    Non-saturating logistic loss, lazy R1 on real data, style-mixing regularisation,
    truncation at sampling:

        L_D = E_x softplus(-D(x)) + E_z softplus(D(G(z)))
              + [step % N == 0] N gamma/2 E_x ||grad_x D(x)||^2      (lazy R1, N = r1_interval)
        L_G = E_z softplus(-D(G(z)))

    With probability ``mixing_prob`` a batch of fakes takes w1 = f(z1) for the styles before
    a random crossover layer and w2 = f(z2) after it. The fixed samples and ``gankit
    sample`` draw z and the per-pixel noise of every layer from one seeded stream; the
    truncation trick (capability "styles") pulls w towards the tracked w_avg."""

    Params = StyleGANParams
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)
    critic_is_probability: ClassVar[bool] = True
    smoke_config: ClassVar[dict[str, Any]] = {
        "data": {"name": "mnist", "split": "test", "size": 32},
        "model": {"name": "stylegan", "z_dim": 8, "w_dim": 8, "mapping_layers": 2,
                  "ngf": 4, "ndf": 4, "max_channels": 8, "aux_hidden": 0}}

    @classmethod
    def roles(cls, params, info, latent) -> dict[str, Role]:
        return {"G": GeneratorRole(z_dim=latent.dim),
                "D": CriticRole(double_backward=params.r1_gamma > 0)}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.LATENT, caps.CRITIC, caps.STYLES})

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        """Adam(0.0025, (0, 0.99), eps 1e-8); D's rate and beta2 as the reference sets them
        for a lazy R1 every N = ``r1_interval`` steps (StyleGAN2 appendix B: c = N / (N + 1),
        lr c, beta2^c; 16/17 at the paper's N = 16). There c offsets the extra Adam update
        of each separate R1 pass; here the R1 term rides on an ordinary D step, so c only
        keeps the reference's per-update settings, and is 1 when R1 is off or not lazy
        (gamma 0 or N = 1)."""
        n = params.r1_interval
        lazy = phase == "D" and cls.r1_gamma(params) > 0 and n > 1
        c = n / (n + 1) if lazy else 1.0
        return {"name": "adam", "lr": LR * c, "betas": (0.0, BETA2 ** c), "eps": 1e-8}

    # ---- inputs: z and the per-pixel noise of each layer ------------------------------
    def _G(self, net: nn.Module | None) -> nn.Module:
        net = net or self.nets["G"]
        return getattr(net, "_orig_mod", net)                 # a compiled net's module

    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        out = {"z": self.latent.sample(n, rng, self.device)}
        return self.with_noise(out, rng)

    def with_noise(self, inputs: dict[str, Tensor], rng: torch.Generator | None,
                   ) -> dict[str, Tensor]:
        """``inputs`` with fresh per-pixel noise ``noise<i>`` (n, 1, r, r) for every layer."""
        n = len(inputs["z"] if "z" in inputs else inputs["w"])
        out = dict(inputs)
        for i, shape in enumerate(self._G(None).noise_shapes()):
            out[f"noise{i}"] = torch.randn(n, *shape, generator=rng, device=self.device)
        return out

    def training_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        """Style mixing (StyleGAN section 3.1, stylegan2-ada's ``style_mixing_prob``): with
        probability ``mixing_prob`` the whole batch takes a second z from a crossover layer
        drawn uniformly in [1, num_ws) on."""
        inputs = self.sample_inputs(n, rng)
        L_ = self.num_ws()
        cut = int(torch.randint(1, max(L_, 2), (), generator=rng, device=self.device))
        mix = float(torch.rand((), generator=rng, device=self.device)) < self.params.mixing_prob
        if mix and L_ > 1:
            inputs["z_mix"] = self.latent.sample(n, rng, self.device)
            inputs["mix"] = (torch.arange(L_, device=self.device) >= cut).expand(n, L_)
        return inputs

    # ---- the capability "styles" ----------------------------------------------------
    def num_ws(self, net: nn.Module | None = None) -> int:
        """The number of styles (w inputs) of the synthesis network."""
        return self._G(net).num_ws

    def style_layers(self, spec: str) -> tuple[int, int]:
        """w indices [lo, hi) named by ``spec``: "coarse", "middle", "fine" (``style_groups``)
        or "i-j" (indices i..j inclusive). ConfigError (one line) for anything else."""
        groups = style_groups(self._G(None).ws_res)
        if spec in groups:
            return groups[spec]
        m = re.fullmatch(r"(\d+)-(\d+)", spec)
        n = self.num_ws()
        if not m or not int(m[1]) <= int(m[2]) < n:
            raise ConfigError(f"style layers must be {', '.join(GROUPS)} or i-j with "
                              f"0 <= i <= j < {n}, not {spec!r}")
        return int(m[1]), int(m[2]) + 1

    def truncated(self, inputs: dict[str, Tensor], psi: float | Tensor) -> dict[str, Tensor]:
        """``inputs`` whose samples use w_avg + psi (w - w_avg) (truncation trick); ``psi``
        one value for all or (n,) values, one per sample."""
        n = len(inputs["z"] if "z" in inputs else inputs["w"])
        psi = torch.as_tensor(psi, dtype=torch.float32, device=self.device)
        return {**inputs, "psi": psi.expand(n).clone()}

    def mixed(self, a: dict[str, Tensor], b: dict[str, Tensor], spec: str) -> dict[str, Tensor]:
        """A's inputs (z, noise) with the styles of layers ``spec`` taken from B's z."""
        lo, hi = self.style_layers(spec)
        n, L_ = len(a["z"]), self.num_ws()
        idx = torch.arange(L_, device=self.device)
        return {**a, "z_mix": b["z"], "mix": ((idx >= lo) & (idx < hi)).expand(n, L_)}

    def to_w(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        """The styles (n, num_ws, w_dim) of ``inputs``: ``w`` as given, or f(z); then B's
        styles where ``mix`` is set, then the truncation ``psi``."""
        G = self._G(net)
        if "w" in inputs:
            ws = inputs["w"]
            ws = ws[:, None].expand(-1, G.num_ws, -1) if ws.dim() == 2 else ws
        else:
            ws = G.mapping(inputs["z"])[:, None].expand(-1, G.num_ws, -1)
        if "z_mix" in inputs:
            other = G.mapping(inputs["z_mix"])[:, None]
            ws = torch.where(inputs["mix"][..., None], other, ws)
        if "psi" in inputs:
            ws = G.truncate(ws, inputs["psi"][:, None, None].to(ws))
        return ws

    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        G = self._G(net)
        noise = [inputs.get(f"noise{i}") for i in range(len(G.noise_shapes()))]
        return G.synthesis(self.to_w(inputs, net), noise)

    # ---- losses (loss_D / loss_G, lazy R1 included: AdversarialObjective's) ----------
    def d_terms(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        """The logistic D loss: softplus(-D(x)) + softplus(D(G(z)))."""
        return L.d_loss_bce(real_out, fake_out)
