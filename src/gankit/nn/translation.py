"""Image-to-image networks of CycleGAN and pix2pix, parameterised by image size.

* ``ResnetGenerator`` (Johnson et al. 2016, as used by CycleGAN, Zhu et al. 2017): c7s1-ngf,
  ``n_down`` stride-2 downsamplings, ``n_blocks`` residual blocks, as many upsamplings, c7s1 to
  the output channels and tanh. Reflection padding, instance norm without affine parameters.
* ``UnetGenerator`` (pix2pix, Isola et al. 2017): encoder C64-C128-C256-C512-C512-...,
  decoder with skip connections (each decoder layer reads its own output concatenated with the
  mirror encoder layer's), dropout 0.5 in the decoder layers nearest the bottleneck.
* ``PatchDiscriminator`` (pix2pix / CycleGAN "70x70 PatchGAN"): C64-C128-C256-C512 with 4x4
  kernels, LeakyReLU(0.2); outputs a map of logits, one per overlapping patch.

Any size works: the generators pad their input (reflection) up to a multiple of their total
stride and crop the output back, so 28 px MNIST runs through the same class as 256 px photos.
The PatchGAN's depth follows the image size (``d_layers: null``), so that a patch covers about
the same fraction of the image as 70x70 does of 256x256: 3 stride-2 layers at 256 px (70 px
patches), 2 at 128 (34 px), 1 at 64 px and below (16 px).

Roles. A translator or critic role may say which data domains it reads and writes
(``reads``/``writes`` of ``TranslatorRole`` and ``CriticRole`` in ``gankit.core.roles``): a pix2pix
discriminator reads the input and output images concatenated on channels. The channels of a
domain come from the data's ``DataInfo`` (``shape`` for "a", ``shape_b`` for "b").
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.core.roles import CriticRole, TranslatorRole
from gankit.params import Params

Norm = Literal["instance", "batch", "none"]


class TranslationParams(Params):
    name: Literal["translation"] = "translation"
    generator: Literal["resnet", "unet"] = "resnet"
    ngf: int = Field(64, gt=0, le=1024)              # G width of the first layer
    ndf: int = Field(64, gt=0, le=1024)              # D width of the first layer
    n_blocks: int = Field(9, ge=0, le=64)            # resnet: 9 at 256 px, 6 at 128 px
    n_down: int = Field(2, ge=0, le=6)               # resnet: stride-2 down/upsamplings
    unet_depth: int | None = Field(None, ge=1, le=12)  # null: down to 1-2 px (8 at 256 px)
    d_layers: int | None = Field(None, ge=1, le=8)   # null: by image size (3 at 256 px)
    norm: Norm = "instance"
    dropout: float = Field(0.0, ge=0, lt=1)          # resnet blocks (CycleGAN: none)
    unet_dropout: float = Field(0.5, ge=0, lt=1)     # pix2pix: 0.5 in the inner decoder layers


# ---------------------------------------------------------------- sizes (pure functions)
def patch_receptive_field(n_layers: int) -> int:
    """Side of the input patch seen by one output of a PatchGAN with ``n_layers`` stride-2
    convolutions (then two stride-1 ones, all 4x4): 16, 34, 70, 142, ... = 9 * 2**n - 2."""
    rf = 1
    for stride in [1, 1] + [2] * n_layers:   # walk back from the output
        rf = (rf - 1) * stride + 4
    return rf


def auto_d_layers(size: int) -> int:
    """PatchGAN depth whose patch is about 70/256 of the image side (paper: 70 px at 256)."""
    target = size * 70 / 256
    return max(1, round(math.log2((target + 2) / 9)))


def auto_unet_depth(size: int) -> int:
    """U-Net levels that bring the image down to 1-2 px (8 at 256 px, as in pix2pix)."""
    return max(1, int(math.log2(size)))


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflection-pad H and W (bottom/right) to multiples of ``multiple``; returns the
    original (H, W) for cropping back."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


# ---------------------------------------------------------------- building blocks
def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "instance":      # CycleGAN / pix2pix: no affine parameters, no running stats
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The reference implementation's ``init_type='normal'``: conv weights ~ N(0, 0.02),
    batch-norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


class ResnetBlock(nn.Module):
    """x + conv-norm-relu-conv-norm(x), reflection padded (Johnson et al. 2016)."""

    def __init__(self, channels: int, norm: str, dropout: float):
        super().__init__()
        bias = norm == "instance"      # batch norm has its own shift
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias),
                  norm_layer(norm, channels), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias),
                   norm_layer(norm, channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """images (B, in_ch, H, W) in [-1, 1] -> (B, out_ch, H, W) in [-1, 1]."""

    def __init__(self, in_ch: int, out_ch: int, ngf: int = 64, n_blocks: int = 9,
                 n_down: int = 2, norm: str = "instance", dropout: float = 0.0):
        super().__init__()
        bias = norm == "instance"
        self.multiple = 2 ** n_down
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ngf, 7, bias=bias),
                                   norm_layer(norm, ngf), nn.ReLU(True)]   # (B, ngf, H, W)
        width = ngf
        for _ in range(n_down):                                  # (B, 2w, H/2, W/2)
            layers += [nn.Conv2d(width, width * 2, 3, 2, 1, bias=bias),
                       norm_layer(norm, width * 2), nn.ReLU(True)]
            width *= 2
        layers += [ResnetBlock(width, norm, dropout) for _ in range(n_blocks)]
        for _ in range(n_down):                                  # (B, w/2, 2H, 2W)
            layers += [nn.ConvTranspose2d(width, width // 2, 3, 2, 1, output_padding=1,
                                          bias=bias),
                       norm_layer(norm, width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x, (h, w) = pad_to_multiple(x, self.multiple)
        return self.model(x)[..., :h, :w]


class UnetGenerator(nn.Module):
    """images (B, in_ch, H, W) -> (B, out_ch, H, W); ``depth`` stride-2 levels.

    Encoder level i outputs ``min(ngf * 2**i, 8 * ngf)`` channels at 1/2**(i+1) of the side;
    decoder level i reads [encoder_i, decoder_{i+1}] and writes encoder_{i-1}'s channels.
    """

    def __init__(self, in_ch: int, out_ch: int, depth: int, ngf: int = 64,
                 norm: str = "batch", dropout: float = 0.5):
        super().__init__()
        self.multiple = 2 ** depth
        chans = [min(ngf * 2 ** i, ngf * 8) for i in range(depth)]
        bias = norm == "instance"
        self.down = nn.ModuleList()
        for i in range(depth):
            if i == 0:                       # outermost: no activation before, no norm
                block = [nn.Conv2d(in_ch, chans[0], 4, 2, 1, bias=bias)]
            else:                            # innermost has no norm: its map may be 1x1
                block = [nn.LeakyReLU(0.2, True), nn.Conv2d(chans[i - 1], chans[i], 4, 2, 1,
                                                           bias=bias)]
                if i < depth - 1:
                    block.append(norm_layer(norm, chans[i]))
            self.down.append(nn.Sequential(*block))
        # dropout on the (up to) three decoder levels just outside the bottleneck, as pix2pix
        drop_levels = set(range(max(1, depth - 4), depth - 1))
        self.up = nn.ModuleList()
        for i in range(depth):
            reads = chans[i] if i == depth - 1 else 2 * chans[i]
            if i == 0:
                block = [nn.ReLU(True), nn.ConvTranspose2d(reads, out_ch, 4, 2, 1), nn.Tanh()]
            else:
                block = [nn.ReLU(True), nn.ConvTranspose2d(reads, chans[i - 1], 4, 2, 1,
                                                           bias=bias),
                         norm_layer(norm, chans[i - 1])]
                if i in drop_levels and dropout:
                    block.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*block))
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x, (h, w) = pad_to_multiple(x, self.multiple)
        skips = []
        for down in self.down:
            x = down(x)                                   # (B, chans[i], S/2**(i+1), ...)
            skips.append(x)
        x = self.up[-1](skips[-1])                        # innermost
        for i in range(len(self.up) - 2, -1, -1):
            x = self.up[i](torch.cat([skips[i], x], 1))   # skip connection
        return x[..., :h, :w]


class PatchDiscriminator(nn.Module):
    """images (B, in_ch, H, W) -> logits (B, 1, h, w), one per overlapping patch."""

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, n_layers):                             # (B, w', H/2**(n+1), ...)
            nxt = ndf * min(2 ** n, 8)
            layers += [nn.Conv2d(width, nxt, 4, 2, 1, bias=bias), norm_layer(norm, nxt),
                       nn.LeakyReLU(0.2, True)]
            width = nxt
        nxt = ndf * min(2 ** n_layers, 8)
        layers += [nn.Conv2d(width, nxt, 4, 1, 1, bias=bias), norm_layer(norm, nxt),
                   nn.LeakyReLU(0.2, True),                     # (B, nxt, h + 1, w + 1)
                   nn.Conv2d(nxt, 1, 4, 1, 1)]                  # (B, 1, h, w)
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


# ---------------------------------------------------------------- the family
def domain_shape(info: DataInfo, domain: str) -> tuple[int, ...]:
    if domain == "b":
        return tuple(getattr(info, "shape_b", ()) or info.shape)
    return tuple(info.shape)


def check_image_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 3 or shape[1] < 8 or shape[2] < 8:
        raise ConfigError(f"the translation network needs images (C, H, W) of at least 8x8 "
                          f"pixels, not {tuple(shape)}")


def build_translator(p: TranslationParams, info: DataInfo, role: TranslatorRole) -> nn.Module:
    in_ch = sum(domain_shape(info, d)[0] for d in role.reads)
    out_ch = domain_shape(info, role.writes)[0]
    if p.generator == "resnet":
        net = ResnetGenerator(in_ch, out_ch, p.ngf, p.n_blocks, p.n_down, p.norm, p.dropout)
    else:
        side = min(info.shape[1:])
        net = UnetGenerator(in_ch, out_ch, p.unet_depth or auto_unet_depth(side), p.ngf, p.norm,
                            p.unet_dropout)
    net.reads = role.reads           # so a sampler knows which images to feed it
    return net


def build_critic(p: TranslationParams, info: DataInfo, role: CriticRole) -> nn.Module:
    if role.out_dim != 1 or role.num_classes:
        raise ConfigError("the translation network's PatchGAN critic has one output per patch "
                          "and no class input")
    in_ch = sum(domain_shape(info, d)[0] for d in role.reads or ("a",))
    # per-sample normalisation when the objective needs it (gradient penalty)
    norm = "instance" if (p.norm == "batch" and role.per_sample) else p.norm
    return PatchDiscriminator(in_ch, p.ndf, p.d_layers or auto_d_layers(min(info.shape[1:])), norm)


class TranslationFamily:
    """Image-to-image nets: ResNet or U-Net translators, PatchGAN critics (any image size)."""

    Params = TranslationParams
    data_kinds = ("paired", "unpaired")
    builders = {TranslatorRole: build_translator, CriticRole: build_critic}

    @staticmethod
    def check(p: TranslationParams, info: DataInfo) -> None:
        check_image_shape(info.shape)

    @staticmethod
    def min_batch(p: TranslationParams, info: DataInfo, role) -> int:
        """2 when ``norm: batch`` normalises a 1x1 map: the ResNet translator's innermost map
        (ceil(side / 2^n_down)) or a non-per-sample PatchGAN's last normalised map
        (side / 2^d_layers - 1); the U-Net's innermost level has no norm. Else 1."""
        if p.norm != "batch":
            return 1
        side = min(info.shape[1:])
        if isinstance(role, TranslatorRole):
            smallest = -(-side // 2 ** p.n_down) if p.generator == "resnet" else 2
        elif getattr(role, "per_sample", False):
            return 1
        else:
            smallest = (side >> (p.d_layers or auto_d_layers(side))) - 1
        return 2 if smallest <= 1 else 1
