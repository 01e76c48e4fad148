"""Image-to-image translation: networks, image maths, pool, data layouts, objectives,
training and exact resume, the sample page and ``gankit translate``."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.config import build_config
from gankit.core.roles import GeneratorRole, build_nets
from gankit.core.step import StepContext
from gankit.data import translation as T
from gankit.errors import ConfigError, DataError
from gankit.nn.translation import (PatchDiscriminator, ResnetGenerator, TranslationFamily,
                                   TranslationParams, UnetGenerator, auto_d_layers,
                                   auto_unet_depth, patch_receptive_field)
from gankit.objectives.cyclegan import CycleGAN, CycleGANParams, ImagePool
from gankit.objectives.pix2pix import Pix2Pix, Pix2PixParams

TINY_MODEL = {"name": "translation", "ngf": 4, "ndf": 4, "n_blocks": 1}


# ---------------------------------------------------------------- networks
@pytest.mark.parametrize("hw", [(28, 28), (37, 50), (8, 8)])
def test_generators_keep_any_size(hw):
    x = torch.randn(2, 3, *hw)
    assert ResnetGenerator(3, 1, ngf=4, n_blocks=1)(x).shape == (2, 1, *hw)
    assert UnetGenerator(3, 1, auto_unet_depth(min(hw)), ngf=4, norm="instance")(x).shape \
        == (2, 1, *hw)
    y = ResnetGenerator(3, 3, ngf=4, n_blocks=1)(x)
    assert y.abs().max() <= 1                                   # tanh output


def test_patch_receptive_field_closed_form():
    assert [patch_receptive_field(n) for n in (1, 2, 3, 4)] == [16, 34, 70, 142]
    assert all(patch_receptive_field(n) == 9 * 2 ** n - 2 for n in range(1, 7))
    assert (auto_d_layers(256), auto_d_layers(128), auto_d_layers(64), auto_d_layers(28)) \
        == (3, 2, 1, 1)
    assert (auto_unet_depth(256), auto_unet_depth(32), auto_unet_depth(28)) == (8, 5, 4)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_patch_receptive_field_matches_gradient_support(n_layers):
    """One output logit depends on exactly an RF x RF window of the input."""
    torch.manual_seed(0)
    D = PatchDiscriminator(1, ndf=4, n_layers=n_layers, norm="none").double()
    for p in D.parameters():
        torch.nn.init.uniform_(p, 0.1, 0.2)                    # no accidental zeros
    x = torch.randn(1, 1, 80, 80, dtype=torch.float64, requires_grad=True)
    out = D(x)                                                  # (1, 1, h, w)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    assert rows.max() - rows.min() + 1 == patch_receptive_field(n_layers)


def test_family_builds_roles_with_domain_channels():
    info = T.TranslationInfo("paired", (1, 16, 16), shape_b=(3, 16, 16))
    params = TranslationParams(**TINY_MODEL | {"generator": "unet"})
    nets = build_nets(TranslationFamily, params, info, Pix2Pix.roles(None, info, None))
    a, b = torch.randn(2, 1, 16, 16), torch.randn(2, 3, 16, 16)
    assert nets["G"](a).shape == b.shape
    assert nets["D"](torch.cat([a, b], 1)).shape[:2] == (2, 1)  # reads A and B: 4 channels
    with pytest.raises(ConfigError, match="cannot build a generator"):
        build_nets(TranslationFamily, params, info, {"G": GeneratorRole(z_dim=2)})


# ---------------------------------------------------------------- image maths
def test_erode_dilate_plus_element():
    x = torch.zeros(1, 1, 7, 7)
    x[..., 3, 3] = 1
    assert erode_sum(x) == 0                                    # a dot disappears
    d = T.dilate(x)
    assert d.sum() == 5 and d[0, 0, 2, 3] == d[0, 0, 3, 2] == 1 and d[0, 0, 2, 2] == 0
    bar = torch.zeros(1, 1, 9, 9)
    bar[..., 3:6] = 1                                           # 3 px wide vertical bar
    assert T.erode(bar)[0, 0, 4].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert T.dilate(bar)[0, 0, 4].sum() == 5
    soft = T.erode(bar * 255, softness=96)[0, 0, 4]            # edges drop to dark + 96 only
    assert soft.tolist() == [0, 0, 0, 96, 255, 96, 0, 0, 0]
    assert torch.equal(T.erode(bar * 255, softness=255), bar * 255)   # arms too low: identity


def erode_sum(x):
    return float(T.erode(x).sum())


def test_sobel_closed_form_and_edges():
    flat = torch.full((1, 1, 6, 6), 0.7)
    assert T.sobel_magnitude(flat).abs().max() == 0
    step = torch.zeros(1, 1, 6, 6)
    step[..., 3:] = 1                                           # unit step between cols 2, 3
    mag = T.sobel_magnitude(step)[0, 0]
    assert torch.allclose(mag[:, 2], torch.full((6,), 4.0))     # 1 + 2 + 1
    assert torch.allclose(mag[:, 3], torch.full((6,), 4.0)) and mag[:, 0].sum() == 0
    edges = T.edge_map((step * 255).to(torch.uint8))
    assert edges.dtype == torch.uint8 and set(edges.unique().tolist()) == {0, 255}


def test_split_halves_disjoint_and_complete():
    a, b = T.split_halves(101)
    assert len(a) == 50 and len(b) == 51
    assert set(a.tolist()).isdisjoint(b.tolist())
    assert sorted(a.tolist() + b.tolist()) == list(range(101))
    assert torch.equal(T.split_halves(101)[0], a)               # fixed, whatever the run seed


def test_random_crop_is_a_window_of_each_image():
    x = torch.arange(3 * 2 * 10 * 12, dtype=torch.float32).view(3, 2, 10, 12)
    gen = torch.Generator().manual_seed(1)
    out = T.random_crop(x, 6, gen)
    assert out.shape == (3, 2, 6, 6)
    for i in range(3):
        top = int((out[i, 0, 0, 0] // 12) % 10)
        left = int(out[i, 0, 0, 0] % 12)
        assert torch.equal(out[i], x[i, :, top:top + 6, left:left + 6])


# ---------------------------------------------------------------- the image pool
def reference_pool(pool_size, batches, rng_seed):
    """The reference implementation's loop, with the same random draws."""
    rng = torch.Generator().manual_seed(rng_seed)
    stored, outs = [], []
    for images in batches:
        swap = (torch.rand(len(images), generator=rng) > 0.5).tolist()
        slot = torch.randint(pool_size, (len(images),), generator=rng).tolist()
        out = []
        for i, im in enumerate(images):
            if len(stored) < pool_size:
                stored.append(im.clone())
                out.append(im)
            elif swap[i]:
                out.append(stored[slot[i]].clone())
                stored[slot[i]] = im.clone()
            else:
                out.append(im)
        outs.append(torch.stack(out))
    return outs


