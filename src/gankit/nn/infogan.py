"""The MNIST networks of InfoGAN (Chen et al. 2016, appendix C.1), one class per role,
parameterised by resolution (28 or 32 px: two stride-2 stages, 7 -> 14 -> 28 / 8 -> 16 -> 32).

    G: FC 1024 - BN - ReLU, FC 128 x 7 x 7 - BN - ReLU, upconv 64 4x4 s2 - BN - ReLU,
       upconv C 4x4 s2 (tanh here: gankit's images live in [-1, 1]; the paper used a sigmoid)
    D: conv 64 4x4 s2 - LReLU, conv 128 4x4 s2 - BN - LReLU, FC 1024 - BN - LReLU, FC 1
    Q: FC 128 - BN - LReLU - FC (codes), on D's 1024-d feature

Unlike DCGAN, both nets have a wide fully connected layer next to the latent: G can mix the
one-hot code into every 7x7 position before any convolution, and Q reads a global feature.

Roles (see ``gankit.core.roles``):
  * ``code_dim``: G takes ``z_dim + code_dim`` inputs (InfoGAN's codes concatenated onto z).
  * ``num_classes``: G gets the one-hot label concatenated with its input; D adds a
    projection term <e_y, phi(x)> with phi(x) its 1024-d feature (Miyato & Koyama 2018).
  * ``out_dim > 1``: D returns ``(B, out_dim)``: column 0 is the adversarial logit, columns
    1: the auxiliary head (Q network / AC-GAN classes).
  * ``per_sample=True``: D uses per-sample layer norm instead (gradient penalties).
  * ``features=True``: ``D(x, features=True)`` also returns its 1024-d feature (feature
    matching, Salimans et al. 2016).
Weights ~ N(0, 0.02), norm scales ~ N(1, 0.02); D outputs logits.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.nn.dcgan import critic_outputs, init_weights
from gankit.core.roles import CriticRole, GeneratorRole
from gankit.params import Params

SIZES = (28, 32)          # sides with two stride-2 stages from a side // 4 map


class InfoGANNetParams(Params):
    name: Literal["infogan"] = "infogan"
    z_dim: int = Field(62, gt=0, le=4096)           # the paper's 62 noise variables
    z_dist: Literal["normal", "uniform"] = "uniform"   # U[-1, 1] as in the authors' code
    ngf: int = Field(64, gt=0, le=1024)             # G's 14x14 width (the 7x7 map has 2 ngf)
    ndf: int = Field(64, gt=0, le=1024)             # D's first conv width (then 2 ndf)
    g_hidden: int = Field(1024, gt=0, le=8192)      # G's first FC layer
    d_hidden: int = Field(1024, gt=0, le=8192)      # D's FC feature (Q reads it)
    q_hidden: int = Field(128, ge=0, le=4096)       # Q's hidden layer (0: linear head)
    leak: float = Field(0.1, ge=0, lt=1)            # LeakyReLU slope in D and Q


def check_shape(shape: tuple[int, ...]) -> int:
    """The base side (side // 4) for an image shape (C, H, W); ConfigError otherwise."""
    if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] != shape[2] \
            or shape[1] not in SIZES:
        raise ConfigError(f"the infogan network supports 1- or 3-channel images of 28x28 or "
                          f"32x32, not {tuple(shape)}; set data.size to 28 or 32")
    return shape[1] // 4


def fc_block(n_in: int, n_out: int, norm: bool, act: nn.Module) -> list[nn.Module]:
    """Linear - BatchNorm1d / LayerNorm - activation (no bias before a norm)."""
    return [nn.Linear(n_in, n_out, bias=False),
            nn.BatchNorm1d(n_out) if norm else nn.LayerNorm(n_out), act]


