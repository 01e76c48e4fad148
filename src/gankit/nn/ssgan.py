"""The permutation-invariant MNIST networks of Salimans et al. 2016 ("Improved Techniques for
Training GANs", section 5 and their ``mnist_feature_matching`` code) for semi-supervised
learning: fully connected, weight-normalised (Salimans & Kingma 2016), the critic regularised
by Gaussian noise on its input and after every hidden layer.

* G: z (B, 100) -> 500 softplus (batch norm) -> 500 softplus (batch norm) -> 784 sigmoid,
  weight norm on the output layer. The paper draws z ~ U(0, 1)^100; gankit's uniform latent is
  U(-1, 1), an affine change the first layer absorbs. The sigmoid's [0, 1] pixels are served
  as 2 sigmoid(a) - 1 in gankit's [-1, 1] image range.
* D: x (B, 784) as [0, 1] pixels + N(0, 0.3^2) -> 1000 -> 500 -> 250 -> 250 -> 250 (ReLU, each followed by
  N(0, 0.5^2) noise) -> out_dim logits (10 classes for the K+1-class critic), every layer
  weight-normalised. Noise is drawn in training mode only. ``features=True`` also returns the
  last hidden layer's activations before its noise (B, 250): what G's feature matching
  compares (the authors' ``layers[-3]``).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from gankit.core.roles import CriticRole, GeneratorRole
from gankit.data.base import DataInfo
from gankit.nn.mlp import with_label
from gankit.params import Params


Width = Annotated[int, Field(gt=0, le=8192)]


class SSGANMLPParams(Params):
    name: Literal["ssgan-mlp"] = "ssgan-mlp"
    z_dim: int = Field(100, gt=0, le=4096)
    z_dist: Literal["normal", "uniform"] = "uniform"
    g_hidden: list[Width] = Field([500, 500], min_length=1, max_length=16)
    d_hidden: list[Width] = Field([1000, 500, 250, 250, 250], min_length=1, max_length=16)
    input_noise: float = Field(0.3, ge=0, le=10)     # std of D's input noise
    hidden_noise: float = Field(0.5, ge=0, le=10)    # std after each of D's hidden layers
    weight_norm: bool = True


def linear(a: int, b: int, normed: bool, bias: bool = True) -> nn.Module:
    """A linear layer, weight-normalised w = g v / ||v|| per output unit when ``normed``."""
    layer = nn.Linear(a, b, bias=bias)
    return weight_norm(layer) if normed else layer


class GaussianNoise(nn.Module):
    """x + N(0, std^2) in training mode; the identity in eval mode (and for std 0)."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0:
            return x
        return x + self.std * torch.randn_like(x)


class SSGANGenerator(nn.Module):
    """z (B, z_dim) [+ labels (B,), one-hot appended] -> images (B, *shape) in [-1, 1]."""

    def __init__(self, z_dim: int, shape: tuple[int, ...], hidden: Sequence[int],
                 normed: bool, num_classes: int = 0):
        super().__init__()
        self.shape, self.num_classes = shape, num_classes
        layers: list[nn.Module] = []
        for a, b in zip([z_dim + num_classes, *hidden[:-1]], hidden):
            layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.Softplus()]
        self.body = nn.Sequential(*layers)
        self.out = linear(hidden[-1], math.prod(shape), normed)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.body(with_label(z, y, self.num_classes))             # (B, hidden[-1])
        return (2 * torch.sigmoid(self.out(h)) - 1).view(z.shape[0], *self.shape)


class SSGANCritic(nn.Module):
    """x (B, *shape) [+ labels (B,), one-hot appended] -> logits (B, out_dim) (or (B,) when
    out_dim is 1); with ``features=True`` also the last hidden layer (B, hidden[-1])."""

    def __init__(self, shape: tuple[int, ...], hidden: Sequence[int], out_dim: int,
                 input_noise: float, hidden_noise: float, normed: bool, num_classes: int = 0):
        super().__init__()
        self.out_dim, self.num_classes = out_dim, num_classes
        self.input_noise = GaussianNoise(input_noise)
        sizes = [math.prod(shape) + num_classes, *hidden]
        self.hidden = nn.ModuleList(linear(a, b, normed) for a, b in zip(sizes[:-1], sizes[1:]))
        self.noise = GaussianNoise(hidden_noise)
        self.out = linear(hidden[-1], out_dim, normed)

    def forward(self, x: Tensor, y: Tensor | None = None,
                features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        pixels = (x.flatten(1) + 1) / 2                # [0, 1], the scale of the paper's noise
        h = with_label(self.input_noise(pixels), y, self.num_classes)  # (B, 784 [+ K])
        for i, layer in enumerate(self.hidden):
            f = F.relu(layer(h))                                       # (B, hidden[i])
            h = self.noise(f)
        out = self.out(h)                                              # (B, out_dim)
        out = out.squeeze(1) if self.out_dim == 1 else out
        return (out, f) if features else out


def build_generator(p: SSGANMLPParams, info: DataInfo, role: GeneratorRole) -> nn.Module:
    return SSGANGenerator(role.in_dim, info.shape, p.g_hidden, p.weight_norm, role.num_classes)


def build_critic(p: SSGANMLPParams, info: DataInfo, role: CriticRole) -> nn.Module:
    return SSGANCritic(info.shape, p.d_hidden, role.out_dim, p.input_noise, p.hidden_noise,
                       p.weight_norm, role.num_classes)


class SSGANMLPFamily:
    """Salimans et al. 2016's weight-normalised MLP G and noisy D for semi-supervised MNIST.

    Fully connected, for permutation-invariant MNIST (their section 5)."""

    Params = SSGANMLPParams
    data_kinds = ("image",)
    builders = {GeneratorRole: build_generator, CriticRole: build_critic}

    @staticmethod
    def min_batch(p: SSGANMLPParams, info: DataInfo, role) -> int:
        """2 for G (its fully connected batch norm needs two values per unit); 1 for D."""
        return 2 if isinstance(role, GeneratorRole) else 1
