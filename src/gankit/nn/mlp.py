"""Multilayer perceptrons for toy problems and the MLP GAN of Goodfellow et al. 2014."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from gankit.data.base import DataInfo
from gankit.core.roles import CriticRole, GeneratorRole

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh,
               "elu": nn.ELU}


class MLPParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
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


class MLPFamily:
    """Fully connected G and D (toy problems; Goodfellow 2014 MNIST MLP with tanh output)."""

    Params = MLPParams
    data_kinds = ("toy1d", "toy2d", "image")
    builders = {GeneratorRole: build_generator, CriticRole: build_critic}
