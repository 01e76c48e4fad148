"""PixelCNN networks (van den Oord, Kalchbrenner & Kavukcuoglu 2016; van den Oord et al. 2016,
"Conditional Image Generation with PixelCNN Decoders"), for one-channel images.

Both map images x (B, 1, H, W) to logits (B, levels, 1, H, W) in which the output at pixel
i = (r, c) depends only on the pixels before i in raster order (rows above, and the pixels
left of it in its row): an autoregressive density p(x) = prod_i p(x_i | x_<i).

* ``plain``: a 7x7 convolution of mask type A (the centre pixel excluded), then residual
  3x3 convolutions of mask type B (centre included: it holds features of earlier pixels
  only), then two 1x1 convolutions. Stacked masked 3x3 kernels never see some pixels above
  and to the right: the "blind spot" of van den Oord et al. 2016 (figure 1).
* ``gated``: a vertical stack (everything above) and a horizontal stack (the row to the
  left), each layer gated, tanh(W_f * x) . sigmoid(W_g * x), the vertical stack feeding the
  horizontal one through a 1x1 convolution, the horizontal one residual. The first layer's
  masks exclude the current row (vertical) and the current pixel (horizontal); the
  receptive field is then every earlier pixel, with no blind spot.

Masks multiply the weights in every forward (``MaskedConv2d``), so masked weights get no
gradient and never move. Only one channel: colour needs masks over R, G, B as well.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gankit.core.roles import AutoregressiveRole
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.params import Params


class PixelCNNParams(Params):
    name: Literal["pixelcnn"] = "pixelcnn"
    variant: Literal["gated", "plain"] = "gated"
    channels: int = Field(64, gt=0, le=1024)       # features per stack
    layers: int = Field(7, ge=1, le=64)            # masked layers, the first of type A
    first_kernel: int = Field(7, ge=1, le=31)      # odd side of the first layer's kernel
    kernel: int = Field(3, ge=1, le=31)            # odd side of the later layers' kernels
    head: int = Field(256, gt=0, le=4096)          # hidden 1x1 features of the output head


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded convolution whose kernel is multiplied by a fixed 0/1 ``mask``
    (out, in, kh, kw) on every forward (padding: ``padding`` as nn.Conv2d takes it)."""

    def __init__(self, cin: int, cout: int, mask: Tensor, padding: tuple[int, int]):
        kh, kw = mask.shape
        super().__init__(cin, cout, (kh, kw), padding=padding)
        self.register_buffer("mask", mask.expand(cout, cin, kh, kw).clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


def raster_mask(k: int, kind: str) -> Tensor:
    """A k x k mask: the rows above the centre, and the centre row left of the centre, plus
    the centre itself for type "B" (van den Oord et al. 2016, section 3.5)."""
    if k % 2 == 0:
        raise ConfigError(f"pixelcnn kernels must have an odd side, not {k}")
    m = torch.zeros(k, k)
    m[: k // 2] = 1
    m[k // 2, : k // 2 + (kind == "B")] = 1
    return m


class PlainPixelCNN(nn.Module):
    """x (B, 1, H, W) -> logits (B, levels, 1, H, W): mask A, residual mask-B 3x3 layers."""

    def __init__(self, p: PixelCNNParams, levels: int):
        super().__init__()
        h, k = p.channels, p.kernel
        self.levels = levels
        self.inp = MaskedConv2d(1, h, raster_mask(p.first_kernel, "A"),
                                (p.first_kernel // 2,) * 2)
        self.blocks = nn.ModuleList(MaskedConv2d(h, h, raster_mask(k, "B"), (k // 2,) * 2)
                                    for _ in range(p.layers - 1))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(h, p.head, 1), nn.ReLU(),
                                 nn.Conv2d(p.head, levels, 1))

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        for conv in self.blocks:
            h = h + conv(F.relu(h))                       # residual: keeps deep stacks trainable
        return self.out(h).unsqueeze(2)                   # (B, levels, 1, H, W)


def gate(h: Tensor) -> Tensor:
    """tanh(a) * sigmoid(b) of the two halves of the channels (B, 2C, H, W) -> (B, C, H, W)."""
    a, b = h.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One layer of both stacks (van den Oord et al. 2016, figure 2).

    Vertical: a (k//2 + 1) x k kernel over the rows up to the current one, cropped so that
    output row r reads input rows r - k//2 .. r; in the first layer (``first``) the current
    row is masked, so vertical features at row r depend on rows above r only (and stay so:
    later layers read those features). Horizontal: a 1 x (k//2 + 1) kernel over the columns
    up to the current one (the current one masked in the first layer), plus the vertical
    features of the same row through a 1x1 convolution; residual after the first layer."""

    def __init__(self, cin: int, h: int, k: int, first: bool):
        super().__init__()
        self.first = first
        vmask = torch.ones(k // 2 + 1, k)
        hmask = torch.ones(1, k // 2 + 1)
        if first:
            vmask[-1] = 0
            hmask[0, -1] = 0
        self.v = MaskedConv2d(cin, 2 * h, vmask, (k // 2, k // 2))
        self.h = MaskedConv2d(cin, 2 * h, hmask, (0, k // 2))
        self.v_to_h = nn.Conv2d(2 * h, 2 * h, 1)
        self.h_out = nn.Conv2d(h, h, 1)

    def forward(self, v: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        vf = self.vertical(v)
        return gate(vf), self.horizontal(x, self.v_to_h(vf))

    def vertical(self, v: Tensor) -> Tensor:
        """Vertical features before the gate (B, 2C, H, W) of the stack's input (B, cin, H, W)."""
        return self.v(v)[:, :, : v.shape[-2]]           # rows r - k//2 .. r

    def horizontal(self, x: Tensor, vh: Tensor) -> Tensor:
        """The horizontal stack's output (B, C, H, W) from its input x (B, cin, H, W) and the
        vertical features of the same rows and columns through ``v_to_h``, vh (B, 2C, H, W)."""
        hf = self.h(x)[:, :, :, : x.shape[-1]]          # columns c - k//2 .. c
        out = self.h_out(gate(hf + vh))
        return out if self.first else out + x


class GatedPixelCNN(nn.Module):
    """x (B, 1, H, W) -> logits (B, levels, 1, H, W): gated vertical + horizontal stacks."""

    def __init__(self, p: PixelCNNParams, levels: int):
        super().__init__()
        self.levels = levels
        self.layers = nn.ModuleList(
            [GatedLayer(1, p.channels, p.first_kernel, first=True)]
            + [GatedLayer(p.channels, p.channels, p.kernel, first=False)
               for _ in range(p.layers - 1)])
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(p.channels, p.head, 1), nn.ReLU(),
                                 nn.Conv2d(p.head, levels, 1))

    def forward(self, x: Tensor) -> Tensor:
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h)
        return self.out(h).unsqueeze(2)                 # (B, levels, 1, H, W)

    # ---- sampling a row at a time -----------------------------------------------------
    # The vertical stack at row r reads only the rows above r, so while row r is drawn its
    # contribution to the horizontal stack is fixed: computed once per row (from the rows
    # of vertical features kept from the rows above), it leaves one row strip of horizontal
    # work per pixel: about 30x less arithmetic than the network on the pixel's window.
    def row_context(self, x: Tensor, r: int, kept: list[list[Tensor]]) -> list[Tensor]:
        """What the vertical stack feeds the horizontal one at row r of x (B, 1, H, W) (drawn
        up to row r - 1; row r and below are not read), one (B, 2C, 1, W) per layer, for
        ``pixel_logits``. ``kept``: the caller's list, empty before row 0, which the calls
        for rows 0, 1, ... fill in place: per layer, the gated vertical features (B, C, 1, W)
        of the last rows."""
        if not kept:
            kept.extend([] for _ in self.layers)
        most = max(layer.v.kernel_size[0] for layer in self.layers)
        v, context = x[:, :, : r + 1], []
        for layer, rows in zip(self.layers, kept):
            depth = layer.v.kernel_size[0]              # rows read: r - depth + 1 .. r
            vf = layer.vertical(v[:, :, -depth:])[:, :, -1:]             # (B, 2C, 1, W)
            context.append(layer.v_to_h(vf))
            rows.append(gate(vf))
            del rows[:-most]
            v = torch.cat(rows, 2)                      # (B, C, <= most, W): the next input
        return context

    def pixel_logits(self, strip: Tensor, context: list[Tensor]) -> Tensor:
        """Logits (B, levels) of the last pixel of ``strip`` (B, 1, 1, w), the row's pixels
        up to it (its own value is not read), given ``row_context`` of its row cut to the
        same w columns: equal to ``forward`` on the whole image at that pixel."""
        h = strip
        for layer, vh in zip(self.layers, context):
            h = layer.horizontal(h, vh)                 # (B, C, 1, w)
        return self.out(h[..., -1:])[:, :, 0, 0]        # (B, levels)


def receptive_field(p: PixelCNNParams) -> tuple[int, int]:
    """(rows above, columns on each side) of the input that one output pixel reads: the
    first kernel's half-width, then one kernel half-width more per later layer."""
    reach = p.first_kernel // 2 + (p.layers - 1) * (p.kernel // 2)
    return reach, reach


def build_density(p: PixelCNNParams, info: DataInfo, role: AutoregressiveRole) -> nn.Module:
    """The ``variant`` network with ``role.levels`` logits per pixel."""
    for k in (p.first_kernel, p.kernel):
        raster_mask(k, "A")                             # odd sides only
    cls = GatedPixelCNN if p.variant == "gated" else PlainPixelCNN
    net = cls(p, role.levels)
    net.receptive_field = receptive_field(p)            # lets sampling compute a window only
    return net


class PixelCNNFamily:
    """PixelCNN masked convolutions, plain or gated (van den Oord et al. 2016).

    The gated stacks have no blind spot; one-channel images."""

    Params = PixelCNNParams
    data_kinds = ("image",)
    builders = {AutoregressiveRole: build_density}

    @staticmethod
    def check(p: PixelCNNParams, info: DataInfo) -> None:
        if len(info.shape) != 3 or info.shape[0] != 1:
            raise ConfigError(f"the pixelcnn network takes one-channel images, not "
                              f"{tuple(info.shape)} (colour needs masks over the channels)")
