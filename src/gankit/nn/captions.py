"""Networks of text-to-image GANs (Reed et al. 2016, "Generative adversarial text to image
synthesis"), CPU-sized: a caption encoder, a conditioned generator, a matching-aware critic.

* Text encoder (``TextEncoderRole``): token embedding (``embed_dim``) then a GRU (``text_dim``
  units; Cho et al. 2014); the caption's embedding is the GRU state after its last word
  (padding, id 0, comes after the words and is not read). Reed et al. pretrain a char-CNN-RNN;
  here it trains with the critic (the objective decides).
* Generator (``ConditionedGeneratorRole``): [z, c] -> linear -> (2 ngf, R/4, R/4) -> two
  4x4 stride-2 transposed convolutions (batch norm, ReLU; tanh out), the DCGAN path of MNIST
  (Radford et al. 2016) for any side R divisible by 4 (60, 56, 48, 32, 28).
* Critic (``ConditionedCriticRole``): two 4x4 stride-2 convolutions (LeakyReLU 0.2; layer
  norm on the second, so each sample is judged alone: the objective scores real, mismatched
  and fake pairs in one batch) to (2 ndf, R/4, R/4); c, projected to ``ndf`` values, is
  replicated over that map and concatenated (Reed et al.'s "depth concatenation"); a 1x1
  convolution mixes them, a linear layer reads the map: one logit. The linear read keeps
  where things are, which a caption about positions needs.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.core.roles import ConditionedCriticRole, ConditionedGeneratorRole, TextEncoderRole
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.nn.dcgan import init_weights
from gankit.params import Params


class CaptionsParams(Params):
    name: Literal["captions"] = "captions"
    z_dim: int = Field(32, gt=0, le=4096)
    z_dist: Literal["normal", "uniform"] = "normal"
    ngf: int = Field(32, gt=0, le=1024)          # G width at its last hidden layer
    ndf: int = Field(32, gt=0, le=1024)          # D width at its first layer
    embed_dim: int = Field(32, gt=0, le=1024)    # token embedding
    text_dim: int = Field(64, gt=0, le=1024)     # caption embedding (GRU state)


def check_image(info: DataInfo) -> None:
    """ConfigError unless the data are square images whose side is a multiple of 4."""
    shape = info.shape
    if info.kind != "image" or len(shape) != 3 or shape[1] != shape[2] or shape[1] % 4:
        raise ConfigError(f"the captions network takes square images whose side is a multiple "
                          f"of 4, not {info.kind} data of shape {tuple(shape)}")


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

    def __init__(self, in_dim: int, shape: tuple[int, ...], ngf: int):
        super().__init__()
        self.base, width = shape[1] // 4, 2 * ngf
        self.width = width
        self.project = nn.Sequential(nn.Linear(in_dim, width * self.base ** 2, bias=False))
        self.main = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(True),                      # (B, 2ngf, R/4, R/4)
            nn.ConvTranspose2d(width, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf), nn.ReLU(True),                        # (B, ngf, R/2, R/2)
            nn.ConvTranspose2d(ngf, shape[0], 4, 2, 1, bias=False), nn.Tanh())
        init_weights(self)

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        h = self.project(torch.cat([z, c], 1))
        return self.main(h.view(-1, self.width, self.base, self.base))


class MatchingCritic(nn.Module):
    """images (B, C, R, R), c (B, cond_dim) -> logits (B,): real and matching c."""

    def __init__(self, shape: tuple[int, ...], ndf: int, cond_dim: int):
        super().__init__()
        self.base, width = shape[1] // 4, 2 * ndf
        self.trunk = nn.Sequential(
            nn.Conv2d(shape[0], ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, width, 4, 2, 1, bias=False), nn.GroupNorm(1, width),
            nn.LeakyReLU(0.2, True))                                   # (B, 2ndf, R/4, R/4)
        self.cond = nn.Sequential(nn.Linear(cond_dim, ndf), nn.LeakyReLU(0.2, True))
        self.mix = nn.Sequential(nn.Conv2d(width + ndf, width, 1, bias=False),
                                 nn.GroupNorm(1, width), nn.LeakyReLU(0.2, True))
        self.head = nn.Linear(width * self.base ** 2, 1)
        init_weights(self)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = self.trunk(x)
        e = self.cond(c)[:, :, None, None].expand(-1, -1, self.base, self.base)
        return self.head(self.mix(torch.cat([h, e], 1)).flatten(1)).flatten()


# A role's embedding size 0 (out_dim, cond_dim) leaves it to the family: ``text_dim``.
def build_encoder(p: CaptionsParams, info: DataInfo, role) -> nn.Module:
    return TextEncoder(role.vocab, p.embed_dim, role.out_dim or p.text_dim)


def build_generator(p: CaptionsParams, info: DataInfo, role) -> nn.Module:
    return ConditionedGenerator(role.z_dim + (role.cond_dim or p.text_dim), info.shape, p.ngf)


def build_critic(p: CaptionsParams, info: DataInfo, role) -> nn.Module:
    return MatchingCritic(info.shape, p.ndf, role.cond_dim or p.text_dim)


class CaptionsFamily:
    """Text to image (Reed 2016): GRU caption encoder, conditioned DCGAN-like G and D."""

    Params = CaptionsParams
    data_kinds = ("image",)
    builders = {TextEncoderRole: build_encoder, ConditionedGeneratorRole: build_generator,
                ConditionedCriticRole: build_critic}

    @staticmethod
    def check(p: CaptionsParams, info: DataInfo) -> None:
        check_image(info)
