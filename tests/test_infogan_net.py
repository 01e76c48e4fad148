"""InfoGAN's MNIST networks (gankit.nn.infogan): shapes for every role, the paper's layers,
initialisation, parameter validation, and a few training steps through gankit.api."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from gankit.config import validate
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.nn.infogan import InfoGANFamily, InfoGANNetParams
from gankit.core.roles import CriticRole, GeneratorRole, TranslatorRole, build_nets
from gankit.registry import NETWORKS

SMALL = {"z_dim": 8, "ngf": 8, "ndf": 8, "g_hidden": 32, "d_hidden": 32, "q_hidden": 16}


def build(size=28, channels=1, g_role=None, d_role=None, **kw):
    p = InfoGANNetParams(**(SMALL | kw))
    info = DataInfo("image", (channels, size, size), num_classes=10)
    g_role = g_role or GeneratorRole(z_dim=p.z_dim)
    d_role = d_role or CriticRole()
    return p, build_nets(InfoGANFamily, p, info, {"G": g_role, "D": d_role})


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_plain_roles(size, channels):
    p, nets = build(size, channels)
    x = nets["G"](torch.rand(5, p.z_dim) * 2 - 1)
    assert x.shape == (5, channels, size, size)
    assert x.abs().max() <= 1.0                                  # tanh output
    assert nets["D"](x).shape == (5,)


def test_infogan_roles_codes_and_q_head():
    p, nets = build(g_role=GeneratorRole(z_dim=8, code_dim=12), d_role=CriticRole(out_dim=13))
    x = nets["G"](torch.randn(4, p.z_dim + 12))
    assert x.shape == (4, 1, 28, 28)
    assert nets["D"](x).shape == (4, 13)
    # Q reads D's FC feature through FC(q_hidden) - BN - LReLU - FC(codes)
    q = [m for m in nets["D"].aux.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in q] == [(32, 16), (16, 12)]
    _, nets = build(d_role=CriticRole(out_dim=3), q_hidden=0)
    assert [type(m) for m in nets["D"].aux] == [nn.Linear]


def test_conditional_roles():
    p, nets = build(g_role=GeneratorRole(z_dim=8, num_classes=10),
                    d_role=CriticRole(num_classes=10, out_dim=11))
    z, y = torch.randn(6, p.z_dim), torch.arange(6)
    x = nets["G"](z, y)
    out = nets["D"](x, y)
    assert out.shape == (6, 11)
    assert not torch.allclose(nets["G"](z, y), nets["G"](z, (y + 1) % 10))
    # the projection changes the adversarial logit only
    other = nets["D"](x, (y + 1) % 10)
    assert not torch.allclose(out[:, 0], other[:, 0])
    assert torch.allclose(out[:, 1:], other[:, 1:])


def test_per_sample_critic_without_batchnorm():
    _, nets = build(d_role=CriticRole(per_sample=True))
    D = nets["D"]
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in D.modules())
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(D(x)[:1], D(x[:1]), atol=1e-5)


def test_paper_layers_at_default_size():
    """Appendix C.1 of Chen et al. 2016, with the default widths."""
    p = InfoGANNetParams()
    info = DataInfo("image", (1, 28, 28))
    nets = build_nets(InfoGANFamily, p, info, {"G": GeneratorRole(z_dim=62, code_dim=12),
                                               "D": CriticRole(out_dim=13)})
    lin = lambda net: [(m.in_features, m.out_features) for m in net.modules()  # noqa: E731
                       if isinstance(m, nn.Linear)]
    conv = lambda net: [(m.in_channels, m.out_channels, m.kernel_size, m.stride)  # noqa: E731
                        for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert lin(nets["G"]) == [(74, 1024), (1024, 128 * 7 * 7)]
    assert conv(nets["G"]) == [(128, 64, (4, 4), (2, 2)), (64, 1, (4, 4), (2, 2))]
    assert conv(nets["D"]) == [(1, 64, (4, 4), (2, 2)), (64, 128, (4, 4), (2, 2))]
    assert lin(nets["D"]) == [(128 * 7 * 7, 1024), (1024, 1), (1024, 128), (128, 12)]
    assert isinstance(nets["D"].trunk[1], nn.LeakyReLU)          # no norm on D's input layer


def test_initialisation_statistics():
    torch.manual_seed(0)
    nets = build_nets(InfoGANFamily, InfoGANNetParams(), DataInfo("image", (1, 28, 28)),
                      {"G": GeneratorRole(z_dim=62), "D": CriticRole()})
    layers = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    big = [m.weight for net in nets.values() for m in net.modules()
           if isinstance(m, layers) and m.weight.numel() > 10000]
    for w in big:
        assert abs(w.mean().item()) < 2e-3 and w.std().item() == pytest.approx(0.02, rel=0.05)
    bns = [m for net in nets.values() for m in net.modules()
           if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    scale = torch.cat([m.weight.detach() for m in bns])
    assert scale.mean().item() == pytest.approx(1.0, abs=3e-3)
    assert scale.std().item() == pytest.approx(0.02, rel=0.15)


def test_params_validation_and_unsupported_inputs():
    assert InfoGANNetParams().z_dim == 62 and InfoGANNetParams().z_dist == "uniform"
    for bad in ({"ngf": 0}, {"leak": 1.0}, {"q_hidden": -1}, {"width": 3}):
        with pytest.raises(ValidationError):
            InfoGANNetParams(**bad)
    with pytest.raises(ConfigError, match="28x28 or 32x32"):
        build(64, 1)
    with pytest.raises(ConfigError, match="1- or 3-channel"):
        build(28, 2)
    with pytest.raises(ConfigError, match="cannot build a translator"):
        build_nets(InfoGANFamily, InfoGANNetParams(), DataInfo("image", (1, 28, 28)),
                   {"T": TranslatorRole()})
    assert "infogan" in NETWORKS.names()
    with pytest.raises(ConfigError, match="infogan network takes image data; ring is toy2d"):
        validate({"data": {"name": "ring"}, "model": {"name": "infogan"},   # at validation
                  "objective": {"name": "infogan"}})


def mnist_root() -> Path | None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    for root in (os.environ.get("GANKIT_DATA"), shared):
        if root and (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").exists():
            return Path(root)
    return None


def test_infogan_objective_trains_two_steps_through_api(tmp_path):
    root = mnist_root()
    if root is None:
        pytest.skip("MNIST files not available (set GANKIT_DATA)")
    from gankit import api
    cfg = validate({"data": {"name": "mnist", "root": str(root), "size": 28},
                    "model": {"name": "infogan"} | SMALL,
                    "objective": {"name": "infogan", "categorical": 10, "continuous": 2},
                    "train": {"steps": 2, "batch_size": 8},
                    "log": {"progress": False, "sample_at": [], "n_fixed": 10}})
    run = api.train(cfg, tmp_path / "run")
    rows = run.read_metrics()
    assert rows and all(math.isfinite(v) for r in rows for k, v in r.items()
                        if isinstance(v, float))
    assert sorted(p.name for p in (tmp_path / "run" / "plots").glob("infogan_*.png")) == \
        ["infogan_c1.png", "infogan_c2.png", "infogan_c3.png"]
