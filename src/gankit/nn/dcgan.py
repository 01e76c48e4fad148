"""DCGAN generator and discriminator (Radford, Metz & Chintala 2016), one class per role,
parameterised by resolution.

The architecture guidelines of the paper (section 3):
  * no pooling: strided convolutions in D, fractionally-strided (transposed) ones in G;
  * batch norm in both nets, except on G's output layer and D's input layer;
  * no fully connected hidden layers;
  * ReLU in G with tanh on the output; LeakyReLU(0.2) in D;
  * weights ~ N(0, 0.02); batch-norm scales ~ N(1, 0.02) (the PyTorch example's ``weights_init``).

Resolutions. 32 and 64 start from a 4x4 map and double it 3 or 4 times; 64 with
``z_dim=100, ngf=ndf=64`` is exactly the canonical network of the PyTorch DCGAN example
(same layers, no biases, same parameter count). 28 (MNIST) starts from a 7x7 map and doubles
twice, 7 -> 14 -> 28, the path of the InfoGAN / AC-GAN MNIST networks: it needs no crop, so
no computation is spent on pixels that are thrown away, and D mirrors it exactly
(28 -> 14 -> 7 with 4x4 stride-2 convolutions).

Roles (see ``gankit.core.roles``):
  * ``code_dim``: G takes ``z_dim + code_dim`` inputs; the objective concatenates its codes
    onto z (InfoGAN).
  * ``num_classes``: G gets the one-hot label concatenated with z (Mirza & Osindero 2014); a
    learned embedding would add nothing, since G's first layer is linear in its input. D uses
    a projection discriminator (Miyato & Koyama 2018): logit = w.phi(x) + <e_y, phi(x)>,
    with phi(x) D's last feature map, flattened.
  * ``out_dim > 1``: D returns ``(B, out_dim)``: column 0 is the adversarial logit from the
    usual final convolution, columns 1: come from an auxiliary head on the same trunk
    (AC-GAN class logits, InfoGAN's Q network).
  * ``per_sample=True``: D normalises per sample (``d_norm``: layer norm by default), as the
    gradient penalty of WGAN-GP requires.
  * ``features=True``: ``D(x, features=True)`` also returns phi(x) (feature matching).
  * ``EncoderRole`` / ``DecoderRole`` (a VAE): D's trunk (per-sample norm) and a linear
    layer to [mu, log sigma^2]; G without its tanh (logits or means).

``g_upsample=nearest``: G doubles its maps by nearest-neighbour upsampling and a 3x3
convolution instead of a transposed convolution (Odena, Dumoulin & Olah 2016, "Deconvolution
and checkerboard artifacts"). ``d_spectral_norm``: every weight of D divided by its largest
singular value, one power iteration per step (Miyato et al. 2018); batch norm is then left
out of D, as in SN-GAN's discriminators.

Improved techniques (Salimans et al. 2016, ``gankit.nn.layers``): ``g_norm=virtual`` replaces
G's batch norms by virtual batch norms over a fixed reference batch; ``minibatch_kernels`` > 0
puts minibatch discrimination on phi(x), and a linear output layer reads [phi(x), o(x)]
instead of the final convolution (the same map when the layer is off).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.core.roles import CriticRole, DecoderRole, EncoderRole, GeneratorRole
from gankit.nn.layers import (ImprovedTechniqueParams, ReferenceBatch, VirtualBatchNorm,
                              minibatch_layer)

# resolution -> (side of the first feature map, number of stride-2 stages)
RESOLUTIONS = {28: (7, 2), 32: (4, 3), 64: (4, 4)}


class DCGANParams(ImprovedTechniqueParams):
    name: Literal["dcgan"] = "dcgan"
    z_dim: int = Field(100, gt=0, le=4096)
    z_dist: Literal["normal", "uniform"] = "normal"
    ngf: int = Field(64, gt=0, le=1024)          # G width at the last hidden layer
    ndf: int = Field(64, gt=0, le=1024)          # D width at the first layer
    d_norm: Literal["layer", "instance", "none"] = "layer"   # D's norm for per-sample critics (WGAN-GP)
    aux_hidden: int = Field(128, ge=0, le=4096)  # hidden units of D's auxiliary head (0: linear)
    # G's norm: batch norm (Radford et al.) or virtual batch norm (Salimans et al. 2016, 3.4)
    g_norm: Literal["batch", "virtual"] = "batch"
    # G's 2x upsampling: transposed 4x4 stride-2 convolutions (Radford et al.) or nearest
    # 2x upsampling then a 3x3 convolution (Odena et al. 2016: no checkerboard artifacts)
    g_upsample: Literal["transposed", "nearest"] = "transposed"
    # spectral normalisation of every D weight (Miyato et al. 2018); D then has no batch norm
    d_spectral_norm: bool = False


def check_resolution(shape: tuple[int, ...]) -> tuple[int, int]:
    """(base side, stride-2 stages) for an image shape (C, H, W); ConfigError otherwise."""
    if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] != shape[2] \
            or shape[1] not in RESOLUTIONS:
        sizes = ", ".join(f"{s}x{s}" for s in RESOLUTIONS)
        raise ConfigError(f"the dcgan network supports 1- or 3-channel images of {sizes}, "
                          f"not {tuple(shape)}; set data.size to one of {', '.join(map(str, RESOLUTIONS))}")
    return RESOLUTIONS[shape[1]]


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv/linear/embedding ~ N(0, 0.02), norm scales ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def up2(c_in: int, c_out: int, kind: str) -> nn.Module:
    """(B, c_in, S, S) -> (B, c_out, 2S, 2S): a 4x4 stride-2 transposed convolution, or
    nearest upsampling and a 3x3 convolution (``g_upsample=nearest``)."""
    if kind == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                             nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False))
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)


def spectral_normalise(module: nn.Module) -> None:
    """Spectral normalisation (Miyato et al. 2018) of every conv / linear / embedding weight
    of ``module``, in place: W / sigma(W), sigma by one power iteration per forward pass."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            spectral_norm(m)


