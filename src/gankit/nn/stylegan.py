"""A style-based generator and a residual discriminator (Karras et al. 2019, "A Style-Based
Generator Architecture for GANs", StyleGAN; Karras et al. 2020, "Analyzing and Improving the
Image Quality of StyleGAN", StyleGAN2), for 32 and 64 px images with 1 or 3 channels.

Generator G(z) = synthesis(mapping(z)):
  * mapping: z normalised to unit second moment, then ``mapping_layers`` fully connected
    layers (8 x 512 in both papers) with LeakyReLU(0.2), learning-rate multiplier
    ``mapping_lr_mul`` (0.01, StyleGAN section 2 / appendix C) -> w (B, w_dim). The average
    w is tracked in a buffer ``w_avg`` (w_avg <- beta w_avg + (1 - beta) mean(w) on every
    training forward, beta 0.995 as NVlabs' stylegan2-ada ``w_avg_beta``), saved with G's
    state: the truncation trick w' = w_avg + psi (w - w_avg) (StyleGAN section 4.1).
  * synthesis: a learned constant 4x4 input; per resolution two 3x3 convolutions (the first
    after a bilinear 2x upsampling, or with ``upsample: transposed`` StyleGAN2's stride-2
    transposed convolution and [1, 3, 3, 1] blur: the same maps but at the borders, for a
    quarter of the multiply-adds), each modulated by its own w (one per layer: ``num_ws``,
    StyleGAN2's count, the to-RGB layer sharing the next block's first w), then per-pixel
    noise (B, 1, H, W) times a learned per-channel scale (StyleGAN section 3.2; initial 0),
    bias and LeakyReLU(0.2) * sqrt(2).
    ``modulation``: ``demod`` (StyleGAN2 eq. 1-3: weights scaled by the style s, then
    divided by their per-output-channel norm) or ``adain`` (StyleGAN eq. 1: instance norm
    after the activation, then per-channel scale and bias from w).
  * to-RGB skips (StyleGAN2 figure 7b): each resolution adds a 1x1 modulated (not
    demodulated) convolution of its features to the upsampled image so far. No output
    squashing (the papers' linear output).
  * every weight uses the equalised learning rate (Karras et al. 2018, section 4.1): stored
    N(0, 1) / lr_mul, scaled by lr_mul / sqrt(fan_in) at run time.
Widths: ``ngf`` channels at the output resolution, doubled per halving, at most
``max_channels`` (the papers: 512 everywhere at <= 64 px; the gankit presets use a narrow
network that trains on a CPU). Not reproduced: the FIR filters of the to-RGB skips and of D
(bilinear up-sampling and average pooling instead) and the fused grouped convolution (the
same maths as scaling the inputs and outputs of one shared convolution, which is faster on a
CPU).

Discriminator (StyleGAN2 figure 7c, "residual"): from-RGB 1x1, then per resolution two 3x3
convolutions (average-pooled between them) plus a 1x1 skip of the pooled input, summed with
gain 1/sqrt(2); at 4x4 the minibatch standard deviation (Karras et al. 2018, section 3;
groups of ``mbstd_group``, off for per-sample critics), a 3x3 convolution, a fully connected
layer (its output is phi(x), the features) and the logit. Conditional roles reuse the DCGAN
family's projection and auxiliary heads (``gankit.nn.dcgan.critic_outputs``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gankit.core.roles import CriticRole, GeneratorRole
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.nn.dcgan import aux_head, critic_outputs
from gankit.params import Params

SIZES = (32, 64)
SQRT2 = math.sqrt(2.0)


class StyleGANParams(Params):
    name: Literal["stylegan"] = "stylegan"
    z_dim: int = Field(512, gt=0, le=4096)
    w_dim: int = Field(512, gt=0, le=4096)
    mapping_layers: int = Field(8, ge=1, le=32)
    mapping_lr_mul: float = Field(0.01, gt=0, le=1)
    w_avg_beta: float = Field(0.995, gt=0, lt=1)
    modulation: Literal["demod", "adain"] = "demod"
    # G's 2x up-sampling convolutions: "bilinear" (bilinear up-sampling, then a 3x3
    # convolution at the output resolution) or "transposed" (StyleGAN2's: a stride-2
    # transposed 3x3 convolution, then a [1, 3, 3, 1] blur with gain 4; away from the
    # borders the same maps as "bilinear", with the kernel flipped, for a quarter of the work)
    upsample: Literal["bilinear", "transposed"] = "bilinear"
    ngf: int = Field(512, gt=0, le=1024)          # G channels at the output resolution
    ndf: int = Field(512, gt=0, le=1024)          # D channels at the input resolution
    max_channels: int = Field(512, gt=0, le=1024)  # cap on the doubled widths
    mbstd_group: int = Field(4, ge=0, le=64)       # minibatch-stddev group (0: off)
    aux_hidden: int = Field(128, ge=0, le=4096)    # D's auxiliary head (AC-GAN / InfoGAN)


def check_shape(shape: tuple[int, ...]) -> int:
    """The resolution of an image shape (C, R, R) with C 1 or 3 and R 32 or 64; ConfigError
    (one line) otherwise."""
    if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] != shape[2] \
            or shape[1] not in SIZES:
        raise ConfigError(f"the stylegan network supports 1- or 3-channel images of 32x32 or "
                          f"64x64, not {tuple(shape)}; set data.size to 32 or 64")
    return int(shape[1])


def width(base: int, res: int, out_res: int, cap: int) -> int:
    """Channels at resolution ``res``: ``base`` at ``out_res``, doubled per halving, <= cap."""
    return min(base * out_res // res, cap)


def lrelu(x: Tensor) -> Tensor:
    """LeakyReLU(0.2) times sqrt(2), keeping unit variance (StyleGAN's ``def_gain``)."""
    return F.leaky_relu(x, 0.2) * SQRT2


# ------------------------------------------------------------------ equalised layers
class EqualLinear(nn.Module):
    """x (B, in) -> (B, out) with the equalised learning rate: weights N(0, 1) / lr_mul,
    scaled by lr_mul / sqrt(in) at run time; bias initialised to ``bias_init``."""

    def __init__(self, n_in: int, n_out: int, lr_mul: float = 1.0, bias_init: float = 0.0,
                 act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((n_out,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(n_in), lr_mul, act

    def forward(self, x: Tensor) -> Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return lrelu(x) if self.act else x


class EqualConv(nn.Module):
    """x (B, in, H, W) -> (B, out, H, W): a k x k convolution ('same' padding) with the
    equalised learning rate, then LeakyReLU * sqrt(2) when ``act``."""

    def __init__(self, c_in: int, c_out: int, k: int, bias: bool = True, act: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale, self.act = 1 / math.sqrt(c_in * k * k), act

    def forward(self, x: Tensor) -> Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)
        return lrelu(x) if self.act else x


# ------------------------------------------------------------------ generator
class MappingNetwork(nn.Module):
    """z (B, z_dim) [+ labels (B,)] -> w (B, w_dim); keeps the running average ``w_avg``.

    Labels (a conditional role) are embedded, normalised and concatenated onto the
    normalised z, as NVlabs' stylegan2-ada ``MappingNetwork`` does."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float, beta: float,
                 num_classes: int = 0):
        super().__init__()
        self.num_classes, self.beta = num_classes, beta
        self.embed = EqualLinear(num_classes, w_dim) if num_classes else None
        dims = [z_dim + (w_dim if num_classes else 0)] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, act=True)
                                   for a, b in zip(dims[:-1], dims[1:])])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    @staticmethod
    def normalize(x: Tensor) -> Tensor:
        return x * (x.square().mean(1, keepdim=True) + 1e-8).rsqrt()

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        x = self.normalize(z)
        if self.embed is not None:
            e = self.embed(F.one_hot(y, self.num_classes).to(z.dtype))
            x = torch.cat([x, self.normalize(e)], 1)
        w = self.net(x)                                               # (B, w_dim)
        if self.training:                                             # tracked while training
            with torch.no_grad():
                # (in w_avg's dtype: under autocast w may be bf16 / fp16)
                self.w_avg.copy_(w.detach().to(self.w_avg.dtype).mean(0)
                                 .lerp(self.w_avg, self.beta))
        return w


class StyleLayer(nn.Module):
    """One synthesis convolution: (B, c_in, H, W), its w (B, w_dim), noise (B, 1, H', W')
    -> (B, c_out, H', W'), H' = 2H when ``up``. ``modulation`` "demod" (StyleGAN2) or
    "adain" (StyleGAN); ``k`` = 1 with ``rgb``: a to-RGB layer (modulated, no demodulation,
    no noise, no activation)."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, modulation: str, up: bool = False,
                 k: int = 3, rgb: bool = False, upsample: str = "bilinear"):
        super().__init__()
        self.up, self.rgb = up, rgb
        self.transposed = up and upsample == "transposed"
        if self.transposed:                     # [1, 3, 3, 1] (x) [1, 3, 3, 1] / 64, gain 4
            f = torch.tensor([1.0, 3.0, 3.0, 1.0])
            self.register_buffer("blur", (4 * torch.outer(f, f) / 64).expand(c_out, 1, 4, 4)
                                 .contiguous(), persistent=False)
        self.demod = modulation == "demod" and not rgb
        self.adain = modulation == "adain" and not rgb
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)          # s: scales of inputs
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.scale = 1 / math.sqrt(c_in * k * k)
        self.bias = nn.Parameter(torch.zeros(c_out))
        if not rgb:
            self.noise_strength = nn.Parameter(torch.zeros(c_out))    # per-channel scale
        if self.adain:                                                 # y_s, y_b of AdaIN
            self.style = EqualLinear(w_dim, 2 * c_out)
            with torch.no_grad():
                self.style.bias[:c_out] = 1.0

    def conv(self, x: Tensor, weight: Tensor) -> Tensor:
        """(B, c_in, H, W) -> (B, c_out, H', W'): 'same' convolution, or 2x up-sampling."""
        if not self.up:
            return F.conv2d(x, weight, padding=weight.shape[-1] // 2)
        if not self.transposed:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            return F.conv2d(x, weight, padding=weight.shape[-1] // 2)   # (B, c_out, 2H, 2W)
        # the zero-stuffed input convolved at a quarter of the cost, then the bilinear
        # kernel [1, 3, 3, 1] / 4 per axis with gain 2: both are linear and shift-invariant,
        # so away from the borders this is the bilinear path with the kernel flipped
        x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)   # (B, c_out, 2H+1, 2W+1)
        return F.conv2d(F.pad(x, (1, 1, 1, 1)), self.blur, groups=x.shape[1])  # (.., 2H, 2W)

    def forward(self, x: Tensor, w: Tensor, noise: Tensor | None = None) -> Tensor:
        weight = self.weight * self.scale                              # (c_out, c_in, k, k)
        if self.adain:
            x = self.conv(x, weight)
        else:                                   # modulation as a per-sample input scale
            s = self.affine(w)                                         # (B, c_in)
            x = self.conv(x * s[:, :, None, None], weight)
            if self.demod:                      # sigma_j = sqrt(sum_ik (s_i w_ijk)^2)
                d = (weight.square().sum((2, 3))[None] * s[:, None].square()).sum(2)
                x = x * (d + 1e-8).rsqrt()[:, :, None, None]           # (B, c_out)
        if self.rgb:
            return x + self.bias[None, :, None, None]
        if noise is not None:
            x = x + self.noise_strength[None, :, None, None] * noise
        x = lrelu(x + self.bias[None, :, None, None])
        if self.adain:
            ys, yb = self.style(w)[:, :, None, None].chunk(2, 1)
            x = F.instance_norm(x) * ys + yb
        return x


class Synthesis(nn.Module):
    """ws (B, num_ws, w_dim) and per-layer noise -> images (B, C, R, R)."""

    def __init__(self, shape: tuple[int, ...], w_dim: int, ngf: int, cap: int, modulation: str,
                 upsample: str = "bilinear"):
        super().__init__()
        res = check_shape(shape)
        ch = lambda r: width(ngf, r, res, cap)  # noqa: E731
        self.const = nn.Parameter(torch.randn(ch(4), 4, 4))
        self.convs, self.rgbs = nn.ModuleList(), nn.ModuleList()
        self.layer_res: list[int] = []
        self.convs.append(StyleLayer(ch(4), ch(4), w_dim, modulation))
        self.layer_res.append(4)
        self.rgbs.append(StyleLayer(ch(4), shape[0], w_dim, modulation, k=1, rgb=True))
        r = 8
        while r <= res:
            self.convs.append(StyleLayer(ch(r // 2), ch(r), w_dim, modulation, up=True,
                                         upsample=upsample))
            self.convs.append(StyleLayer(ch(r), ch(r), w_dim, modulation))
            self.layer_res += [r, r]
            self.rgbs.append(StyleLayer(ch(r), shape[0], w_dim, modulation, k=1, rgb=True))
            r *= 2
        self.num_ws = len(self.convs) + 1      # the last to-RGB has a w of its own

    @property
    def ws_res(self) -> list[int]:
        """The resolution each w index acts at (its first convolution's; the last w: the
        final to-RGB, at the output resolution)."""
        return self.layer_res + [self.layer_res[-1]]

    def noise_shapes(self) -> list[tuple[int, int, int]]:
        """(1, r, r) for each convolution's per-pixel noise."""
        return [(1, r, r) for r in self.layer_res]

    def forward(self, ws: Tensor, noise: list[Tensor | None]) -> Tensor:
        x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        x = self.convs[0](x, ws[:, 0], noise[0])
        img = self.rgbs[0](x, ws[:, 1])
        for i, rgb in enumerate(self.rgbs[1:]):
            a, b = 1 + 2 * i, 2 + 2 * i                                # the block's two convs
            x = self.convs[a](x, ws[:, a], noise[a])
            x = self.convs[b](x, ws[:, b], noise[b])
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) \
                + rgb(x, ws[:, b + 1])
        return img


class StyleGANGenerator(nn.Module):
    """z (B, in_dim) [+ labels (B,)] -> images (B, C, R, R) (linear output, ~[-1, 1]).

    Parts used by the style objective: ``mapping(z, y) -> w (B, w_dim)``, ``w_avg``,
    ``truncate(w, psi)``, ``synthesis(ws (B, num_ws, w_dim), noise)`` and ``num_ws``,
    ``noise_shapes()``, ``ws_res`` (see the module docstring)."""

    def __init__(self, p: StyleGANParams, shape: tuple[int, ...], in_dim: int,
                 num_classes: int = 0):
        super().__init__()
        self.mapping = MappingNetwork(in_dim, p.w_dim, p.mapping_layers, p.mapping_lr_mul,
                                      p.w_avg_beta, num_classes)
        self.synthesis = Synthesis(shape, p.w_dim, p.ngf, p.max_channels, p.modulation,
                                   p.upsample)
        self.num_ws = self.synthesis.num_ws
        self.ws_res = self.synthesis.ws_res

    @property
    def w_avg(self) -> Tensor:
        return self.mapping.w_avg

    def noise_shapes(self) -> list[tuple[int, int, int]]:
        return self.synthesis.noise_shapes()

    def truncate(self, w: Tensor, psi: Tensor | float) -> Tensor:
        """w_avg + psi (w - w_avg) (StyleGAN section 4.1), any leading shape of w."""
        return self.w_avg.lerp(w, psi) if isinstance(psi, Tensor) else \
            self.w_avg + psi * (w - self.w_avg)

    def forward(self, z: Tensor, y: Tensor | None = None,
                noise: list[Tensor] | None = None) -> Tensor:
        """Without ``noise``: fresh per-pixel noise from torch's global generator."""
        ws = self.mapping(z, y)[:, None].expand(-1, self.num_ws, -1)
        if noise is None:
            noise = [torch.randn(len(z), *s, device=z.device, dtype=z.dtype)
                     for s in self.noise_shapes()]
        return self.synthesis(ws, noise)


# ------------------------------------------------------------------ discriminator
class DBlock(nn.Module):
    """(B, c_in, R, R) -> (B, c_out, R/2, R/2): conv, pool, conv, plus a pooled 1x1 skip,
    summed with gain 1/sqrt(2) (StyleGAN2's residual D)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv0, self.conv1 = EqualConv(c_in, c_in, 3), EqualConv(c_in, c_out, 3)
        self.skip = EqualConv(c_in, c_out, 1, bias=False, act=False)

    def forward(self, x: Tensor) -> Tensor:
        main = self.conv1(F.avg_pool2d(self.conv0(x), 2))
        return (main + self.skip(F.avg_pool2d(x, 2))) / SQRT2


def minibatch_std(x: Tensor, group: int) -> Tensor:
    """Appends one channel: the standard deviation of each feature over groups of ``group``
    samples, averaged over features and positions (Karras et al. 2018, section 3)."""
    b, c, h, w = x.shape
    g = min(group, b)
    if b % g:
        g = 1 if b % 2 else 2
    y = x.reshape(g, -1, c, h, w)
    y = (y.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))        # (B / g,)
    y = y.repeat(g)[:, None, None, None].expand(b, 1, h, w)
    return torch.cat([x, y], 1)


class StyleGANDiscriminator(nn.Module):
    """images (B, C, R, R) [+ labels (B,)] -> logits (B,) or (B, out_dim); with
    ``features=True`` also phi(x) (B, ch(4)), the last hidden layer."""

    def __init__(self, p: StyleGANParams, shape: tuple[int, ...], out_dim: int = 1,
                 num_classes: int = 0, per_sample: bool = False):
        super().__init__()
        res = check_shape(shape)
        ch = lambda r: width(p.ndf, r, res, p.max_channels)  # noqa: E731
        self.group = 0 if per_sample else p.mbstd_group
        self.from_rgb = EqualConv(shape[0], ch(res), 1)
        blocks, r = [], res
        while r > 4:
            blocks.append(DBlock(ch(r), ch(r // 2)))
            r //= 2
        self.blocks = nn.Sequential(*blocks)
        c4 = ch(4)
        self.conv = EqualConv(c4 + (1 if self.group else 0), c4, 3)
        self.fc = EqualLinear(c4 * 16, c4, act=True)
        self.out = EqualLinear(c4, 1)
        self.embed = EqualLinear(num_classes, c4) if num_classes else None
        self.num_classes = num_classes
        self.aux = aux_head(c4, out_dim - 1, p.aux_hidden, "none") if out_dim > 1 else None

    def forward(self, x: Tensor, y: Tensor | None = None,
                features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        h = self.blocks(self.from_rgb(x))                              # (B, ch(4), 4, 4)
        if self.group:
            h = minibatch_std(h, self.group)
        h = self.fc(self.conv(h).flatten(1))                           # (B, ch(4))
        embed = None
        if self.embed is not None:
            embed = lambda labels: self.embed(F.one_hot(labels, self.num_classes).to(h.dtype))  # noqa: E731
        out = critic_outputs(self.out(h)[:, 0], h, embed, self.aux, y)
        return (out, h) if features else out


# ------------------------------------------------------------------ the family
def build_generator(p: StyleGANParams, info: DataInfo, role: GeneratorRole) -> nn.Module:
    return StyleGANGenerator(p, info.shape, role.in_dim, role.num_classes)


def build_critic(p: StyleGANParams, info: DataInfo, role: CriticRole) -> nn.Module:
    return StyleGANDiscriminator(p, info.shape, role.out_dim, role.num_classes, role.per_sample)


class StyleGANFamily:
    """StyleGAN / StyleGAN2 (Karras et al. 2019, 2020) G with a residual D; 32 or 64 px.

    Mapping network, style modulation, noise inputs, to-RGB skips; 1 or 3 channels."""

    Params = StyleGANParams
    data_kinds = ("image",)
    builders = {GeneratorRole: build_generator, CriticRole: build_critic}

    @staticmethod
    def check(p: StyleGANParams, info: DataInfo) -> None:
        check_shape(info.shape)
