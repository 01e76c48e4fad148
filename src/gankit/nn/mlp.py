"""Multilayer perceptrons for toy problems and the MLP GAN of Goodfellow et al. 2014."""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.core.roles import (AutoencoderRole, CriticRole, DecoderRole, EncoderRole,
                               GeneratorRole)
from gankit.nn.layers import (ImprovedTechniqueParams, ReferenceBatch, VirtualBatchNorm,
                              minibatch_layer)

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh,
               "elu": nn.ELU}


class MLPParams(ImprovedTechniqueParams):
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
    # G's norm after each hidden layer: none, batch norm, or virtual batch norm (Salimans
    # et al. 2016, section 3.4; a fixed reference batch of vbn_reference noise vectors)
    g_norm: Literal["none", "batch", "virtual"] = "none"
    # weights of every linear layer: torch's default (uniform, std 1/sqrt(3 fan_in)) or
    # orthogonal with gain init_gain and zero biases (Saxe et al. 2014; the unrolled-GAN
    # notebook of Metz et al. 2017 uses gain 1.4; init_gain is unused with "default")
    init: Literal["default", "orthogonal"] = "default"
    init_gain: float = Field(1.4, gt=0, le=10)


def mlp(sizes: list[int], act: str, final: nn.Module | None = None,
        norm: Callable[[int], nn.Module] | None = None) -> nn.Sequential:
    """Linear layers of ``sizes``, each hidden one followed by ``norm(width)`` (if given) and
    the activation ``act``; then ``final`` (if given). A linear layer before a norm has no
    bias: the norm's centring cancels it (its gradient is rounding noise, which Adam would
    turn into full-size steps)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < len(sizes) - 2
        layers.append(nn.Linear(a, b, bias=not (hidden and norm is not None)))
        if hidden:
            if norm is not None:
                layers.append(norm(b))
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
    """z (B, in_dim) [+ labels (B,)] -> samples (B, *out_shape).

    ``norm``: "batch" or "virtual" norm after each hidden layer (none by default); with
    "virtual" the layers run on a fixed reference batch of ``reference_rows`` inputs before
    the batch (``gankit.nn.layers.ReferenceBatch``), so a sample depends on its own z only."""

    def __init__(self, in_dim: int, out_shape: tuple[int, ...], hidden: int, depth: int,
                 act: str, out_act: str, num_classes: int = 0, norm: str = "none",
                 reference_rows: int = 64):
        super().__init__()
        self.out_shape, self.num_classes = out_shape, num_classes
        final = nn.Tanh() if out_act == "tanh" else None
        norms = {"none": None, "batch": nn.BatchNorm1d,
                 "virtual": lambda width: VirtualBatchNorm(width, reference_rows)}
        sizes = [in_dim + num_classes] + [hidden] * depth + [math.prod(out_shape)]
        self.net = mlp(sizes, act, final, norms[norm])
        if norm == "virtual":
            self.net = ReferenceBatch(self.net, reference_rows, (sizes[0],))

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        out = self.net(with_label(z, y, self.num_classes))
        return out.view(z.shape[0], *self.out_shape)                 # (B, *out_shape)


class MLPCritic(nn.Module):
    """x (B, *shape) [+ labels (B,)] -> logits / critic values (B,) or (B, out_dim), never
    probabilities; with ``features=True`` also the last hidden layer's activations
    (B, hidden). ``minibatch``: a minibatch-discrimination layer between those features and
    the output layer (``gankit.nn.layers``)."""

    def __init__(self, in_shape: tuple[int, ...], hidden: int, depth: int, act: str,
                 out_dim: int, num_classes: int = 0, minibatch: nn.Module | None = None):
        super().__init__()
        self.out_dim, self.num_classes = out_dim, num_classes
        self.net = mlp([math.prod(in_shape) + num_classes] + [hidden] * depth + [out_dim], act)
        self.head_layers = 1                      # the output layer, after the features
        if minibatch is not None:                 # o(x) concatenated to the features
            self.net = nn.Sequential(*self.net[:-1], minibatch,
                                     nn.Linear(hidden + minibatch.kernels, out_dim))
            self.head_layers = 2

    def forward(self, x: Tensor, y: Tensor | None = None,
                features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        h = self.net[:-self.head_layers](with_label(x.flatten(1), y, self.num_classes))
        out = self.net[-self.head_layers:](h)                           # (B, out_dim)
        out = out.squeeze(1) if self.out_dim == 1 else out
        return (out, h) if features else out


def initialised(net: nn.Module, p: MLPParams) -> nn.Module:
    """``net`` with its linear layers initialised as ``p.init`` says (in place): nothing for
    "default", orthogonal weights of gain ``p.init_gain`` and zero biases for "orthogonal"."""
    if p.init == "orthogonal":
        for m in net.modules():
            if isinstance(m, nn.Linear):
                nn.init.orthogonal_(m.weight, gain=p.init_gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return net


def build_generator(p: MLPParams, info: DataInfo, role: GeneratorRole) -> nn.Module:
    return initialised(MLPGenerator(role.in_dim, info.shape, p.g_hidden, p.g_depth,
                                    p.activation, p.out_activation, role.num_classes, p.g_norm,
                                    p.vbn_reference), p)


def build_critic(p: MLPParams, info: DataInfo, role: CriticRole) -> nn.Module:
    """No batch norm: per sample, unless ``model.minibatch_kernels`` adds minibatch
    discrimination (refused for per-sample roles)."""
    return initialised(MLPCritic(info.shape, p.d_hidden, p.d_depth, p.d_activation,
                                 role.out_dim, role.num_classes,
                                 minibatch_layer(p, p.d_hidden, role)), p)


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
    if p.minibatch_kernels:
        raise ConfigError("model.minibatch_kernels: the mlp autoencoder (BEGAN's D) has no "
                          "minibatch discrimination; set model.minibatch_kernels=0")
    return initialised(MLPAutoencoder(info.shape, p.d_hidden, p.d_depth, p.d_activation,
                                      role.code_dim), p)


def build_encoder(p: MLPParams, info: DataInfo, role: EncoderRole) -> nn.Module:
    """x (B, *shape) -> (B, role.out_dim) through D's layers (``d_hidden``, ``d_depth``,
    ``d_activation``): a VAE's q(z|x) with ``d_hidden=200, d_depth=2, d_activation=tanh`` is
    Burda et al. 2016's 784-200-200-50 encoder (their Table 1 MNIST models)."""
    return initialised(MLPCritic(info.shape, p.d_hidden, p.d_depth, p.d_activation,
                                 role.out_dim), p)


def build_decoder(p: MLPParams, info: DataInfo, role: DecoderRole) -> nn.Module:
    """z (B, z_dim) -> (B, *shape) unsquashed (logits or means) through G's layers
    (``g_hidden``, ``g_depth``, ``activation``; ``out_activation`` does not apply)."""
    return initialised(MLPGenerator(role.z_dim, info.shape, p.g_hidden, p.g_depth,
                                    p.activation, "none"), p)


class MLPFamily:
    """Fully connected networks: G and D, BEGAN's autoencoder D, a VAE's encoder and decoder.

    For toy problems and Goodfellow 2014's MNIST MLP (tanh output); the VAE's as in Burda et
    al. 2016."""

    Params = MLPParams
    data_kinds = ("toy1d", "toy2d", "image")
    builders = {GeneratorRole: build_generator, CriticRole: build_critic,
                AutoencoderRole: build_autoencoder, EncoderRole: build_encoder,
                DecoderRole: build_decoder}