def d_norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":        # over (C, H, W) of each sample, per-channel affine
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    return nn.Identity()


class DCGANGenerator(nn.Module):
    """z (B, in_dim) [+ labels (B,)] -> images (B, C, R, R) in [-1, 1] (``squash``: the
    final tanh; without it, unbounded outputs: a VAE decoder's logits or means).

    ``reference_rows`` > 0: virtual batch norm instead of batch norm, over a fixed reference
    batch of that many inputs run before the batch (``gankit.nn.layers.ReferenceBatch``)."""

    def __init__(self, in_dim: int, shape: tuple[int, ...], ngf: int, num_classes: int = 0,
                 reference_rows: int = 0, squash: bool = True, upsample: str = "transposed"):
        super().__init__()
        base, stages = check_resolution(shape)
        self.num_classes = num_classes
        norm = (lambda c: VirtualBatchNorm(c, reference_rows)) if reference_rows \
            else nn.BatchNorm2d
        width = ngf * 2 ** (stages - 1)                      # channels of the base map
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim + num_classes, width, base, 1, 0, bias=False),
            norm(width), nn.ReLU(True),                      # (B, width, base, base)
        ]
        for _ in range(stages - 1):                          # double the side, halve the width
            layers += [up2(width, width // 2, upsample), norm(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [up2(width, shape[0], upsample), nn.Tanh() if squash else nn.Identity()]
        self.main = nn.Sequential(*layers)                   # (B, C, R, R)
        if reference_rows:
            self.main = ReferenceBatch(self.main, reference_rows, (in_dim + num_classes, 1, 1))
        init_weights(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1)
        return self.main(z[:, :, None, None])                # (B, in, 1, 1) -> (B, C, R, R)


def aux_head(features: int, out: int, hidden: int, norm: str) -> nn.Sequential:
    """Extra outputs on D's trunk: InfoGAN's Q head (FC 128 - BN - LReLU - FC in Chen et al.
    2016), also used for AC-GAN's classes. Batch norm only where D itself uses it."""
    if not hidden:
        return nn.Sequential(nn.Flatten(), nn.Linear(features, out))    # (B, out)
    bn = norm == "batch"
    return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden, bias=not bn),
                         nn.BatchNorm1d(hidden) if bn else nn.Identity(),
                         nn.LeakyReLU(0.2, True), nn.Linear(hidden, out))  # (B, out)


def d_trunk(shape: tuple[int, ...], ndf: int, norm: str) -> tuple[nn.Sequential, int, int]:
    """D's strided convolutions: images (B, C, R, R) -> (B, width, base, base); returns the
    trunk, its output width and base side."""
    base, stages = check_resolution(shape)
    layers: list[nn.Module] = [nn.Conv2d(shape[0], ndf, 4, 2, 1, bias=False),
                               nn.LeakyReLU(0.2, True)]      # no norm on D's input layer
    width = ndf
    for _ in range(stages - 1):                              # halve the side, double the width
        layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                   d_norm_layer(norm, width * 2), nn.LeakyReLU(0.2, True)]
        width *= 2
    return nn.Sequential(*layers), width, base


