"""Networks of text-to-image GANs (Reed et al. 2016, "Generative adversarial text to image
synthesis"), CPU-sized: a caption encoder, a conditioned generator, a matching-aware critic.

* Text encoder (``TextEncoderRole``): token embedding (``embed_dim``) then a GRU (``text_dim``
  units; Cho et al. 2014); the caption's embedding is the GRU state after its last word
  (padding, id 0, comes after the words and is not read). Reed et al. pretrain a char-CNN-RNN;
  here it trains with the critic (the objective decides).
* Generator (``ConditionedGeneratorRole``): [z, c] -> linear -> (2^(n-1) ngf, R/2^n, R/2^n)
  -> n = ``levels`` 4x4 stride-2 transposed convolutions (``g_upsample=nearest``: nearest
  upsampling + 3x3 convolution) halving the width (batch norm, ReLU; tanh out), the DCGAN
  path (Radford et al. 2016) for any side R divisible by 2^n (n = 2: 60, 56, 48, 32, 28;
  n = 3: 56, 48, 32).
* Critic (``ConditionedCriticRole``): n 4x4 stride-2 convolutions doubling the width
  (LeakyReLU 0.2; layer norm from the second on, so each sample is judged alone: the
  objective scores real, mismatched and fake pairs in one batch) to (2^(n-1) ndf, R/2^n,
  R/2^n); c, projected to ``ndf`` values, is replicated over that map and concatenated (Reed
  et al.'s "depth concatenation"); a ``mix_kernel`` convolution mixes them, a linear layer
  reads the map: one logit. The linear read keeps where things are, which a caption about
  positions needs. With n = 2 a feature of the map sees 10 x 10 pixels, less than a digit
  (28): n = 3 (22 pixels) and a 3 x 3 mix (38) let D tell which digit sits in a slot. When
  the role asks (``vocab`` > 0), a second linear layer reads the caption's tokens off the
  image map before c joins it (the objective's caption loss).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import BeforeValidator, Field
from torch import Tensor, nn

from gankit.core.roles import ConditionedCriticRole, ConditionedGeneratorRole, TextEncoderRole
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.nn.dcgan import init_weights, up2
from gankit.params import Params, not_bool


class CaptionsParams(Params):
    name: Literal["captions"] = "captions"
    z_dim: int = Field(32, gt=0, le=4096)
    z_dist: Literal["normal", "uniform"] = "normal"
    ngf: int = Field(32, gt=0, le=1024)          # G width at its last hidden layer
    ndf: int = Field(32, gt=0, le=1024)          # D width at its first layer
    embed_dim: int = Field(32, gt=0, le=1024)    # token embedding
    text_dim: int = Field(64, gt=0, le=1024)     # caption embedding (GRU state)
    levels: int = Field(2, ge=2, le=4)           # stride-2 stages of G and D
    # D's image-caption mixing convolution: 1 x 1 or 3 x 3
    mix_kernel: Annotated[Literal[1, 3], BeforeValidator(not_bool)] = 1
    # G's upsampling: 4x4 transposed convolutions, or nearest + 3x3 (Odena et al. 2016)
    g_upsample: Literal["transposed", "nearest"] = "transposed"


def check_image(info: DataInfo, levels: int = 2) -> None:
    """ConfigError unless the data are square images whose side is a multiple of
    2^``levels``."""
    shape, step = info.shape, 2 ** levels
    if info.kind != "image" or len(shape) != 3 or shape[1] != shape[2] or shape[1] % step:
        raise ConfigError(f"the captions network with model.levels={levels} takes square "
                          f"images whose side is a multiple of {step}, not {info.kind} data "
                          f"of shape {tuple(shape)}")


class TextEncoder(nn.Module):
    """Token ids (B, L) int64, right-padded with 0 -> caption embeddings (B, out_dim).

    A GRU cell stepped over the words: ``nn.GRU``'s CPU kernel gives other last bits when its
    weights do not require gradients (as in the trainer's G phase), so samples would differ
    between the trainer and a loaded run; the cell's are the same either way."""

    def __init__(self, vocab: int, embed_dim: int, out_dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_dim, padding_idx=0)
        self.cell = nn.GRUCell(embed_dim, out_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        words = self.embed(tokens)                                     # (B, L, embed_dim)
        h = words.new_zeros(len(tokens), self.cell.hidden_size)
        for t in range(tokens.shape[1]):            # padding keeps the state of the last word
            h = torch.where((tokens[:, t] != 0)[:, None], self.cell(words[:, t], h), h)
        return h


class ConditionedGenerator(nn.Module):
    """z (B, z_dim), c (B, cond_dim) -> images (B, C, R, R) in [-1, 1]."""

    def __init__(self, in_dim: int, shape: tuple[int, ...], ngf: int, levels: int = 2,
                 upsample: str = "transposed"):
        super().__init__()
        self.base, width = shape[1] // 2 ** levels, ngf * 2 ** (levels - 1)
        self.width = width
        self.project = nn.Sequential(nn.Linear(in_dim, width * self.base ** 2, bias=False))
        layers: list[nn.Module] = [nn.BatchNorm2d(width), nn.ReLU(True)]  # (B, w, R/2^n, .)
        for _ in range(levels - 1):                   # each doubles the side, halves the width
            layers += [up2(width, width // 2, upsample), nn.BatchNorm2d(width // 2),
                       nn.ReLU(True)]
            width //= 2
        layers += [up2(width, shape[0], upsample), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        h = self.project(torch.cat([z, c], 1))
        return self.main(h.view(-1, self.width, self.base, self.base))


class MatchingCritic(nn.Module):
    """images (B, C, R, R), c (B, cond_dim) -> logits (B,): real and matching c; with
    ``read=True`` (built with ``tokens`` = (length, vocab)) also the caption's token logits
    (B, length, vocab) read off the image alone: (logits, token logits)."""

    def __init__(self, shape: tuple[int, ...], ndf: int, cond_dim: int, levels: int = 2,
                 mix_kernel: int = 1, tokens: tuple[int, int] = (0, 0)):
        super().__init__()
        self.base, width = shape[1] // 2 ** levels, ndf
        layers: list[nn.Module] = [nn.Conv2d(shape[0], ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for _ in range(levels - 1):                   # each halves the side, doubles the width
            layers += [nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),
                       nn.GroupNorm(1, 2 * width), nn.LeakyReLU(0.2, True)]
            width *= 2
        self.trunk = nn.Sequential(*layers)                     # (B, w, R/2^n, R/2^n)
        self.cond = nn.Sequential(nn.Linear(cond_dim, ndf), nn.LeakyReLU(0.2, True))
        self.mix = nn.Sequential(nn.Conv2d(width + ndf, width, mix_kernel,
                                           padding=mix_kernel // 2, bias=False),
                                 nn.GroupNorm(1, width), nn.LeakyReLU(0.2, True))
        self.head = nn.Linear(width * self.base ** 2, 1)
        self.tokens = tokens                                    # (length, vocab) read off x
        if tokens[1]:
            self.reader = nn.Linear(width * self.base ** 2, tokens[0] * tokens[1])
        init_weights(self)

    def forward(self, x: Tensor, c: Tensor, read: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        h = self.trunk(x)
        e = self.cond(c)[:, :, None, None].expand(-1, -1, self.base, self.base)
        logits = self.head(self.mix(torch.cat([h, e], 1)).flatten(1)).flatten()
        if not read:
            return logits
        if not self.tokens[1]:
            raise ValueError("this critic was built without a caption reader (role vocab 0)")
        return logits, self.reader(h.flatten(1)).view(len(x), *self.tokens)   # (B, L, V)


# A role's embedding size 0 (out_dim, cond_dim) leaves it to the family: ``text_dim``.
def build_encoder(p: CaptionsParams, info: DataInfo, role) -> nn.Module:
    return TextEncoder(role.vocab, p.embed_dim, role.out_dim or p.text_dim)


def build_generator(p: CaptionsParams, info: DataInfo, role) -> nn.Module:
    return ConditionedGenerator(role.z_dim + (role.cond_dim or p.text_dim), info.shape, p.ngf,
                                p.levels, p.g_upsample)


def build_critic(p: CaptionsParams, info: DataInfo, role) -> nn.Module:
    return MatchingCritic(info.shape, p.ndf, role.cond_dim or p.text_dim, p.levels,
                          p.mix_kernel, (role.length, role.vocab))


class CaptionsFamily:
    """Text to image (Reed 2016): GRU caption encoder, conditioned DCGAN-like G and D."""

    Params = CaptionsParams
    data_kinds = ("image",)
    builders = {TextEncoderRole: build_encoder, ConditionedGeneratorRole: build_generator,
                ConditionedCriticRole: build_critic}

    @staticmethod
    def check(p: CaptionsParams, info: DataInfo) -> None:
        check_image(info, p.levels)
