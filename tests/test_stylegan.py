"""The style-based generator (issue 15): the network's parts, truncation with the tracked
w_avg, style mixing, the sampling options of the CLI and API, and the style figures."""

from __future__ import annotations

import pytest
import torch

from cli_runner import run_cli
from gankit import api
from gankit.config import build_config
from gankit.data.base import DataInfo
from gankit.nn.stylegan import StyleGANDiscriminator, StyleGANGenerator, StyleGANParams
from gankit.objectives.stylegan import style_groups
from gankit.train.checkpoint import load_checkpoint, newest_intact

TINY = ["data.split=test", "model.z_dim=8", "model.w_dim=8", "model.mapping_layers=2",
        "model.ngf=4", "model.ndf=4", "model.max_channels=8", "train.batch_size=8",
        "log.progress=false", "log.n_fixed=4", "log.sample_at=[]", "log.figures=false"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_root):
    """A tiny stylegan-mnist run of 3 steps."""
    path = tmp_path_factory.mktemp("sg") / "run"
    api.train(build_config("stylegan-mnist", TINY + ["train.steps=3"]), path)
    return path


@pytest.mark.parametrize("upsample", ["bilinear", "transposed"])
@pytest.mark.parametrize("modulation", ["demod", "adain"])
@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 64, 64)])
def test_generator_and_critic_shapes(modulation, shape, upsample):
    p = StyleGANParams(z_dim=8, w_dim=8, mapping_layers=2, ngf=4, ndf=4, max_channels=8,
                       modulation=modulation, upsample=upsample)
    G, D = StyleGANGenerator(p, shape, 8), StyleGANDiscriminator(p, shape)
    x = G(torch.randn(4, 8))
    assert x.shape == (4, *shape) and D(x).shape == (4,)
    assert G.num_ws == 2 * (shape[1].bit_length() - 3) + 2          # 8 at 32 px, 10 at 64
    assert len(G.noise_shapes()) == G.num_ws - 1


def test_transposed_upsampling_is_the_bilinear_path_away_from_the_borders():
    """``upsample: transposed`` (StyleGAN2: stride-2 transposed convolution, then the
    [1, 3, 3, 1] filter with gain 4): both steps are linear and shift-invariant, so inside a
    2-pixel border it equals bilinear up-sampling then the convolution with the kernel
    flipped; the borders are symmetric; no state is added to checkpoints."""
    from gankit.nn.stylegan import StyleLayer
    torch.manual_seed(0)
    fast = StyleLayer(3, 2, 8, "demod", up=True, upsample="transposed")
    slow = StyleLayer(3, 2, 8, "demod", up=True)
    x, weight = torch.randn(2, 3, 6, 6), torch.randn(2, 3, 3, 3)
    y = fast.conv(x, weight)                                           # (2, 2, 12, 12)
    assert y.shape == (2, 2, 12, 12)
    torch.testing.assert_close(y[..., 2:-2, 2:-2],
                               slow.conv(x, weight.flip(2, 3))[..., 2:-2, 2:-2])
    flat = fast.conv(torch.ones(1, 3, 6, 6), torch.ones(2, 3, 3, 3))[0, 0]   # (12, 12)
    torch.testing.assert_close(flat, flat.flip(0, 1))
    torch.testing.assert_close(flat[2:-2, 2:-2], torch.full((8, 8), 27.0))  # gain: 3 x 9
    assert "blur" not in fast.state_dict()


def test_style_groups_split_coarse_middle_fine():
    assert style_groups([4, 8, 8, 16, 16, 32, 32, 32]) == {
        "coarse": (0, 3), "middle": (3, 5), "fine": (5, 8)}
    assert style_groups([4, 8, 8, 16, 16, 32, 32, 64, 64, 64])["middle"] == (3, 7)


def test_w_avg_is_tracked_and_checkpointed(run):
    state = load_checkpoint(newest_intact(run / "checkpoints")[0])
    w_avg = state["nets"]["G"]["mapping.w_avg"]
    assert w_avg.abs().sum() > 0                   # updated by the training forwards
    assert torch.equal(state["ema"]["G"]["mapping.w_avg"], w_avg) or "G" not in state["ema"]


