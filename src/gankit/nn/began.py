"""The BEGAN networks (Berthelot, Schumm & Metz 2017, section 3.5 and figure 1), one class per
role, parameterised by resolution.

    decoder / G: FC h -> n x b x b, then per stage [conv 3x3 n - ELU, conv 3x3 n - ELU],
                 nearest-neighbour upsampling x2 between stages, conv 3x3 C (no activation)
    encoder:     conv 3x3 n - ELU, then per stage s = 1, 2, ...: [conv 3x3 s n - ELU] x 2,
                 a stride-2 conv 3x3 (s+1) n - ELU between stages (widths grow linearly:
                 n, 2n, 3n, ...), FC -> h (no activation)
    D = decoder(encoder(x)): an autoencoder whose reconstruction error is BEGAN's energy.

The generator has the decoder's architecture with weights of its own, as in the paper. Every
convolution is 3x3, the non-linearity is ELU (Clevert et al. 2016), there is no batch norm,
so a sample's reconstruction never depends on its batch.

Resolutions. The paper works at 64x64 from an 8x8 map (3 upsamplings); here the side is
``b 2^(stages - 1)`` with b = 7 or 8: 28 (MNIST) is 7 -> 14 -> 28 and 32 is 8 -> 16 -> 32
(3 stages), 64 is the paper's 8 -> 16 -> 32 -> 64 (4 stages). The width n (``ngf``/``ndf``;
the paper's n = 64 or 128) is the CPU knob: at 28x28 with n = 16 and h = 64 the
autoencoder does 16.0 M multiply-adds per image (299k weights), G 4.9 M (65k weights).
``repeats``: convolutions per stage (the paper: "typically 2").

Roles (see ``gankit.core.roles``):
  * ``GeneratorRole``: z (B, z_dim + code_dim) [+ labels (B,), concatenated one-hot] ->
    images (B, C, R, R), not squashed (the paper's decoder has no output activation).
  * ``AutoencoderRole``: images (B, C, R, R) -> reconstructions of the same shape through a
    ``code_dim``-wide code (the paper's h); ``encode`` and ``decode`` expose both halves.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gankit.core.roles import AutoencoderRole, GeneratorRole
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.params import Params

# side -> (side of the first / last feature map, number of stages)
RESOLUTIONS = {28: (7, 3), 32: (8, 3), 64: (8, 4)}


class BEGANNetParams(Params):
    name: Literal["began"] = "began"
    z_dim: int = Field(64, gt=0, le=4096)            # the paper's N_z = h = 64
    z_dist: Literal["normal", "uniform"] = "uniform"  # z ~ U[-1, 1]^N_z (paper, section 3.5)
    ngf: int = Field(64, gt=0, le=1024)              # G's width n (every stage)
    ndf: int = Field(64, gt=0, le=1024)              # the autoencoder's n (encoder: n, 2n, ..)
    repeats: int = Field(2, ge=1, le=8)              # 3x3 convs per stage ("typically 2")


def check_resolution(shape: tuple[int, ...]) -> tuple[int, int]:
    """(base side, stages) for an image shape (C, H, W); ConfigError (one line) otherwise."""
    if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] != shape[2] \
            or shape[1] not in RESOLUTIONS:
        sizes = ", ".join(f"{s}x{s}" for s in RESOLUTIONS)
        raise ConfigError(f"the began network supports 1- or 3-channel images of {sizes}, "
                          f"not {tuple(shape)}; set data.size to one of "
                          f"{', '.join(map(str, RESOLUTIONS))}")
    return RESOLUTIONS[shape[1]]


def init_weights(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every convolution and linear layer (the
    TensorFlow defaults the reference code trains with). torch's default scale shrinks the
    signal through this many ELU layers: on MNIST the autoencoder's L(x) was 0.27 after 500
    steps with it, 0.21 with this (n = 16, Adam 1e-4, measured)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def conv_elu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    """A 3x3 convolution (same padding; stride 2 halves the side) and an ELU."""
    return [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.ELU()]


class Decoder(nn.Module):
    """h (B, in_dim) -> images (B, C, R, R): FC to an n x b x b map, stages of two 3x3
    convolutions with ELU, nearest-neighbour x2 upsampling between stages, a final 3x3
    convolution to C channels (no activation). BEGAN's generator and D's decoder."""

    def __init__(self, in_dim: int, shape: tuple[int, ...], width: int, repeats: int = 2):
        super().__init__()
        base, stages = check_resolution(shape)
        self.base, self.width = base, width
        self.fc = nn.Linear(in_dim, width * base * base)
        layers: list[nn.Module] = []
        for s in range(stages):
            for _ in range(repeats):
                layers += conv_elu(width, width)
            if s < stages - 1:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers.append(nn.Conv2d(width, shape[0], 3, 1, 1))
        self.main = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        x = self.fc(h).view(h.shape[0], self.width, self.base, self.base)   # (B, n, b, b)
        return self.main(x)                                                # (B, C, R, R)


class Encoder(nn.Module):
    """images (B, C, R, R) -> codes (B, code_dim): 3x3 convolutions with ELU, widths n, 2n,
    3n, ... growing by n at each stride-2 subsampling, then a linear map to the code."""

    def __init__(self, shape: tuple[int, ...], width: int, code_dim: int, repeats: int = 2):
        super().__init__()
        base, stages = check_resolution(shape)
        layers: list[nn.Module] = conv_elu(shape[0], width)
        for s in range(stages):
            ch = width * (s + 1)
            for _ in range(repeats):
                layers += conv_elu(ch, ch)
            if s < stages - 1:
                layers += conv_elu(ch, ch + width, stride=2)    # subsample, widen by n
        self.main = nn.Sequential(*layers)                      # (B, stages n, b, b)
        self.fc = nn.Linear(width * stages * base * base, code_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.main(x).flatten(1))                 # (B, code_dim)


class ConvAutoencoder(nn.Module):
    """BEGAN's discriminator: images (B, C, R, R) -> reconstructions (B, C, R, R) through a
    code_dim-wide code. ``encode``: (B, C, R, R) -> (B, code_dim); ``decode``: the inverse."""

    def __init__(self, shape: tuple[int, ...], width: int, code_dim: int, repeats: int = 2):
        super().__init__()
        self.encoder = Encoder(shape, width, code_dim, repeats)
        self.decoder = Decoder(code_dim, shape, width, repeats)
        init_weights(self)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, h: Tensor) -> Tensor:
        return self.decoder(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


class BEGANGenerator(nn.Module):
    """z (B, in_dim) [+ labels (B,)] -> images (B, C, R, R): the decoder architecture."""

    def __init__(self, in_dim: int, shape: tuple[int, ...], width: int, num_classes: int = 0,
                 repeats: int = 2):
        super().__init__()
        self.num_classes = num_classes
        self.decoder = Decoder(in_dim + num_classes, shape, width, repeats)
        init_weights(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1)  # (B, in + K)
        return self.decoder(z)


def build_generator(p: BEGANNetParams, info: DataInfo, role: GeneratorRole) -> nn.Module:
    return BEGANGenerator(role.in_dim, info.shape, p.ngf, role.num_classes, p.repeats)


def build_autoencoder(p: BEGANNetParams, info: DataInfo, role: AutoencoderRole) -> nn.Module:
    """Raises ConfigError when the role asks for no code (code_dim 0)."""
    if role.code_dim <= 0:
        raise ConfigError("the began autoencoder needs a code size (code_dim > 0)")
    return ConvAutoencoder(info.shape, p.ndf, role.code_dim, p.repeats)


class BEGANFamily:
    """BEGAN (Berthelot 2017): conv decoder G and conv autoencoder D, ELU, 28/32/64 px."""

    Params = BEGANNetParams
    data_kinds = ("image",)
    builders = {GeneratorRole: build_generator, AutoencoderRole: build_autoencoder}

    @staticmethod
    def check(p: BEGANNetParams, info: DataInfo) -> None:
        check_resolution(info.shape)