def test_pool_matches_reference_and_resumes_exactly():
    batches = [torch.full((3, 1, 2, 2), float(i)) + torch.arange(3.0).view(3, 1, 1, 1) / 10
               for i in range(8)]
    expected = reference_pool(5, batches, 7)
    pool, rng = ImagePool(5), torch.Generator().manual_seed(7)
    got = []
    for i, b in enumerate(batches):
        if i == 4:                                   # checkpoint and restore mid-way
            state = {k: v.clone() for k, v in pool.state_dict().items()}
            rng_state = rng.get_state()
            pool, rng = ImagePool(5), torch.Generator()
            pool.load_state_dict(state)
            rng.set_state(rng_state)
            assert pool.count == 5
        got.append(pool.query(b, rng))
    for g, e in zip(got, expected):
        assert torch.equal(g, e)
    assert any(not torch.equal(g, b) for g, b in zip(got, batches))   # history was used


def test_pool_fill_and_zero_size():
    pool = ImagePool(4)
    x = torch.randn(3, 1, 2, 2)
    assert torch.equal(pool.query(x, torch.Generator()), x) and pool.count == 3
    assert pool.state_dict()["count"].item() == 3
    assert torch.equal(ImagePool(0).query(x, None), x)


# ---------------------------------------------------------------- losses
def _nets(info, objective_cls, params):
    torch.manual_seed(0)
    return build_nets(TranslationFamily, TranslationParams(**TINY_MODEL), info,
                      objective_cls.roles(params, info, None))


