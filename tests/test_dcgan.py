"""DCGAN networks: shapes per resolution/channels, the canonical network, initialisation,
conditioning and auxiliary outputs; the MLP's conditioning (toy behaviour unchanged)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.nn.dcgan import DCGANFamily, DCGANParams
from gankit.nn.mlp import MLPFamily, MLPParams
from gankit.core.roles import CriticRole, GeneratorRole, build_nets


def build(size: int, channels: int, g_role=None, d_role=None, **kw):
    p = DCGANParams(**({"z_dim": 16, "ngf": 8, "ndf": 8} | kw))
    info = DataInfo("image", (channels, size, size), num_classes=10)
    g_role = g_role or GeneratorRole(z_dim=p.z_dim)
    d_role = d_role or CriticRole()
    return p, build_nets(DCGANFamily, p, info, {"G": g_role, "D": d_role})


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_every_resolution(size, channels):
    p, nets = build(size, channels)
    z = torch.randn(5, p.z_dim)
    x = nets["G"](z)
    assert x.shape == (5, channels, size, size)
    assert x.abs().max() <= 1.0                                  # tanh output
    assert nets["D"](x).shape == (5,)


def test_unsupported_size_names_the_supported_ones():
    with pytest.raises(ConfigError, match="28x28, 32x32, 64x64"):
        build(48, 3)
    with pytest.raises(ConfigError, match="1- or 3-channel"):
        build(32, 2)


def pytorch_example_nets(nz=100, ngf=64, ndf=64, nc=3):
    """The networks of the official PyTorch DCGAN example (examples/dcgan/main.py)."""
    G = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())
    D = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    return G, D


@pytest.mark.parametrize("channels", [1, 3])
def test_canonical_64px_matches_the_pytorch_example(channels):
    _, nets = build(64, channels, z_dim=100, ngf=64, ndf=64)
    G_ref, D_ref = pytorch_example_nets(nc=channels)
    assert n_params(nets["G"]) == n_params(G_ref)
    assert n_params(nets["D"]) == n_params(D_ref)
    if channels == 3:
        assert (n_params(nets["G"]), n_params(nets["D"])) == (3_576_704, 2_765_568)
    # same layer shapes in the same order
    shapes = lambda net: [tuple(p.shape) for p in net.parameters()]  # noqa: E731
    assert shapes(nets["G"]) == shapes(G_ref)
    assert shapes(nets["D"]) == shapes(D_ref)


def test_initialisation_statistics():
    torch.manual_seed(0)
    _, nets = build(64, 3, z_dim=100, ngf=64, ndf=64)
    convs = [m.weight for net in nets.values() for m in net.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.weight.numel() > 10000]
    for w in convs:
        assert abs(w.mean().item()) < 2e-3 and w.std().item() == pytest.approx(0.02, rel=0.05)
    bns = [m for net in nets.values() for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    scale = torch.cat([m.weight.detach() for m in bns])
    assert scale.mean().item() == pytest.approx(1.0, abs=3e-3)
    assert scale.std().item() == pytest.approx(0.02, rel=0.15)
    assert all(bool((m.bias == 0).all()) for m in bns)


def test_no_batchnorm_in_critic_for_gradient_penalty():
    for norm, kind in (("layer", nn.GroupNorm), ("none", None)):
        _, nets = build(32, 3, d_role=CriticRole(per_sample=True), d_norm=norm)
        mods = list(nets["D"].modules())
        assert not any(isinstance(m, nn.BatchNorm2d) for m in mods)
        assert kind is None or any(isinstance(m, kind) for m in mods)
        # per-sample: a sample's output does not depend on the rest of the batch
        x = torch.randn(4, 3, 32, 32)
        assert torch.allclose(nets["D"](x)[:1], nets["D"](x[:1]), atol=1e-5)


def test_conditional_and_auxiliary_outputs():
    p, nets = build(28, 1, g_role=GeneratorRole(z_dim=16, num_classes=10, code_dim=3),
                    d_role=CriticRole(num_classes=10, out_dim=13))
    z, y = torch.randn(6, p.z_dim + 3), torch.arange(6)
    x = nets["G"](z, y)
    assert x.shape == (6, 1, 28, 28)
    out = nets["D"](x, y)
    assert out.shape == (6, 13)
    # the label matters, through G's input and D's projection
    assert not torch.allclose(nets["G"](z, y), nets["G"](z, (y + 1) % 10))
    assert not torch.allclose(nets["D"](x, y)[:, 0], nets["D"](x, (y + 1) % 10)[:, 0])
    # the projection only touches the adversarial column
    assert torch.allclose(nets["D"](x, y)[:, 1:], nets["D"](x, (y + 1) % 10)[:, 1:])


def test_mlp_conditioning_and_toy_unchanged():
    info = DataInfo("toy2d", (2,))
    nets = build_nets(MLPFamily, MLPParams(), info, {"G": GeneratorRole(z_dim=2), "D": CriticRole()})
    assert list(nets["G"].state_dict())[0] == "net.0.weight"
    assert nets["G"].net[0].in_features == 2 and nets["D"].net[0].in_features == 2
    assert nets["D"](nets["G"](torch.randn(4, 2))).shape == (4,)
    img = DataInfo("image", (1, 28, 28), num_classes=10)
    p = MLPParams(z_dim=8, out_activation="tanh")
    nets = build_nets(MLPFamily, p, img, {"G": GeneratorRole(z_dim=p.z_dim, num_classes=10),
                                       "D": CriticRole(num_classes=10, out_dim=3)})
    y = torch.tensor([0, 3, 9])
    x = nets["G"](torch.randn(3, 8), y)
    assert x.shape == (3, 1, 28, 28)
    assert nets["D"](x, y).shape == (3, 3)
