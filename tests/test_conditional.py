"""cGAN, AC-GAN and InfoGAN: roles, sampling inputs, losses against closed forms, and a few
training steps of every image preset at tiny sizes."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gankit.config import build_config
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.core.roles import build_nets
from gankit.core.step import Latent, StepContext
from gankit.objectives.conditional import ACGAN, CGAN, ACGANParams, CGANParams
from gankit.objectives.infogan import InfoGAN, InfoGANParams
from gankit.registry import NETWORKS
from gankit.train.trainer import Trainer

LABELLED = DataInfo("image", (1, 28, 28), num_classes=10)


def objective(cls, params, network="dcgan", info=LABELLED, **model):
    model = {"name": network, "z_dim": 8} | model
    if network == "dcgan":
        model |= {"ngf": 8, "ndf": 8}
    family = NETWORKS.get(network)
    mp = family.Params(**model)
    nets = build_nets(family, mp, info, cls.roles(params, info, Latent(mp.z_dim)))
    return cls(params, nets, Latent(mp.z_dim), info)


@pytest.mark.parametrize("network", ["dcgan", "mlp"])
@pytest.mark.parametrize("cls,params", [(CGAN, CGANParams()), (ACGAN, ACGANParams()),
                                        (InfoGAN, InfoGANParams())])
def test_sampling_shapes_and_finite_losses(network, cls, params):
    obj = objective(cls, params, network)
    gen = torch.Generator().manual_seed(0)
    inputs = obj.sample_inputs(6, gen)
    assert inputs["z"].shape == (6, 8)
    if cls is InfoGAN:
        assert inputs["c_cat"].shape == (6,) and inputs["c_cat"].dtype == torch.int64
        assert inputs["c_cont"].shape == (6, 2) and inputs["c_cont"].abs().max() <= 1
    else:
        assert inputs["y"].shape == (6,) and int(inputs["y"].max()) < 10
    assert obj.generate(inputs).shape == (6, 1, 28, 28)
    batch = {"x": torch.rand(6, 1, 28, 28) * 2 - 1, "y": torch.randint(10, (6,))}
    for phase in obj.phase_names(params):
        loss, scalars = obj.loss(phase, StepContext.standalone(batch, gen))
        assert loss.ndim == 0 and torch.isfinite(loss)
        assert all(torch.isfinite(v) for v in scalars.values())


def test_conditional_objectives_need_labels():
    unlabelled = DataInfo("image", (1, 28, 28))
    for cls, params in ((CGAN, CGANParams()), (ACGAN, ACGANParams())):
        with pytest.raises(ConfigError, match="labelled data"):
            cls.roles(params, unlabelled, Latent(8))


def test_roles():
    assert CGAN.roles(CGANParams(), LABELLED, Latent(8))["D"].num_classes == 10
    acgan = ACGAN.roles(ACGANParams(), LABELLED, Latent(8))
    assert (acgan["G"].num_classes, acgan["D"].out_dim, acgan["D"].num_classes) == (10, 11, 0)
    info = InfoGAN.roles(InfoGANParams(), LABELLED, Latent(8))
    assert (info["G"].code_dim, info["D"].out_dim) == (12, 13)
    gauss = InfoGAN.roles(InfoGANParams(cont_loss="gaussian", continuous=3), LABELLED, Latent(8))
    assert gauss["D"].out_dim == 1 + 10 + 6


class ConstantCritic(nn.Module):
    """A critic whose outputs are fixed rows, to check losses against closed forms."""

    def __init__(self, row: torch.Tensor):
        super().__init__()
        self.row = row
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, y=None):
        return self.row.expand(x.shape[0], -1) + 0 * self.dummy


def test_acgan_loss_closed_form():
    obj = objective(ACGAN, ACGANParams(aux_weight=0.5))
    obj.nets["D"] = ConstantCritic(torch.zeros(11))        # D = 1/2, uniform class guess
    ctx = StepContext.standalone({"x": torch.zeros(4, 1, 28, 28), "y": torch.arange(4)})
    loss_d, logs = obj.loss_D(ctx)
    assert loss_d.item() == pytest.approx(2 * math.log(2) + 0.5 * 2 * math.log(10), rel=1e-5)
    assert logs["D(x)"].item() == pytest.approx(0.5)
    loss_g, _ = obj.loss_G(ctx)
    assert loss_g.item() == pytest.approx(math.log(2) + 0.5 * math.log(10), rel=1e-5)


def test_infogan_info_loss_closed_form():
    obj = objective(InfoGAN, InfoGANParams(categorical=3, continuous=2))
    inputs = {"c_cat": torch.tensor([0, 2]), "c_cont": torch.tensor([[0.5, -0.5], [1.0, 0.0]])}
    q = torch.zeros(2, 5)                                   # uniform categorical, mu = 0
    loss, logs = obj.info_loss(q, inputs)
    cont = 0.5 * (0.25 + 0.25 + 1.0 + 0.0) / 2             # mean over samples of sum over codes
    assert loss.item() == pytest.approx(math.log(3) + cont, rel=1e-6)
    perfect = torch.tensor([[50.0, 0, 0, 0.5, -0.5], [0, 0, 50.0, 1.0, 0.0]])
    assert obj.info_loss(perfect, inputs)[0].item() == pytest.approx(0.0, abs=1e-6)
    # the learned-sigma Gaussian: NLL = 0.5 ((c - mu) / sigma)^2 + log sigma
    g = objective(InfoGAN, InfoGANParams(categorical=0, continuous=1, cont_loss="gaussian"))
    q = torch.tensor([[0.0, math.log(2.0)]])
    nll, _ = g.info_loss(q, {"c_cat": torch.zeros(1, dtype=torch.int64),
                             "c_cont": torch.tensor([[1.0]])})
    assert nll.item() == pytest.approx(0.5 / 4 + math.log(2.0), rel=1e-6)


def test_infogan_q_noise_reads_a_noisy_copy_of_the_fakes():
    obj = objective(InfoGAN, InfoGANParams(categorical=3, continuous=1, q_noise=0.4))
    fake = torch.rand(4, 1, 28, 28) * 2 - 1
    out = obj.nets["D"](fake)
    assert torch.equal(objective(InfoGAN, InfoGANParams()).q_out(fake, out, None), out[:, 1:])
    obj.nets["D"].eval()                                        # same BN maths for both passes
    noisy = obj.q_out(fake, obj.nets["D"](fake), torch.Generator().manual_seed(3))
    eps = torch.randn(fake.shape, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(noisy, obj.nets["D"](fake + 0.4 * eps)[:, 1:])
    assert noisy.shape == (4, 4)


def test_infogan_needs_a_code():
    with pytest.raises(ValueError, match="at least one code"):
        InfoGANParams(categorical=0, continuous=0)


# ------------------------------------------------------------------ presets, tiny
def data_root() -> Path | None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    for root in (os.environ.get("GANKIT_DATA"), shared):
        if root and (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").exists():
            return Path(root)
    return None


def image_folder(root: Path, size: int, channels: int, classes: int = 2, per_class: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        sub = root / f"class{c}"
        sub.mkdir(parents=True)
        for i in range(per_class):
            shape = (size, size) if channels == 1 else (size, size, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(sub / f"{i}.png")
    return root


TINY = ["train.steps=2", "train.batch_size=8", "log.progress=false"]
DCGAN_TINY = ["model.ngf=8", "model.ndf=8"]


@pytest.mark.parametrize("preset", ["dcgan-mnist", "dcgan-fashion", "cgan-mnist", "acgan-mnist",
                                    "infogan-mnist", "gan-mlp-mnist"])
def test_mnist_presets_train_a_few_steps(preset):
    root = data_root()
    if root is None or (preset == "dcgan-fashion" and not (root / "fashion-mnist").exists()):
        pytest.skip("MNIST / Fashion-MNIST files not available (set GANKIT_DATA)")
    extra = [] if preset == "gan-mlp-mnist" else DCGAN_TINY
    if preset == "gan-mlp-mnist":
        extra = ["model.g_hidden=16", "model.d_hidden=16"]
    cfg = build_config(preset, TINY + extra + [f"data.root={root}"])
    run_steps(cfg)


@pytest.mark.parametrize("preset,size,channels", [("dcgan-folder", 32, 3),
                                                  ("dcgan-cifar10", 32, 3)])
def test_folder_presets_train_a_few_steps(preset, size, channels, tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    folder = image_folder(tmp_path / "images", size, channels)
    # CIFAR-10 itself is not downloaded in tests: its preset's network on a stand-in folder
    data = f"data={{name: folder, path: {folder}, size: {size}, channels: {channels}}}" \
        if preset == "dcgan-cifar10" else f"data.path={folder}"
    run_steps(build_config(preset, TINY + DCGAN_TINY + [data]))


def run_steps(cfg):
    trainer = Trainer(cfg)
    for _ in range(cfg.train.steps):
        trainer.train_step()
    scalars = trainer.pop_scalars()
    assert scalars and all(math.isfinite(v) for v in scalars.values())
    x = trainer.sample(5, seed=1)
    assert x.shape == (5, *trainer.data.info.shape)


# preset, steps, metric, floor. Full runs: cgan 96 % at 3000 steps, infogan 90.2 % at 3000 (seed 0)
# (benchmarks/RESULTS.md); infogan seed 0 scored 75.7 % at 500 steps.
EARLY_CHECKS = [("cgan-mnist", 1000, "ConditionalAccuracy", "conditional_accuracy", 0.6),
                ("infogan-mnist", 500, "ClassAgreement", "class_agreement", 0.6)]


@pytest.mark.slow
@pytest.mark.parametrize("preset,steps,metric,key,floor", EARLY_CHECKS)
def test_conditional_presets_learn_their_codes_quickly(preset, steps, metric, key, floor):
    """A short run of each preset (2-4 minutes on one free core): the shipped classifier
    agrees with the label / code for most samples. A loose regression guard, not the
    acceptance figure."""
    root = data_root()
    if root is None:
        pytest.skip("MNIST files not available (set GANKIT_DATA)")
    offline = pytest.importorskip("gankit.metrics.offline")
    from gankit.metrics.classifier import weights_path
    if not weights_path("mnist").exists():
        pytest.skip("the MNIST classifier weights are not shipped yet")
    cfg = build_config(preset, [f"train.steps={steps}", "log.progress=false",
                                "eval.metrics=[]", "eval.best_metric=null", f"data.root={root}"])
    trainer = Trainer(cfg)
    trainer.fit()
    score = getattr(offline, metric).evaluate(trainer, 2000)[key]
    assert score >= floor, score


def test_sample_label_draws_one_class(tmp_path, data_root):
    from cli_runner import run_cli
    from gankit import api

    run = tmp_path / "cgan"
    code, _, err = run_cli(["train", "cgan-mnist", "--steps", "2", "--out", str(run), "--quiet",
                            "--set", "data.split=test", "--set", "model.ngf=8",
                            "--set", "model.ndf=8", "--set", "log.sample_at=[]",
                            "--set", "log.figures=false"])
    assert code == 0, err
    _, trainer, _ = api.load_trainer(run)
    with trainer.fixed_label(3):
        assert trainer.inputs(5, torch.Generator().manual_seed(0))["y"].tolist() == [3] * 5
    assert api.sample(run, n=4, label=3).shape == (4, 1, 28, 28)
    code, out, _ = run_cli(["sample", str(run), "--label", "7", "--n", "6",
                            "--out", str(tmp_path / "s.png")])
    assert code == 0 and (tmp_path / "s.png").exists()
    code, _, err = run_cli(["sample", str(run), "--label", "10", "--out", str(tmp_path / "x.npy")])
    assert code == 2 and "--label must be a class of 0..9" in err and err.count("\n") == 1
    ring = tmp_path / "ring"
    assert run_cli(["train", "ring", "--steps", "2", "--out", str(ring), "--quiet"])[0] == 0
    code, _, err = run_cli(["sample", str(ring), "--label", "1", "--out", str(tmp_path / "r.npy")])
    assert code == 2 and "does not draw class-conditional samples" in err
