"""The 1-D convolutional residual networks of the character-level WGAN-GP language model.

Gulrajani et al. 2017 ("Improved Training of Wasserstein GANs", appendix: the language model;
their code ``gan_language.py``): G maps z (128-d) by a linear layer to a (dim=512) x seq_len
map, then 5 residual blocks of two width-5 1-D convolutions (ReLU before each, the residual
branch scaled by 0.3), a 1x1 convolution to the vocabulary and a softmax over it. The critic
reads one-hot text or G's softmax directly: a 1x1 convolution to dim channels, 5 residual
blocks, a linear layer to one value. No normalisation anywhere, so the critic is per sample
(a gradient penalty needs that). Samples are (B, seq_len, V), characters along dim 1.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.core.roles import (CriticRole, GeneratorRole, SequenceCriticRole,
                               SequenceGeneratorRole)
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.params import Params


class TextConvParams(Params):
    name: Literal["textconv"] = "textconv"
    z_dim: int = Field(128, gt=0, le=4096)
    z_dist: Literal["normal", "uniform"] = "normal"
    dim: int = Field(512, gt=0, le=4096)          # channels of every residual block
    blocks: int = Field(5, ge=0, le=64)
    kernel: int = Field(5, ge=1, le=63)           # odd widths keep the length
    residual: float = Field(0.3, gt=0.0, le=1.0)  # scale of each residual branch


class ResBlock1d(nn.Module):
    """x + r * conv(relu(conv(relu(x)))), convolutions of width k keeping the length."""

    def __init__(self, dim: int, kernel: int, residual: float):
        super().__init__()
        self.residual = residual
        self.branch = nn.Sequential(nn.ReLU(), nn.Conv1d(dim, dim, kernel, padding=kernel // 2),
                                    nn.ReLU(), nn.Conv1d(dim, dim, kernel, padding=kernel // 2))

    def forward(self, x: Tensor) -> Tensor:           # (B, dim, L) -> (B, dim, L)
        return x + self.residual * self.branch(x)


def blocks(p: TextConvParams) -> nn.Sequential:
    return nn.Sequential(*[ResBlock1d(p.dim, p.kernel, p.residual) for _ in range(p.blocks)])


class TextGenerator(nn.Module):
    """z (B, z_dim) -> a distribution over the vocabulary per position (B, L, V) (softmax)."""

    def __init__(self, p: TextConvParams, z_dim: int, length: int, vocab: int):
        super().__init__()
        self.dim, self.length = p.dim, length
        self.fc = nn.Linear(z_dim, p.dim * length)
        self.blocks = blocks(p)
        self.out = nn.Conv1d(p.dim, vocab, 1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(z.shape[0], self.dim, self.length)        # (B, dim, L)
        logits = self.out(self.blocks(h)).transpose(1, 2)             # (B, L, V)
        return torch.softmax(logits, dim=-1)


class TextCritic(nn.Module):
    """One-hot or soft characters (B, L, V) -> critic values (B,); with ``features=True``
    also the last hidden map flattened (B, dim * L) (feature matching)."""

    def __init__(self, p: TextConvParams, length: int, vocab: int):
        super().__init__()
        self.inp = nn.Conv1d(vocab, p.dim, 1)
        self.blocks = blocks(p)
        self.fc = nn.Linear(p.dim * length, 1)

    def forward(self, x: Tensor, features: bool = False):
        h = self.blocks(self.inp(x.transpose(1, 2))).flatten(1)       # (B, dim * L)
        out = self.fc(h).squeeze(1)                                   # (B,)
        return (out, h) if features else out


def _sizes(info: DataInfo) -> tuple[int, int]:
    """(length, vocab) of text data (shape (L, V))."""
    if info.kind != "text" or len(info.shape) != 2:
        raise ConfigError(f"the textconv network takes text data, not {info.kind} "
                          f"{tuple(info.shape)}")
    return info.shape[0], info.shape[1]


def build_generator(p: TextConvParams, info: DataInfo, role) -> nn.Module:
    """An unconditional G; ConfigError for labels or codes (it takes z only)."""
    if getattr(role, "num_classes", 0) or getattr(role, "code_dim", 0):
        raise ConfigError("the textconv generator takes noise only (no labels or codes)")
    length, vocab = _sizes(info)
    return TextGenerator(p, role.z_dim or p.z_dim, length, vocab)


def build_critic(p: TextConvParams, info: DataInfo, role) -> nn.Module:
    """A one-value critic; ConfigError for auxiliary heads, labels or other inputs."""
    if (getattr(role, "out_dim", 1) != 1 or getattr(role, "num_classes", 0)
            or getattr(role, "reads", ())):
        raise ConfigError("the textconv critic gives one value per sample (no auxiliary "
                          "heads, labels or paired inputs)")
    return TextCritic(p, *_sizes(info))


class TextConvFamily:
    """1-D conv residual G and critic of the character-level WGAN-GP (Gulrajani et al. 2017)."""

    Params = TextConvParams
    data_kinds = ("text",)
    builders = {GeneratorRole: build_generator, CriticRole: build_critic,
                SequenceGeneratorRole: build_generator, SequenceCriticRole: build_critic}