def test_cyclegan_losses_match_formulas():
    info = T.TranslationInfo("unpaired", (1, 12, 12), shape_b=(1, 12, 12))
    params = CycleGANParams(pool_size=0)
    nets = _nets(info, CycleGAN, params)
    obj = CycleGAN(params, nets, None, info)
    batch = {"a": torch.rand(2, 1, 12, 12) * 2 - 1, "b": torch.rand(2, 1, 12, 12) * 2 - 1}
    a, b = batch["a"], batch["b"]
    G, F, DA, DB = nets["G_AB"], nets["G_BA"], nets["D_A"], nets["D_B"]
    ctx = StepContext.standalone(batch, torch.Generator())
    loss_g, s = obj.loss_G(ctx)
    expect = ((DB(G(a)) - 1) ** 2).mean() + ((DA(F(b)) - 1) ** 2).mean() \
        + 10 * ((F(G(a)) - a).abs().mean() + (G(F(b)) - b).abs().mean()) \
        + 5 * ((G(b) - b).abs().mean() + (F(a) - a).abs().mean())
    assert torch.allclose(loss_g, expect, atol=1e-5)
    loss_d, s = obj.loss_D(ctx)                                 # fakes from the G phase
    with torch.no_grad():
        expect_d = 0.5 * (((DB(b) - 1) ** 2).mean() + (DB(G(a)) ** 2).mean()) \
            + 0.5 * (((DA(a) - 1) ** 2).mean() + (DA(F(b)) ** 2).mean())
    assert torch.allclose(loss_d, expect_d, atol=1e-5)
    assert set(s) >= {"loss/D", "loss/D_A", "loss/D_B"}
    loss_d2, _ = obj.loss_D(StepContext.standalone(batch, torch.Generator()))  # translates itself
    assert torch.allclose(loss_d2, expect_d, atol=1e-5)


