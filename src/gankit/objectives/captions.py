"""GAN-CLS: images from captions with a matching-aware discriminator (Reed et al. 2016).

Reed, Akata, Yan, Logeswaran, Schiele & Lee 2016, "Generative adversarial text to image
synthesis", Algorithm 1. A caption encoder E maps token ids t to an embedding e = E(t); the
generator draws G(z, e); the discriminator scores (image, embedding) pairs. Besides real
pairs and fakes it sees a third kind of input, a real image with a *mismatched* caption, as
fake, so it must judge whether an image fits its text, not only whether it looks real.

The data are captioned images (``CaptionInfo``: ``gankit.data.captions``); batches carry
``x`` and ``tokens``. Mismatched captions are the batch's own, rolled by one row (rows whose
rolled caption is the same sentence are left out of that term), and for a share
``near_misses`` of the rows the right caption with other digits (the data's
``near_misses``): a rolled caption mostly names other places, which D learns first, so
without near misses D (and so G) long ignores which digits a caption names.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import ConditionedCriticRole, ConditionedGeneratorRole, TextEncoderRole
from gankit.core.step import Phase, PhaseOptions, StepContext
from gankit.errors import ConfigError
from gankit.objectives import functional as L
from gankit.objectives.base import Objective, ObjectiveParams, Scalars


class GANCLSParams(ObjectiveParams):
    name: Literal["gan-cls"] = "gan-cls"
    # GAN-INT (Reed et al. 2016, section 4.3): weight of G's loss on interpolated caption
    # embeddings beta e1 + (1 - beta) e2, beta = 0.5 (0: off, plain GAN-CLS)
    interpolation: float = Field(0.0, ge=0, le=100)
    # share of the mismatched captions that are near misses (the right caption with other
    # digits, names, ...: ``near_misses`` of the data's CaptionInfo) instead of another
    # image's caption; 0: Reed et al.'s rolled batch only
    near_misses: float = Field(0.5, ge=0, le=1)
    # mode seeking (Mao et al. 2019): weight of 1 / (d_image / d_z) between pairs of fakes
    # drawn from the same caption with two z; 0: off. A conditional G otherwise learns to
    # ignore z (one layout per caption)
    mode_seeking: float = Field(0.0, ge=0, le=100)
    # weight of the caption reading loss (not in Reed et al.; an auxiliary classifier as in
    # AC-GAN, Odena et al. 2017, over the caption's tokens, as TAC-GAN, Dash et al. 2017, over
    # labels): D learns to read the caption off real images, G to draw images D reads as
    # their caption. 0: off
    caption_loss: float = Field(0.0, ge=0, le=100)
    # R1 penalty (Mescheder et al. 2018) on real, matching pairs, lazily every r1_interval-th
    # step (Karras et al. 2020); 0: off
    r1_gamma: float = Field(0.0, ge=0, le=1e4)
    r1_interval: int = Field(4, ge=1, le=1000)
    # G reads captions through an encoder of its own (E_G, trained with G) instead of D's E
    # (trained with D): G's embedding then carries what G needs to draw, not what D needs to
    # judge. false: Reed et al.'s one encoder
    g_encoder: bool = False


def caption_info(info: Any) -> Any:
    """The data's ``CaptionInfo``; ConfigError (one line) for data without captions."""
    if getattr(info, "vocab", None) is None or not getattr(info, "length", 0):
        raise ConfigError("the gan-cls objective needs captioned images (data: "
                          "mnist-captions)")
    return info