class DCGANDiscriminator(nn.Module):
    """images (B, C, R, R) [+ labels (B,)] -> logits (B,) or (B, out_dim); with
    ``features=True`` also phi(x) (B, width * base * base), the last feature map flattened.
    ``minibatch``: a minibatch-discrimination layer on phi(x) before the adversarial output."""

    def __init__(self, shape: tuple[int, ...], ndf: int, norm: str, out_dim: int = 1,
                 num_classes: int = 0, aux_hidden: int = 128,
                 minibatch: nn.Module | None = None):
        super().__init__()
        self.out_dim, self.num_classes = out_dim, num_classes
        self.trunk, width, base = d_trunk(shape, ndf, norm)  # (B, width, base, base)
        features = width * base * base
        self.minibatch = minibatch
        if minibatch is None:
            self.head = nn.Conv2d(width, 1, base, 1, 0, bias=False)   # (B, 1, 1, 1)
        else:                                    # the same map, plus o(x) as inputs
            self.head = nn.Linear(features + minibatch.kernels, 1, bias=False)
        self.embed = nn.Embedding(num_classes, features) if num_classes else None
        self.aux = aux_head(features, out_dim - 1, aux_hidden, norm) if out_dim > 1 else None
        init_weights(self)

    def forward(self, x: Tensor, y: Tensor | None = None,
                features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        h = self.trunk(x)                                    # (B, width, base, base)
        inner = h if self.minibatch is None else self.minibatch(h.flatten(1))
        out = critic_outputs(self.head(inner).flatten(), h, self.embed, self.aux, y)
        return (out, h.flatten(1)) if features else out


def critic_outputs(logit: Tensor, h: Tensor, embed: nn.Module | None, aux: nn.Module | None,
                   y: Tensor | None) -> Tensor:
    """What a critic returns from its adversarial logit (B,) and last features h: the logit
    plus the projection term <e_y, phi(x)> when conditioned, then the auxiliary head's outputs
    (AC-GAN classes, InfoGAN's Q) as columns 1: of (B, out_dim)."""
    if embed is not None:
        logit = logit + (embed(y) * h.flatten(1)).sum(1)
    if aux is None:
        return logit                                         # (B,)
    return torch.cat([logit[:, None], aux(h)], 1)            # (B, out_dim)


class DCGANEncoder(nn.Module):
    """images (B, C, R, R) -> (B, out_dim): D's trunk under a per-sample norm (``d_norm``:
    an example's code never depends on its batch), then a linear layer (a VAE's q(z|x))."""

    def __init__(self, shape: tuple[int, ...], ndf: int, norm: str, out_dim: int):
        super().__init__()
        self.trunk, width, base = d_trunk(shape, ndf, norm)
        self.head = nn.Linear(width * base * base, out_dim)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x).flatten(1))           # (B, out_dim)


def build_encoder(p: DCGANParams, info: DataInfo, role: EncoderRole) -> nn.Module:
    return DCGANEncoder(info.shape, p.ndf, p.d_norm, role.out_dim)


def build_decoder(p: DCGANParams, info: DataInfo, role: DecoderRole) -> nn.Module:
    """G without its final tanh: Bernoulli logits or Gaussian means (B, C, R, R)."""
    return DCGANGenerator(role.z_dim, info.shape, p.ngf, squash=False, upsample=p.g_upsample)


def build_generator(p: DCGANParams, info: DataInfo, role: GeneratorRole) -> nn.Module:
    rows = p.vbn_reference if p.g_norm == "virtual" else 0
    return DCGANGenerator(role.in_dim, info.shape, p.ngf, role.num_classes, rows,
                          upsample=p.g_upsample)


def build_critic(p: DCGANParams, info: DataInfo, role: CriticRole) -> nn.Module:
    norm = p.d_norm if role.per_sample else ("none" if p.d_spectral_norm else "batch")
    base, stages = check_resolution(info.shape)
    features = p.ndf * 2 ** (stages - 1) * base * base          # phi(x), flattened
    D = DCGANDiscriminator(info.shape, p.ndf, norm, role.out_dim, role.num_classes,
                           p.aux_hidden, minibatch_layer(p, features, role))
    if p.d_spectral_norm:
        spectral_normalise(D)
    return D


class DCGANFamily:
    """DCGAN convolutions (Radford 2016): G and D for 28, 32 or 64 px, 1 or 3 channels.

    The same convolutions serve as a VAE's encoder and decoder."""

    Params = DCGANParams
    data_kinds = ("image",)
    builders = {GeneratorRole: build_generator, CriticRole: build_critic,
                EncoderRole: build_encoder, DecoderRole: build_decoder}

    @staticmethod
    def check(p: DCGANParams, info: DataInfo) -> None:
        check_resolution(info.shape)

    @staticmethod
    def min_batch(p: DCGANParams, info: DataInfo, role) -> int:
        """2 for a critic with an auxiliary head under batch norm (its FC batch norm sees one
        value per channel in a batch of one); else 1 (the conv batch norms see >= 4x4 maps)."""
        aux_bn = (isinstance(role, CriticRole) and role.out_dim > 1 and p.aux_hidden > 0
                  and not role.per_sample)
        return 2 if aux_bn else 1