class InfoGANGenerator(nn.Module):
    """z (B, in_dim) [+ labels (B,)] -> images (B, C, R, R) in [-1, 1]."""

    def __init__(self, in_dim: int, shape: tuple[int, ...], p: InfoGANNetParams,
                 num_classes: int = 0):
        super().__init__()
        base = check_shape(shape)
        self.num_classes, self.base, self.width = num_classes, base, 2 * p.ngf
        self.fc = nn.Sequential(
            *fc_block(in_dim + num_classes, p.g_hidden, True, nn.ReLU(True)),  # (B, g_hidden)
            *fc_block(p.g_hidden, self.width * base * base, True, nn.ReLU(True)))
        self.conv = nn.Sequential(                                   # (B, 2 ngf, R/4, R/4)
            nn.ConvTranspose2d(self.width, p.ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(p.ngf), nn.ReLU(True),                    # (B, ngf, R/2, R/2)
            nn.ConvTranspose2d(p.ngf, shape[0], 4, 2, 1), nn.Tanh())  # (B, C, R, R)
        init_weights(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1)
        h = self.fc(z).view(-1, self.width, self.base, self.base)   # (B, 2 ngf, R/4, R/4)
        return self.conv(h)


class InfoGANDiscriminator(nn.Module):
    """images (B, C, R, R) [+ labels (B,)] -> logits (B,) or (B, out_dim); with
    ``features=True`` also the FC feature (B, d_hidden)."""

    def __init__(self, shape: tuple[int, ...], p: InfoGANNetParams, out_dim: int = 1,
                 num_classes: int = 0, batchnorm: bool = True):
        super().__init__()
        base = check_shape(shape)
        self.out_dim, self.num_classes = out_dim, num_classes
        lrelu = lambda: nn.LeakyReLU(p.leak, True)               # noqa: E731
        conv_norm = nn.BatchNorm2d(2 * p.ndf) if batchnorm else nn.GroupNorm(1, 2 * p.ndf)
        self.trunk = nn.Sequential(
            nn.Conv2d(shape[0], p.ndf, 4, 2, 1), lrelu(),            # (B, ndf, R/2, R/2)
            nn.Conv2d(p.ndf, 2 * p.ndf, 4, 2, 1, bias=False),
            conv_norm, lrelu(),                                      # (B, 2 ndf, R/4, R/4)
            nn.Flatten(),
            *fc_block(2 * p.ndf * base * base, p.d_hidden, batchnorm, lrelu()))  # (B, d_hidden)
        self.head = nn.Linear(p.d_hidden, 1)                         # (B, 1)
        self.embed = nn.Embedding(num_classes, p.d_hidden) if num_classes else None
        self.aux = self._aux(p, out_dim - 1, batchnorm, lrelu) if out_dim > 1 else None
        init_weights(self)

    @staticmethod
    def _aux(p: InfoGANNetParams, out: int, batchnorm: bool, lrelu) -> nn.Sequential:
        """Q: FC 128 - BN - LReLU - FC(out) on D's feature (linear if q_hidden=0)."""
        if not p.q_hidden:
            return nn.Sequential(nn.Linear(p.d_hidden, out))               # (B, out)
        return nn.Sequential(*fc_block(p.d_hidden, p.q_hidden, batchnorm, lrelu()),
                             nn.Linear(p.q_hidden, out))                     # (B, out)

    def forward(self, x: Tensor, y: Tensor | None = None,
                features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        h = self.trunk(x)                                            # (B, d_hidden)
        out = critic_outputs(self.head(h).flatten(), h, self.embed, self.aux, y)
        return (out, h) if features else out


def build_generator(p: InfoGANNetParams, info: DataInfo, role: GeneratorRole) -> nn.Module:
    return InfoGANGenerator(role.in_dim, info.shape, p, role.num_classes)


def build_critic(p: InfoGANNetParams, info: DataInfo, role: CriticRole) -> nn.Module:
    return InfoGANDiscriminator(info.shape, p, role.out_dim, role.num_classes,
                                batchnorm=not role.per_sample)


class InfoGANFamily:
    """InfoGAN's MNIST nets (Chen 2016): FC+conv G and D with a Q head, 28 or 32 px."""

    Params = InfoGANNetParams
    data_kinds = ("image",)
    builders = {GeneratorRole: build_generator, CriticRole: build_critic}

    @staticmethod
    def check(p: InfoGANNetParams, info: DataInfo) -> None:
        check_shape(info.shape)

    @staticmethod
    def min_batch(p: InfoGANNetParams, info: DataInfo, role) -> int:
        """2: G's and D's fully connected layers use batch norm (one value per channel in a
        batch of one), except a per-sample critic's (layer norm)."""
        return 1 if getattr(role, "per_sample", False) else 2
