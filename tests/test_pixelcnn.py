"""PixelCNN (van den Oord et al. 2016): causality, no blind spot, an exact normalised
likelihood, and sampling that reads only what each pixel may read.

Causality is read off gradients of a tiny random network: the gradient of the output at
pixel i with respect to the input image is non-zero only on pixels before i in raster order
(both variants); for the gated variant it is non-zero on every one of them (no blind spot),
while the plain stack of masked 3x3 convolutions misses some pixels above and to the right
(the blind spot of van den Oord et al. 2016, figure 1).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from gankit.core.roles import AutoregressiveRole
from gankit.core.step import Latent
from gankit.data.base import DataInfo
from gankit.nn.pixelcnn import PixelCNNParams, build_density
from gankit.objectives.pixelcnn import LEVELS, PixelCNN, PixelCNNObjectiveParams

H = W = 6


def tiny(variant: str, shape=(1, H, W), output: str = "bernoulli", **params):
    torch.manual_seed(0)
    p = PixelCNNParams(variant=variant, **({"channels": 8, "layers": 4, "head": 8,
                                            "first_kernel": 5} | params))
    info = DataInfo("image", shape)
    net = build_density(p, info, AutoregressiveRole(levels=LEVELS[output])).double()
    obj = PixelCNN(PixelCNNObjectiveParams(output=output, progress=False), {"density": net},
                   Latent(0), info)
    return net, obj


def dependencies(net, i: int) -> torch.Tensor:
    """Which input pixels (H*W,) bool the output logit at pixel i reads: non-zero gradients,
    summed over a few random images (one image could zero a path by chance)."""
    x = torch.randn(4, 1, H, W, dtype=torch.double, requires_grad=True)
    r, c = divmod(i, W)
    (g,) = torch.autograd.grad(net(x)[:, 0, 0, r, c].sum(), x)
    return g.abs().sum(0)[0].flatten() != 0


@pytest.mark.parametrize("variant", ["plain", "gated"])
def test_output_i_reads_only_pixels_before_i(variant):
    net, _ = tiny(variant)
    blind = 0
    for i in range(H * W):
        reads = dependencies(net, i)
        before = torch.arange(H * W) < i
        assert not (reads & ~before).any(), f"{variant}: pixel {i} reads itself or later ones"
        blind += int((before & ~reads).sum())
    if variant == "gated":
        assert blind == 0, "the gated PixelCNN has a blind spot"
    else:
        assert blind > 0, "the plain stack of masked convolutions should have a blind spot"


def test_gated_first_pixel_reads_nothing_and_second_reads_the_first():
    net, _ = tiny("gated")
    assert not dependencies(net, 0).any()
    assert dependencies(net, 1).tolist() == [True] + [False] * (H * W - 1)


@pytest.mark.parametrize("output,shape", [
    ("bernoulli", (1, 3, 3)),
    pytest.param("categorical", (1, 1, 2), marks=pytest.mark.slow)])     # 65,536 images
def test_the_likelihood_is_normalised(output, shape):
    """sum over every image of exp(log p(x)) = 1: 2^9 binary 3x3 images, 256^2 grey 1x2."""
    _, obj = tiny("gated", shape, output, first_kernel=3, layers=2)
    obj.nets["density"].float()
    values = [-1.0, 1.0] if output == "bernoulli" else [v / 127.5 - 1 for v in range(256)]
    n = shape[1] * shape[2]
    x = torch.tensor(list(itertools.product(values, repeat=n))).view(-1, *shape)
    total = obj.log_likelihood(x).double().exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("variant", ["plain", "gated"])
@pytest.mark.parametrize("output", ["bernoulli", "categorical"])
def test_windowed_sampling_equals_sampling_on_the_whole_image(variant, output):
    net, obj = tiny(variant, output=output)
    net.float()
    inputs = obj.sample_inputs(3, torch.Generator().manual_seed(1))
    x = obj.generate(inputs)
    assert obj.last_sampling["images"] == 3 and obj.last_sampling["images_per_s"] > 0
    del net.receptive_field                      # every row up to r, every column
    assert torch.equal(obj.generate(inputs), x)
    if variant == "gated":                       # and without the row-at-a-time path
        assert hasattr(net, "row_context")
        assert torch.equal(obj.generate(inputs, by_rows=False), x)
    # each pixel is the inverse-CDF draw from the model's conditional at the finished image
    logits = net(x)[:, :, 0]                                            # (3, levels, H, W)
    for r, c in [(0, 0), (2, 3), (H - 1, W - 1)]:
        assert torch.equal(obj.pick(logits[:, :, r, c], inputs["u"][:, 0, r, c]), x[:, 0, r, c])


@pytest.mark.parametrize("shape, layers, first_kernel, kernel", [
    ((7, 9), 3, 5, 3), ((6, 6), 1, 7, 3), ((5, 8), 4, 3, 5), ((1, 6), 2, 5, 1),
    ((6, 1), 3, 1, 3), ((2, 2), 2, 7, 5)])
@pytest.mark.parametrize("output", ["bernoulli", "categorical"])
def test_row_at_a_time_logits_equal_the_whole_image(shape, layers, first_kernel, kernel,
                                                   output):
    """The gated stacks' row sampling (vertical context once per row, horizontal strip per
    pixel, strips cut to the receptive field) gives the logits of ``forward`` everywhere,
    whatever the kernels, depth and image shape (1-pixel rows and columns included)."""
    H, W = shape
    net, _ = tiny("gated", shape=(1, H, W), output=output, layers=layers,
                  first_kernel=first_kernel, kernel=kernel)
    x = torch.randn(2, 1, H, W, dtype=torch.double)
    full = net(x)[:, :, 0]                                              # (2, levels, H, W)
    side, kept = net.receptive_field[1], []
    for r in range(H):
        context = net.row_context(x, r, kept)
        for c in range(W):
            c0 = max(0, c - side)
            logits = net.pixel_logits(x[:, :, r: r + 1, c0: c + 1],
                                      [t[..., c0: c + 1] for t in context])
            torch.testing.assert_close(logits, full[:, :, r, c], rtol=1e-10, atol=1e-10)