def test_truncation_zero_gives_the_average_w_and_one_changes_nothing(run):
    _, model = api.load_model(run, device="cpu")
    obj = model.objective
    inputs = obj.sample_inputs(5, torch.Generator().manual_seed(0))
    ws = model.styles(obj.truncated(inputs, 0.0))
    assert torch.allclose(ws, model.sampler().w_avg.expand_as(ws))
    assert torch.allclose(model.styles(obj.truncated(inputs, 1.0)), model.styles(inputs))
    plain = api.sample(run, n=6, seed=1, device="cpu")
    assert torch.equal(api.sample(run, n=6, seed=1, device="cpu", truncation=1.0), plain)
    assert not torch.equal(api.sample(run, n=6, seed=1, device="cpu", truncation=0.5), plain)


def test_mixing_all_layers_from_b_is_b_with_a_noise(run):
    _, model = api.load_model(run, device="cpu")
    obj, gen = model.objective, torch.Generator().manual_seed(0)
    a, b = obj.sample_inputs(4, gen), obj.sample_inputs(4, gen)
    n = obj.num_ws()
    mixed = model.generate(obj.mixed(a, b, f"0-{n - 1}"))
    assert torch.allclose(mixed, model.generate({**a, "z": b["z"]}), atol=1e-6)
    coarse = model.generate(obj.mixed(a, b, "coarse"))
    assert not torch.allclose(coarse, mixed) and not torch.allclose(coarse, model.generate(a))


def test_sample_cli_truncation_and_mixing(run, tmp_path):
    code, out, err = run_cli(["sample", str(run), "--n", "4", "--truncation", "0.7",
                              "--mix-seed", "3", "--mix-layers", "fine",
                              "--out", str(tmp_path / "s.npy")])
    assert code == 0, err
    code, _, err = run_cli(["sample", str(run), "--mix-seed", "3", "--mix-layers", "9-99",
                            "--out", str(tmp_path / "t.npy")])
    assert code == 2 and err.count("\n") == 1 and "style layers" in err


def test_truncation_on_a_model_without_styles_is_one_line(tmp_path):
    path = tmp_path / "ring"
    api.train(build_config("ring", ["train.steps=2", "log.progress=false", "log.figures=false",
                                    "log.sample_at=[]"]), path)
    code, _, err = run_cli(["sample", str(path), "--truncation", "0.7",
                            "--out", str(tmp_path / "r.npy")])
    assert code == 2 and err.count("\n") == 1 and "style-based" in err


@pytest.mark.slow          # the contract test draws them too (tests/test_contract.py)
def test_style_figures_are_drawn(run, monkeypatch):
    monkeypatch.setenv("GANKIT_STRICT_FIGURES", "1")
    names = {p.name for p in api.plot(run, device="cpu")}
    assert {"style_mixing.png", "truncation.png", "noise_variation.png",
            "interpolation_zw.png"} <= names


def test_family_refuses_other_sizes():
    from gankit.core.roles import GeneratorRole, build_nets
    from gankit.errors import ConfigError
    from gankit.nn.stylegan import StyleGANFamily
    with pytest.raises(ConfigError, match="32x32 or 64x64"):
        build_nets(StyleGANFamily, StyleGANParams(), DataInfo("image", (1, 28, 28)),
                   {"G": GeneratorRole(z_dim=4)})


@pytest.mark.parametrize("interval, gamma, c", [(16, 1.0, 16 / 17), (4, 1.0, 4 / 5),
                                                (1, 1.0, 1.0), (16, 0.0, 1.0)])
def test_d_adam_is_corrected_for_the_lazy_r1_interval(interval, gamma, c):
    # StyleGAN2 appendix B: lr c and beta2^c with c = N / (N + 1) for R1 every N steps;
    # no correction when R1 is off or taken every step
    cfg = build_config("stylegan-mnist", [f"objective.r1_interval={interval}",
                                          f"objective.r1_gamma={gamma}"])
    assert cfg.optim["D"].lr == pytest.approx(0.0025 * c)
    assert cfg.optim["D"].betas[1] == pytest.approx(0.99 ** c)
    assert cfg.optim["G"].lr == pytest.approx(0.0025)
    given = build_config("stylegan-mnist", [f"objective.r1_interval={interval}",
                                            "optim.D.lr=0.001"])
    assert given.optim["D"].lr == 0.001                # the user's keys still win
