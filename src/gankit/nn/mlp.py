"""Multilayer perceptrons for toy problems and the MLP GAN of Goodfellow et al. 2014."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.core.roles import (AutoencoderRole, CriticRole, DecoderRole, EncoderRole,
                               GeneratorRole)
from gankit.params import Params

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh,
               "elu": nn.ELU}


class MLPParams(Params):
    name: Literal["mlp"] = "mlp"
    z_dim: int = Field(2, gt=0, le=4096)
    z_dist: Literal["normal", "uniform"] = "normal"
    g_hidden: int = Field(128, gt=0, le=8192)
    d_hidden: int = Field(128, gt=0, le=8192)
    g_depth: int = Field(3, ge=1, le=16)
    d_depth: int = Field(3, ge=1, le=16)
    activation: Literal["relu", "leaky_relu", "tanh", "elu"] = "relu"
    d_activation: Literal["relu", "leaky_relu", "tanh", "elu"] = "leaky_relu"
    out_activation: Literal["none", "tanh"] = "none"   # tanh for images in [-1, 1]


def mlp(sizes: list[int], act: str, final: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[act]())
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


def with_label(h: Tensor, y: Tensor | None, num_classes: int) -> Tensor:
    """Append the one-hot label (conditional GAN, Mirza & Osindero 2014) when conditioned."""
    if not num_classes:
        return h
    return torch.cat([h, F.one_hot(y, num_classes).to(h.dtype)], 1)   # (B, D + K)


class MLPGenerator(nn.Module):
    def __init__(self, in_dim: int, out_shape: tuple[int, ...], hidden: int, depth: int,
                 act: str, out_act: str, num_classes: int = 0):
        super().__init__()
        self.out_shape, self.num_classes = out_shape, num_classes
        final = nn.Tanh() if out_act == "tanh" else None
        self.net = mlp([in_dim + num_classes] + [hidden] * depth + [math.prod(out_shape)], act,
                       final)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        out = self.net(with_label(z, y, self.num_classes))
        return out.view(z.shape[0], *self.out_shape)                 # (B, *out_shape)


class MLPCritic(nn.Module):
    """Outputs logits / critic values, never probabilities."""

    def __init__(self, in_shape: tuple[int, ...], hidden: int, depth: int, act: str,
                 out_dim: int, num_classes: int = 0):
        super().__init__()
        self.out_dim, self.num_classes = out_dim, num_classes
        self.net = mlp([math.prod(in_shape) + num_classes] + [hidden] * depth + [out_dim], act)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        out = self.net(with_label(x.flatten(1), y, self.num_classes))   # (B, out_dim)
        return out.squeeze(1) if self.out_dim == 1 else out


def build_generator(p: MLPParams, info: DataInfo, role: GeneratorRole) -> nn.Module:
    return MLPGenerator(role.in_dim, info.shape, p.g_hidden, p.g_depth, p.activation,
                        p.out_activation, role.num_classes)


def build_critic(p: MLPParams, info: DataInfo, role: CriticRole) -> nn.Module:
    return MLPCritic(info.shape, p.d_hidden, p.d_depth, p.d_activation, role.out_dim,
                     role.num_classes)     # no batch norm: per sample whatever the role asks


class MLPAutoencoder(nn.Module):
    """BEGAN's discriminator for vector data (Berthelot et al. 2017, with MLPs for the convs):
    x (B, *shape) -> its reconstruction (B, *shape) through a code (B, code_dim).

    Encoder and decoder are ``depth`` hidden layers of ``hidden`` units each (``act``); the
    code and the output are linear. ``encode``: (B, *shape) -> (B, code_dim); ``decode``:
    the inverse."""

    def __init__(self, shape: tuple[int, ...], hidden: int, depth: int, act: str,
                 code_dim: int):
        super().__init__()
        self.shape, size = shape, math.prod(shape)
        self.encoder = mlp([size] + [hidden] * depth + [code_dim], act)
        self.decoder = mlp([code_dim] + [hidden] * depth + [size], act)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x.flatten(1))                            # (B, code_dim)

    def decode(self, h: Tensor) -> Tensor:
        return self.decoder(h).view(h.shape[0], *self.shape)         # (B, *shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def build_autoencoder(p: MLPParams, info: DataInfo, role: AutoencoderRole) -> nn.Module:
    """D's width, depth and activation (``d_hidden``, ``d_depth``, ``d_activation``) on each
    side of a ``role.code_dim`` code. Raises ConfigError when the role asks for no code."""
    if role.code_dim <= 0:
        raise ConfigError("the mlp autoencoder needs a code size (code_dim > 0)")
    return MLPAutoencoder(info.shape, p.d_hidden, p.d_depth, p.d_activation, role.code_dim)


def build_encoder(p: MLPParams, info: DataInfo, role: EncoderRole) -> nn.Module:
    """x (B, *shape) -> (B, role.out_dim) through D's layers (``d_hidden``, ``d_depth``,
    ``d_activation``): a VAE's q(z|x) with ``d_hidden=200, d_depth=2, d_activation=tanh`` is
    Burda et al. 2016's 784-200-200-50 encoder (their Table 1 MNIST models)."""
    return MLPCritic(info.shape, p.d_hidden, p.d_depth, p.d_activation, role.out_dim)


def build_decoder(p: MLPParams, info: DataInfo, role: DecoderRole) -> nn.Module:
    """z (B, z_dim) -> (B, *shape) unsquashed (logits or means) through G's layers
    (``g_hidden``, ``g_depth``, ``activation``; ``out_activation`` does not apply)."""
    return MLPGenerator(role.z_dim, info.shape, p.g_hidden, p.g_depth, p.activation, "none")


class MLPFamily:
    """Fully connected G and D (toy problems; Goodfellow 2014 MNIST MLP with tanh output);
    D as an autoencoder for BEGAN; a VAE's encoder and decoder (Burda et al. 2016)."""

    Params = MLPParams
    data_kinds = ("toy1d", "toy2d", "image")
    builders = {GeneratorRole: build_generator, CriticRole: build_critic,
                AutoencoderRole: build_autoencoder, EncoderRole: build_encoder,
                DecoderRole: build_decoder}