def test_pix2pix_losses_match_formulas():
    info = T.TranslationInfo("paired", (1, 16, 16), shape_b=(1, 16, 16))
    params = Pix2PixParams()
    nets = _nets(info, Pix2Pix, params)
    obj = Pix2Pix(params, nets, None, info)
    nets["G"].eval()                                            # no dropout noise
    a, b = torch.rand(2, 1, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1
    fake = nets["G"](a)
    logit = nets["D"](torch.cat([a, fake], 1))
    expect = torch.nn.functional.softplus(-logit).mean() + 100 * (fake - b).abs().mean()
    loss, s = obj.loss_G(StepContext.standalone({"a": a, "b": b}))
    assert torch.allclose(loss, expect, atol=1e-5)
    d_loss, _ = obj.loss_D(StepContext.standalone({"a": a, "b": b}))
    real = nets["D"](torch.cat([a, b], 1))
    sp = torch.nn.functional.softplus
    assert torch.allclose(d_loss, 0.5 * (sp(-real).mean() + sp(logit).mean()), atol=1e-5)


def test_objectives_refuse_wrong_data():
    with pytest.raises(ConfigError, match="cyclegan objective trains on unpaired or paired data"):
        build_config("ring", ["objective=cyclegan"])
    with pytest.raises(ConfigError, match="pix2pix objective trains on paired data; "
                                          "mnist-strokes is unpaired"):
        build_config("cyclegan-strokes", ["objective=pix2pix"])
    rgb = T.TranslationInfo("unpaired", (1, 16, 16), shape_b=(3, 16, 16))
    with pytest.raises(ConfigError, match="lambda_identity=0"):
        CycleGAN(CycleGANParams(), {"x": torch.nn.Linear(1, 1)}, None, rgb)


# ---------------------------------------------------------------- data
def test_paired_source_keeps_pairs_through_flips_and_crops():
    a = torch.randint(0, 256, (20, 1, 12, 12), dtype=torch.uint8)
    src = T.TranslationSource(a, 255 - a, paired=True, seed=3, flip=True, size=8)
    for _ in range(3):
        batch = src.next_batch(7)
        assert batch["a"].shape == (7, 1, 8, 8)
        assert torch.allclose(batch["b"], -batch["a"], atol=1e-6)   # 255 - x maps to -x
    assert src.info.kind == "paired" and src.info.shape_b == (1, 8, 8)


def test_unpaired_source_resumes_exactly():
    a = torch.randint(0, 256, (9, 1, 10, 10), dtype=torch.uint8)
    b = torch.randint(0, 256, (7, 3, 10, 10), dtype=torch.uint8)
    src = T.TranslationSource(a, b, paired=False, seed=1, flip=True, size=8)
    src.next_batch(4)
    state = src.state_dict()
    want = [src.next_batch(5) for _ in range(3)]
    again = T.TranslationSource(a, b, paired=False, seed=1, flip=True, size=8)
    again.load_state_dict(state)
    for w in want:
        got = again.next_batch(5)
        assert torch.equal(got["a"], w["a"]) and torch.equal(got["b"], w["b"])
    assert want[0]["b"].shape == (5, 3, 8, 8)


def _img(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    chans = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], chans), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if mode == "L" else arr, mode).save(path)