class GANCLS(Objective):
    """GAN-CLS (Reed et al. 2016): caption encoder E, G(z, E(t)), matching-aware D(x, E(t)).

        L_D = -E[log D(x, e)] - 1/2 (E[log(1 - D(x, e'))] + E[log(1 - D(G(z, e_G), e))])
              [+ w_cap CE(r(x), t)]  [+ N gamma / 2 E||grad_x D(x, e)||^2]
        L_G = -E[log D(G(z, e_G), e)]  [+ w_cap CE(r(G(z, e_G)), t)]
              [+ w_ms / (E|G(z1, e_G) - G(z2, e_G)| / E|z1 - z2| + 1e-5)]
              [+ w_int (-E[log D(G(z, e_G,int), e_int)])]
    (x, t) a real image and its caption, t' a wrong one (another image's, or a near miss of
    t: ``near_misses``); e = E(t), e' = E(t'). E trains with D (the D phase updates both) and
    is held fixed in L_G. G reads e_G = e, or with ``g_encoder`` e_G = E_G(t) from an encoder
    of its own trained with G (the G phase updates G and E_G).
    Optional terms: r is D's caption reader (token logits read off the image alone; CE the
    mean cross-entropy over the caption's positions, ``functional.token_loss``; weight
    ``caption_loss``), trained on real images only; the lazy R1 penalty on every N-th D step
    (N = ``r1_interval``, gamma = ``r1_gamma``); mode seeking (Mao et al. 2019, weight
    ``mode_seeking``: the batch's second half repeats the first half's captions with other z;
    off with fewer than 2 samples per process); GAN-INT (section 4.3, weight
    ``interpolation``): e_int = (e + e_rolled) / 2 for D and the same midpoint of e_G for G
    (the role says so: the slot generator refuses it, a midpoint of slot captions is none).
    G's captions in its own step are drawn from the data's seen combinations
    (``sample_inputs``), as the training stream draws them. ``train.ema_beta`` averages G
    and, with ``g_encoder``, E_G: the averaged G reads captions through the averaged E_G.
    """

    Params = GANCLSParams
    sample_nets: ClassVar[tuple[str, ...]] = ("G",)
    averaged_nets: ClassVar[tuple[str, ...]] = ("E_G",)     # when g_encoder builds it
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)
    smoke_config: ClassVar[dict[str, Any]] = {
        "data": {"name": "mnist-captions", "split": "test", "canvas": 28, "heldout_size": 16},
        "model": {"name": "captions", "z_dim": 4, "ngf": 4, "ndf": 4, "embed_dim": 4,
                  "text_dim": 4}}

    @classmethod
    def phases(cls, params, options: PhaseOptions) -> tuple[Phase, ...]:
        g_nets = ("G", "E_G") if params.g_encoder else ("G",)
        return (Phase("D", ("D", "E"), repeats=options.d_steps, real="fresh"),
                Phase("G", g_nets, real="none"))

    @classmethod
    def roles(cls, params, info, latent):
        text = caption_info(info)
        # embedding sizes 0: the network family's own (model.text_dim)
        encoder = TextEncoderRole(length=text.length, vocab=len(text.vocab))
        return {"E": encoder, **({"E_G": encoder} if params.g_encoder else {}),
                "G": ConditionedGeneratorRole(z_dim=latent.dim,
                                              midpoints=int(params.interpolation > 0)),
                "D": ConditionedCriticRole(
                    double_backward=params.r1_gamma > 0,         # R1: a gradient penalty
                    **({"length": text.length, "vocab": len(text.vocab)}
                       if params.caption_loss else {}))}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.LATENT, caps.CAPTIONS})

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        """Adam(2e-4, beta1 0.5), as Reed et al.'s code (DCGAN's settings)."""
        return {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}

    # ---- sampling -------------------------------------------------------------------
    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        """z (n, z_dim) and the tokens (n, length) of n random seen captions."""
        from gankit.data.captions import draw_specs, spec_tokens
        z = self.latent.sample(n, rng, self.device)
        tokens = spec_tokens(self.info, draw_specs(self.info, n, rng))
        return {"z": z, "tokens": tokens.to(self.device)}

    def encoder_of_G(self) -> nn.Module:
        """The caption encoder G reads through: its own E_G (``g_encoder``) or D's E."""
        return self.nets["E_G" if self.params.g_encoder else "E"]

    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        with torch.no_grad():
            e = self.encoder_of_G()(inputs["tokens"])
        return (net or self.nets["G"])(inputs["z"], e)

    # ---- losses ---------------------------------------------------------------------
    def loss_D(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        real, tokens = ctx.batch["x"], ctx.batch["tokens"]
        n = real.shape[0]
        wrong_tokens = self.mismatched(tokens, ctx.rng)
        e, wrong = self.nets["E"](torch.cat([tokens, wrong_tokens])).split(n)   # trained
        with torch.no_grad():
            e_g = self.nets["E_G"](tokens) if self.params.g_encoder else e.detach()
            fake = self.nets["G"](self.latent.sample(n, ctx.rng, ctx.device), e_g)
        differs = (tokens != wrong_tokens).any(1)                # (B,) truly mismatched
        reading = self.params.caption_loss > 0
        r1_due = self.params.r1_gamma > 0 and ctx.step % self.params.r1_interval == 0
        if r1_due:
            real = real.detach().requires_grad_(True)
        out = self.nets["D"](torch.cat([real, real, fake]), torch.cat([e, wrong, e]),
                             **({"read": True} if reading else {}))
        if reading:
            out, read = out
            read_loss = L.token_loss(read[:n], tokens)     # real images' own captions
        real_out, wrong_out, fake_out = out.split(n)
        bce = nn.functional.binary_cross_entropy_with_logits
        wrong_loss = (bce(wrong_out, torch.zeros_like(wrong_out), reduction="none")
                      * differs).sum() / differs.sum().clamp_min(1)
        loss = bce(real_out, torch.ones_like(real_out)) + 0.5 * (
            wrong_loss + bce(fake_out, torch.zeros_like(fake_out)))
        scalars = {"loss/D": loss.detach(),                 # the game's part, as loss/G
                   "D(x)": torch.sigmoid(real_out).mean().detach(),
                   "D(x,wrong)": torch.sigmoid(wrong_out).mean().detach(),
                   "D(G(z))": torch.sigmoid(fake_out).mean().detach()}
        if reading:
            loss = loss + self.params.caption_loss * read_loss
            scalars["loss/D_read"] = read_loss.detach()
        if r1_due:                   # D is per sample: real_out depends on the first copy only
            term, r1 = L.lazy_r1(real_out, real, self.params.r1_gamma, self.params.r1_interval)
            loss = loss + term
            scalars["r1"] = r1.detach()
        return loss, scalars

    def mismatched(self, tokens: Tensor, rng: torch.Generator) -> Tensor:
        """Wrong captions (B, length): another row's (the batch rolled by one), and for the
        first ``near_misses`` share of the rows the data's near misses of the right one."""
        wrong = tokens.roll(1, 0)
        k = round(self.params.near_misses * len(tokens))
        if k and hasattr(self.info, "near_misses"):
            wrong = torch.cat([self.info.near_misses(tokens[:k], rng), wrong[k:]])
        return wrong

    def loss_G(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        inputs = self.sample_inputs(ctx.local_batch, ctx.rng)
        tokens, half = inputs["tokens"], ctx.local_batch // 2
        if self.params.mode_seeking and half:                  # pairs (i, half + i)
            tokens = torch.cat([tokens[:half], tokens[:half], tokens[2 * half:]])
        with torch.no_grad():
            e = self.nets["E"](tokens)                           # D's view of the caption
        e_g = self.nets["E_G"](tokens) if self.params.g_encoder else e   # G's (trained)
        D, G = self.nets["D"], self.nets["G"]
        fake = G(inputs["z"], e_g)
        out, read = D(fake, e, read=True) if self.params.caption_loss else (D(fake, e), None)
        loss = L.g_loss_nonsaturating(out)
        scalars = {"loss/G": loss.detach()}
        if read is not None:
            read_loss = L.token_loss(read, tokens)
            scalars["loss/G_read"] = read_loss.detach()
            loss = loss + self.params.caption_loss * read_loss
        if self.params.mode_seeking and half:
            z = inputs["z"]
            ms = L.mode_seeking_loss(fake[:half], fake[half:2 * half], z[:half], z[half:2 * half])
            loss = loss + self.params.mode_seeking * ms
            scalars["loss/G_ms"] = ms.detach()
        if self.params.interpolation:
            mid, mid_g = (e + e.roll(1, 0)) / 2, (e_g + e_g.roll(1, 0)) / 2
            z = self.latent.sample(ctx.local_batch, ctx.rng, ctx.device)
            interp = L.g_loss_nonsaturating(D(G(z, mid_g), mid))
            loss = loss + self.params.interpolation * interp
            scalars["loss/G_int"] = interp.detach()
        return loss, scalars