def make_unpaired(root: Path) -> Path:
    sizes = [(40, 30), (17, 50), (64, 64), (20, 20)]
    for i, s in enumerate(sizes):
        _img(root / "trainA" / f"a{i}.png", s, seed=i)
        ext = "png" if i == 1 else "jpg"                        # RGBA only as PNG
        _img(root / "trainB" / f"b{i}.{ext}", s[::-1], "RGBA" if i == 1 else "L", seed=10 + i)
    _img(root / "testA" / "t.png", (33, 21), seed=99)
    (root / "trainB" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def make_paired(root: Path, layout: str) -> Path:
    for i, (w, h) in enumerate([(60, 30), (45, 40), (32, 16)]):
        if layout == "side-by-side":
            _img(root / "train" / f"{i}.jpg", (w, h), seed=i)
        else:
            _img(root / "A" / f"{i}.png", (w, h), seed=i)
            _img(root / "B" / f"{i}.png", (w // 2, h), "L", seed=i)
    if layout == "folders":
        _img(root / "A" / "lonely.png", (20, 20))
    return root


def test_unpaired_folder_any_sizes(tmp_path):
    root = make_unpaired(tmp_path / "u")
    p = T.UnpairedFolder.Params(path=str(root), size=16, load_size=20, channels=3, channels_b=1)
    with pytest.warns(UserWarning, match="skipped 1 of 5"):
        src = T.UnpairedFolder.build(p, seed=0)
    batch = src.next_batch(5)
    assert batch["a"].shape == (5, 3, 16, 16) and batch["b"].shape == (5, 1, 16, 16)
    assert src.info.examples_a.shape == (1, 3, 16, 16)         # testA's one image
    assert src.info.examples_b.shape == (4, 1, 16, 16)         # no testB: training images
    assert -1 <= float(batch["a"].min()) and float(batch["a"].max()) <= 1
    assert T.UnpairedFolder.describe(p).shape_b == (1, 16, 16)
    with pytest.raises(DataError, match="trainA"):
        T.UnpairedFolder.build(T.UnpairedFolder.Params(path=str(tmp_path)), seed=0)


@pytest.mark.parametrize("layout", ["side-by-side", "folders"])
def test_paired_folder_layouts(tmp_path, layout):
    root = make_paired(tmp_path / layout, layout)
    p = T.PairedFolder.Params(path=str(root), size=12, channels=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        src = T.PairedFolder.build(p, seed=0)
    assert (layout == "folders") == any("no partner" in str(w.message) for w in caught)
    assert len(src) == 3
    batch = src.next_batch(2)
    assert batch["a"].shape == batch["b"].shape == (2, 1, 12, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        swapped = T.PairedFolder.build(p.model_copy(update={"swap": True, "flip": False}), seed=0)
        plain = T.PairedFolder.build(p.model_copy(update={"flip": False}), seed=0)
    assert torch.equal(swapped.info.examples_a, plain.info.examples_b)


def test_folder_params_validate():
    with pytest.raises(ValueError, match="load_size"):
        T.UnpairedFolder.Params(path="x", size=64, load_size=32)


# ---------------------------------------------------------------- training end to end
def tiny_config(kind: str, root: Path, steps: int = 4, figures: bool = True, **extra):
    from gankit.config import validate
    data = ({"name": "unpaired-folder", "path": str(root), "size": 16, "load_size": 18,
             "channels": 1} if kind == "cyclegan" else
            {"name": "paired-folder", "path": str(root), "size": 12, "channels": 1})
    raw = {"data": data, "model": TINY_MODEL | ({"generator": "unet"} if kind == "pix2pix" else {}),
           "objective": {"name": kind} | extra,
           "train": {"steps": steps, "batch_size": 3},
           "log": {"every": 1, "sample_at": [1, 2], "sample_every": 100, "n_fixed": 4,
                   "ckpt_every": 2, "progress": False, "figures": figures}}
    return validate(raw)


@pytest.fixture
def folders(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"cyclegan": make_unpaired(tmp_path / "u"),
                "pix2pix": make_paired(tmp_path / "p", "side-by-side")}


def straight_and_resumed(cfg, out: Path):
    """A 4-step run in one go, and the same run stopped after 2 steps then resumed."""
    from gankit import api
    from gankit.train.trainer import Trainer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        straight = Trainer(cfg)
        straight.fit()
        half = cfg.model_copy(update={"log": cfg.log.model_copy(update={"figures": False})})
        run = api.train(half, out, until=2)
        resumed = api.resume(run.path, overrides=["log.figures=true"])
        _, trainer, _ = api.load_trainer(resumed.path)
    assert trainer.c.step == 4
    for name, net in straight.nets.items():
        for (k, v), w in zip(net.state_dict().items(), trainer.nets[name].state_dict().values()):
            assert torch.equal(v, w), f"{name}.{k}"
    return straight, trainer, resumed


def test_cyclegan_resume_is_exact(tmp_path, folders):
    cfg = tiny_config("cyclegan", folders["cyclegan"], steps=4, pool_size=4)
    assert cfg.optim["G"].schedule == "linear" and cfg.optim["D"].decay_start == 0.5
    straight, trainer, resumed = straight_and_resumed(cfg, tmp_path / "run")
    mine, theirs = straight.objective.state_dict(), trainer.objective.state_dict()
    assert mine.keys() == theirs.keys() and int(mine["pool_A/count"]) == 4
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    page = (resumed.path / "report.html").read_text()              # written on resume too
    assert "step 4" in page and "step 1" in page and "rec_A" in page
    assert (resumed.path / "plots" / "translations.png").exists()


def test_pix2pix_resume_with_dropout_is_exact(tmp_path, folders):
    cfg = tiny_config("pix2pix", folders["pix2pix"], steps=4)
    assert cfg.model.unet_dropout == 0.5                        # torch's RNG is checkpointed
    straight_and_resumed(cfg, tmp_path / "run")


def test_pix2pix_trains_and_translates_a_folder(tmp_path, folders):
    from gankit import api
    from gankit.cli import main
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = api.train(tiny_config("pix2pix", folders["pix2pix"], steps=2, figures=False),
                        tmp_path / "run")
    page = (run.path / "report.html").read_text()
    assert "real_B" in page and "rec_A" not in page
    inputs = tmp_path / "in"
    _img(inputs / "x.jpg", (50, 31))
    _img(inputs / "sub" / "y.png", (9, 70), "L")
    (inputs / "bad.png").write_bytes(b"")
    from gankit.translate import translate_folder
    with pytest.warns(UserWarning, match="1 empty"):
        n = translate_folder(run.path, inputs, "AtoB", tmp_path / "out")
    assert n == 2
    out = Image.open(tmp_path / "out" / "sub" / "y.png")
    assert out.size == (12, 12) and out.mode == "L"
    with pytest.raises(SystemExit) as e:
        main(["translate", str(run.path), "--input", str(inputs), "--direction", "BtoA",
              "--out", str(tmp_path / "o2")])
    assert e.value.code == 2


def test_translate_cli_cyclegan_both_directions(tmp_path, folders, capsys):
    from gankit import api
    from gankit.cli import main
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = api.train(tiny_config("cyclegan", folders["cyclegan"], steps=1, figures=False),
                        tmp_path / "run")
        for direction in ("AtoB", "BtoA"):
            main(["translate", str(run.path), "--input", str(folders["cyclegan"] / "testA"),
                  "--direction", direction, "--out", str(tmp_path / direction)])
    assert "translated 1 images" in capsys.readouterr().out
    assert Image.open(tmp_path / "BtoA" / "t.png").size == (16, 16)


def test_sample_command_draws_translations(tmp_path, folders):
    from gankit import api
    from gankit.cli import main
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = api.train(tiny_config("cyclegan", folders["cyclegan"], steps=1, figures=False),
                        tmp_path / "run")
        main(["sample", str(run.path), "--n", "20", "--out", str(tmp_path / "s.png")])
    assert Image.open(tmp_path / "s.png").width > 0
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".html"] == []   # pages: runs only


# ---------------------------------------------------------------- the demos (local MNIST)
def test_demo_domains(data_root):
    strokes = T.mnist_strokes("test", str(data_root))
    assert len(strokes["a"]) == len(strokes["b"]) == 5000
    ink = lambda x: x.float().sum((1, 2, 3)).mean()             # noqa: E731
    assert ink(strokes["a"]) < 0.5 * ink(strokes["b"])           # thin vs bold
    edges = T.fashion_edges("test", str(data_root))
    assert edges["a"].shape == edges["b"].shape == (10000, 1, 28, 28)
    assert math.isclose(float((edges["a"] > 0).float().mean()), 0.2, abs_tol=0.15)


def test_presets_validate():
    from gankit.config import build_config
    strokes = build_config("cyclegan-strokes")
    assert strokes.objective.lambda_cycle == 10 and strokes.optim["G"].schedule == "linear"
    assert build_config("pix2pix-edges").objective.lambda_l1 == 100
    folder = build_config("cyclegan-folder", ["data.path=somewhere"])
    assert (folder.data.size, folder.data.load_size, folder.model.n_blocks) == (256, 286, 9)
    assert build_config("pix2pix-folder", ["data.path=x"]).model.generator == "unet"


def test_translate_keeps_names_writes_a_sheet_and_takes_a_size(tmp_path, folders):
    from cli_runner import run_cli
    from gankit import api
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = api.train(tiny_config("cyclegan", folders["cyclegan"], steps=1, figures=False),
                        tmp_path / "run")
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    Image.new("L", (20, 20), 30).save(inputs / "a.jpg")
    Image.new("L", (20, 20), 200).save(inputs / "sub" / "b.png")
    (inputs / "sub" / "broken.png").write_bytes(b"not a png")
    code, out, err = run_cli(["translate", str(run.path), "--input", str(inputs),
                              "--out", str(tmp_path / "o"), "--size", "24"])
    assert code == 0, err
    assert "skipped 1 of 3 files" in err and "(sub/broken.png)" in err      # named
    assert Image.open(tmp_path / "o" / "a.jpg").format == "JPEG"          # same name, format
    assert Image.open(tmp_path / "o" / "sub" / "b.png").size == (24, 24)   # --size
    assert "trained at 16 px" in out and (tmp_path / "o" / "translation-sheet.png").exists()
    from gankit.run import RunDir
    from gankit.translate import translates
    assert translates(RunDir.open(run.path).read_config().objective)   # summary: translate
    page = (run.path / "report.html").read_text()
    assert "paired target" not in page                       # CycleGAN's data are unpaired
    # --size 4096 was allowed and took ~23 GB (killed): at most 1024, refused in one line
    code, out, err = run_cli(["translate", str(run.path), "--input", str(inputs),
                              "--out", str(tmp_path / "o2"), "--size", "4096"])
    assert code == 2 and "--size 4096: at most 1024 px" in err and err.count("\n") == 1, err
    assert not (tmp_path / "o2").exists()


# ---------------------------------------------------------------- inputs unlike the training domain
def test_image_features_and_ranges_closed_forms():
    from gankit.translate import TOLERANCE, image_features, unlike
    white = torch.ones(1, 1, 28, 28)
    np.testing.assert_allclose(image_features(white), [[1.0, 1.0, 0.0]])
    square = -torch.ones(1, 3, 28, 28)                       # black, an 8 x 8 white square
    square[:, :, 10:18, 10:18] = 1
    p = 64 / 784
    np.testing.assert_allclose(image_features(square), [[p, 0.0, math.sqrt(p * (1 - p))]],
                               rtol=1e-5)
    digits = [[0.03, 0.21], [0.0, 0.01], [0.1, 0.36]]       # thin MNIST strokes, measured
    assert unlike(image_features(square), digits) == [""]
    why = unlike(image_features(white), digits)[0]
    assert "mean intensity 1.00, training 0.03-0.21" in why and "border intensity" in why
    edge = np.array([[0.21 + TOLERANCE - 1e-6, 0.0, 0.2]])  # within the tolerance: fine
    assert unlike(edge, digits) == [""]


def test_translate_warns_for_a_white_background_digit(tmp_path, data_root, monkeypatch):
    """A translator trained on white-on-black MNIST strokes: an inverted digit is named in
    one warning line and still translated; a normal digit passes. The domain's ranges are
    kept in the run folder, so the check needs no data the second time."""
    import json

    from cli_runner import run_cli
    from gankit import api
    from gankit import translate as translate_mod
    from gankit.data.idx import load_mnist
    cfg = build_config("cyclegan-strokes", ["model.ngf=4", "model.ndf=4", "model.n_blocks=1",
                                            "train.steps=1", "train.batch_size=2",
                                            "log.progress=false", "train.threads=1"])
    run = api.train(cfg, tmp_path / "run")
    digit = load_mnist("test", str(data_root), "mnist").images[0, 0].numpy()   # a 7
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(digit).save(inputs / "digit.png")
    Image.fromarray(255 - digit).save(inputs / "white.png")
    for attempt in ("first", "cached"):
        out = tmp_path / f"out-{attempt}"
        code, stdout, err = run_cli(["translate", str(run.path), "--input", str(inputs),
                                     "--out", str(out)])
        assert code == 0, err
        assert (out / "digit.png").is_file() and (out / "white.png").is_file()
        assert "translated 2 images" in stdout
        lines = [line for line in err.splitlines() if "unlike" in line]
        assert len(lines) == 1, err
        assert lines[0].startswith("gankit: warning: 1 of 2 inputs") and "white.png" in lines[0]
        assert "digit.png" not in lines[0] and "border intensity" in lines[0]
        stats = json.loads((run.path / translate_mod.DOMAIN_STATS).read_text())
        assert stats["AtoB"]["n"] == translate_mod.REFERENCE_N
        monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "no-data"))    # no data from now on
        T.mnist_strokes.cache_clear()
