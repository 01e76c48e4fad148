"""``gankit score``: anomaly scores by the methods a model offers, their evaluation, refusals.

Hand computation: a VAE whose networks are all zero but the decoder's output bias b has
q(z|x) = N(0, I) = p(z) and p(x|z) = prod Bernoulli(sigmoid(b)) for every z, so every
importance weight equals p(x): the IW-NLL and the -ELBO both equal
-sum_i [x_i b - softplus(b)] exactly, for any k, and the complexity score is that over ln 2
minus the images' PNG bits. AUROC is checked against the pair count
P(s_anomalous > s_normal) + P(tie) / 2 and scikit-learn's roc_auc_score.
"""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from cli_runner import run_cli
from test_began import HalfAE
from gankit import api
from gankit.config import build_config
from gankit.outlier.evaluate import separation
from gankit.core.step import Latent
from gankit.data.base import DataInfo
from gankit.errors import GankitError
from gankit.objectives.began import BEGAN, BEGANParams
from gankit.objectives.wgan import WGANGP, WGANGPParams
from gankit.outlier.inputs import convert, image_shape
from gankit.outlier.methods import (
    METHODS,
    Options,
    critic_orientation,
    png_bits,
    run_batches,
)

TINY = ["train.steps=2", "train.batch_size=8", "train.threads=1", "log.figures=false",
        "log.progress=false", "log.sample_at=[]", "eval.metrics=[]", "data.split=test",
        "log.tensorboard=false"]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, data_root):
    cfg = build_config("vae-mnist", TINY + ["model.g_hidden=8", "model.d_hidden=8",
                                            "model.z_dim=2", "model.g_depth=1",
                                            "model.d_depth=1"])
    return api.train(cfg, tmp_path_factory.mktemp("runs") / "vae").path


def test_vae_scores_match_a_hand_computation(vae_run):
    _, model = api.load_model(vae_run, device="cpu")
    b = 0.3
    for name in ("encoder", "decoder"):
        for p in model.nets[name].parameters():
            nn.init.zeros_(p)
    last_bias = [p for n, p in model.nets["decoder"].named_parameters() if n.endswith("bias")][-1]
    nn.init.constant_(last_bias, b)
    x = torch.tensor([[0.0] * 784, [1.0] * 392 + [0.0] * 392]).view(2, 1, 28, 28) * 2 - 1
    ones = torch.tensor([0.0, 392.0])
    softplus = math.log1p(math.exp(b))
    expected = -(ones * b - 784 * softplus)                          # -log p(x), nats
    for method, k in (("nll", 7), ("elbo", 3)):
        got = run_batches(METHODS[method], model, x, Options(iw_samples=k))["score"]
        torch.testing.assert_close(got, expected.double(), rtol=1e-5, atol=1e-3)
    got = run_batches(METHODS["complexity"], model, x, Options(iw_samples=5))
    torch.testing.assert_close(got["score"], expected.double() / math.log(2) - png_bits(x),
                               rtol=1e-5, atol=1e-3)


def test_png_bits_is_the_lossless_png_length():
    from PIL import Image

    rng = np.random.default_rng(0)
    flat = np.zeros((28, 28), np.uint8)
    noise = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    x = torch.tensor(np.stack([flat, noise]))[:, None].float() / 127.5 - 1     # (2, 1, 28, 28)
    bits = png_bits(x)
    assert bits[0] < 8 * 100 < 8 * 28 * 28 < bits[1]     # flat: tiny; noise: incompressible
    for img, b in ((noise, bits[1]), (rgb, png_bits(torch.tensor(rgb).permute(2, 0, 1)[None]
                                                    .float() / 127.5 - 1)[0])):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", optimize=True)
        assert b == 8 * len(buf.getvalue())
        assert (np.asarray(Image.open(io.BytesIO(buf.getvalue()))) == img).all()
    with pytest.raises(ValueError, match="1 or 3"):
        png_bits(torch.zeros(1, 2, 4, 4))


def test_auroc_is_the_pair_probability_and_sklearns():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=300), 1)                       # ties on purpose
    anomalous = rng.random(300) < 0.3
    pos, neg = scores[anomalous], scores[~anomalous]
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    ev = separation(scores, anomalous)
    assert ev["auroc"] == pytest.approx(pairs, abs=1e-12)
    assert ev["auroc"] == pytest.approx(roc_auc_score(anomalous, scores), abs=1e-12)
    assert separation(-scores, anomalous)["auroc"] == pytest.approx(1 - pairs, abs=1e-12)
    assert ev["n_anomalous"] == anomalous.sum() and 0 < ev["auprc"] <= 1


def test_score_cli_writes_csv_summary_and_figures(vae_run, tmp_path):
    rng = np.random.default_rng(1)
    npz = tmp_path / "new.npz"
    np.savez(npz, images=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8))
    out = tmp_path / "out" / "scores.csv"
    code, stdout, err = run_cli(["score", str(vae_run), "--input", "mnist:test", "--limit", "10",
                                 "--outliers", str(npz), "--out", str(out), "--iw-samples", "4",
                                 "--device", "cpu"])
    assert code == 0, err
    assert "AUROC" in stdout and "10 normal, 6 anomalous" in stdout
    lines = out.read_text().splitlines()
    assert lines[0] == "name,input,score,method,anomalous" and len(lines) == 17
    assert lines[-1].startswith("new.npz[5],") and lines[-1].endswith(",nll,1")
    summary = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert summary["method"] == "nll" and summary["protocol"]["likelihood"]["iw_samples"] == 4
    for name in ("scores-most.png", "scores-least.png", "scores-hist.png"):
        assert (tmp_path / "out" / name).is_file()
    # scored again without a truth: the earlier histogram (its AUROC) does not stay beside
    code, stdout, err = run_cli(["score", str(vae_run), "--input", "mnist:test", "--limit", "4",
                                 "--out", str(out), "--iw-samples", "2", "--device", "cpu"])
    assert code == 0 and "AUROC" not in stdout, err
    assert not (tmp_path / "out" / "scores-hist.png").exists()
    assert "removed scores-hist.png: it showed the earlier scoring's truth" in stdout
    # a user's own file of that name beside an output that was never a scoring: kept
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "photos-hist.png").write_bytes(b"mine")
    code, stdout, err = run_cli(["score", str(vae_run), "--input", "mnist:test", "--limit", "4",
                                 "--out", str(tmp_path / "mine" / "photos.csv"),
                                 "--iw-samples", "2", "--device", "cpu"])
    assert code == 0 and (tmp_path / "mine" / "photos-hist.png").read_bytes() == b"mine", err


@pytest.mark.parametrize("args, message", [
    (["--method", "critic"], "does not offer it (it offers ratio, nll, complexity, elbo)"),
    (["--method", "ratio"], "needs --background RUN"),
    (["--method", "nope"], "unknown; choose one of"),
    (["--input", "nowhere/"], "not a folder, an .npz file or a built-in split"),
    (["--normal-classes", "a"], "class numbers separated by commas"),
])
def test_refusals_are_one_line(vae_run, tmp_path, args, message):
    base = ["score", str(vae_run), "--out", str(tmp_path / "s.csv"), "--limit", "4"]
    if "--input" not in args:
        base += ["--input", "mnist:test"]
    code, _, err = run_cli(base + args)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_the_same_input_as_normal_and_anomalous_is_refused(vae_run, tmp_path):
    """Before: scored, AUROC 0.5 by construction."""
    np.savez(tmp_path / "good.npz", images=np.zeros((2, 28, 28), np.uint8))
    (tmp_path / "sub").mkdir()
    other_spelling = os.path.join(str(tmp_path), "sub", "..", "good.npz")
    for normal, odd in [(str(tmp_path / "good.npz"), other_spelling),
                        ("mnist:test", "mnist:test")]:
        code, _, err = run_cli(["score", str(vae_run), "--input", normal, "--outliers", odd,
                                "--out", str(tmp_path / "s.csv")])
        assert code == 2 and "cannot be normal and anomalous" in err, err
        assert err.count("\n") == 1, err


def test_a_file_that_is_not_an_npz_archive_is_refused_in_one_line(vae_run, tmp_path):
    """Before: a lone .npy named .npz gave a traceback, garbage numpy's 'pickled data'."""
    np.save(tmp_path / "one.npy", np.zeros((2, 28, 28), np.uint8))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    import zipfile
    with zipfile.ZipFile(tmp_path / "text.npz", "w") as z:          # a zip, but no .npy
        z.writestr("images.txt", "hello")
    for name, said in [("one.npz", "not an .npz archive"), ("junk.npz", "not an .npz archive"),
                       ("text.npz", "not an .npz archive"), ("gone.npz", "no such file")]:
        code, _, err = run_cli(["score", str(vae_run), "--input", str(tmp_path / name),
                                "--out", str(tmp_path / "s.csv")])
        assert code == 2 and said in err and err.count("\n") == 1, err


def test_other_sizes_are_refused_or_converted(vae_run, tmp_path):
    npz = tmp_path / "rgb.npz"
    np.savez(npz, x=np.full((3, 32, 32, 3), 200, np.uint8))
    args = ["score", str(vae_run), "--input", str(npz), "--out", str(tmp_path / "s.csv"),
            "--iw-samples", "2"]
    code, _, err = run_cli(args)
    assert code == 2 and "images are 3x32x32" in err and "takes 1x28x28" in err
    assert "--resize" in err and err.count("\n") == 1
    code, out, err = run_cli(args + ["--resize"])
    assert code == 0 and "converted 3 images from 3x32x32 to 1x28x28" in out
    assert not (tmp_path / "s-hist.png").exists()              # no truth: no histogram


def test_convert_channels_and_size():
    rgb = torch.zeros((1, 3, 4, 8), dtype=torch.uint8)
    rgb[:, 0] = 255                                            # pure red: luma 0.299
    grey = convert(rgb, (1, 2, 2))
    assert grey.shape == (1, 1, 2, 2) and int(grey[0, 0, 0, 0]) == round(255 * 0.299)
    assert convert(torch.full((1, 1, 2, 2), 9, dtype=torch.uint8), (3, 4, 4)).eq(9).all()


FANO_MODEL = ["model.name=dcgan", "model.ngf=4", "model.ndf=4", "model.z_dim=4",
              "data.classes=[1]", "train.reuse_fakes=false", "log.n_fixed=4"]


@pytest.mark.slow          # two tiny runs: ~9 s
def test_fanogan_reads_the_frozen_gan_and_trains_only_its_encoder(tmp_path, data_root):
    gan = api.train(build_config("dcgan-mnist", TINY + FANO_MODEL + ["objective=wgan-gp"]),
                    tmp_path / "wgan").path
    cfg = build_config("dcgan-mnist", TINY + FANO_MODEL + [
        "objective=fanogan", f"objective.gan_run={gan}", "objective.kappa=0.5"])
    fano = api.train(cfg, tmp_path / "fano").path
    _, g = api.load_model(gan, device="cpu")
    _, f = api.load_model(fano, device="cpu")
    for name in ("G", "D"):
        for a, b in zip(g.nets[name].state_dict().values(), f.nets[name].state_dict().values()):
            assert torch.equal(a, b), name
    x = torch.rand((3, 1, 28, 28)) * 2 - 1
    out = run_batches(METHODS["fanogan"], f, x, Options())
    rec = f.nets["G"].eval()(f.nets["E"].eval()(x))
    _, fx = f.nets["D"](x, features=True)
    _, fr = f.nets["D"](rec, features=True)
    pixel = (x - rec).square().flatten(1).mean(1)
    feature = (fx - fr).square().flatten(1).mean(1)
    torch.testing.assert_close(out["score"], (pixel + 0.5 * feature).double().detach())
    bad = build_config("dcgan-mnist", TINY + FANO_MODEL + [
        "objective=fanogan", f"objective.gan_run={fano}"])
    with pytest.raises(Exception, match="trained with fanogan; f-AnoGAN reads a wgan-gp run"):
        api.train(bad, tmp_path / "bad")


def test_folder_inputs_keep_names_and_refuse_mixed_sizes(vae_run, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    Image.new("L", (28, 28), 0).save(folder / "a.png")
    Image.new("RGB", (40, 30), (255, 0, 0)).save(folder / "sub" / "b.png")
    (folder / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "s.csv"
    args = ["score", str(vae_run), "--input", str(folder), "--out", str(out), "--iw-samples", "2"]
    code, _, err = run_cli(args)
    assert code == 2 and "1x28x28 and 3x30x40" in err and "--resize" in err
    code, stdout, err = run_cli(args + ["--resize"])
    assert code == 0, err
    assert any(line.endswith(": broken.png") and "skipped 1 unreadable file in" in line
               for line in stdout.splitlines()), stdout        # the file is named
    names = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
    assert names == ["a.png", "sub/b.png"]


# ------------------------------------------------ models that do not take images (finding 1)
@pytest.mark.parametrize("info, what", [
    (DataInfo("text", (32, 64)), "trained on text data (samples of shape 32x64)"),
    (DataInfo("toy2d", (2,)), "trained on toy2d data (samples of shape 2)"),
])
def test_models_of_other_data_than_images_are_refused_without_a_resize_hint(info, what):
    assert image_shape(DataInfo("image", (1, 28, 28)), "run") == (1, 28, 28)
    with pytest.raises(GankitError) as e:
        image_shape(info, "runs/x")
    message = str(e.value)
    assert what in message and "not images" in message and "--resize" not in message
    assert "\n" not in message


def test_scoring_with_a_2d_run_is_one_line_with_or_without_resize(tmp_path, data_root):
    cfg = build_config("ring", ["train.steps=2", "train.batch_size=8", "train.threads=1",
                                "log.figures=false", "log.progress=false", "log.sample_at=[]",
                                "eval.metrics=[]", "log.tensorboard=false"])
    run = api.train(cfg, tmp_path / "ring").path
    for extra in ([], ["--resize"]):
        code, _, err = run_cli(["score", str(run), "--input", "mnist:test", "--limit", "4",
                                "--out", str(tmp_path / "s.csv"), *extra])
        assert code == 2 and err.count("\n") == 1, err
        assert "toy2d data" in err and "not images" in err and "--resize" not in err


def test_iw_samples_that_would_change_nothing_are_refused(vae_run, tmp_path, data_root):
    """--iw-samples with a method that reads no likelihood, or a model whose likelihood is
    exact (a PixelCNN): one line, exit 2, rather than silently ignored."""
    args = ["--input", "mnist:test", "--limit", "4", "--out", str(tmp_path / "s.csv"),
            "--iw-samples", "3"]
    code, _, err = run_cli(["score", str(vae_run), "--method", "complexity", *args])
    assert code == 0, err                                    # a VAE's bound: k is used
    cfg = build_config("pixelcnn-mnist", TINY + ["model.channels=4", "model.layers=2",
                                                 "model.head=4"])
    pixelcnn = api.train(cfg, tmp_path / "pixelcnn").path
    code, _, err = run_cli(["score", str(pixelcnn), *args])
    assert code == 2 and err.count("\n") == 1 and "exact" in err, err


# --------------------------------------------- the critic's orientation (finding 2)
class NearOrigin(nn.Module):
    """A critic D(v) = -mean |v|: highest at the origin, where the "data" are."""

    def __init__(self):
        super().__init__()
        self.s = nn.Parameter(torch.tensor(1.0))

    def forward(self, v):
        return -self.s * v.abs().flatten(1).mean(1)


def test_critic_scores_are_oriented_by_what_the_map_declares():
    """Both models find the origin most like the data: BEGAN by a low energy L(x) (the
    score as it is), WGAN-GP by a high critic value (the score negated). Either way the far
    point must score as the more anomalous, and the meaning must say what the score is."""
    info, latent = DataInfo("toy2d", (2,)), Latent(2)
    began = BEGAN(BEGANParams(code_dim=1), {"G": nn.Linear(2, 2), "D": HalfAE()}, latent, info)
    wgan = WGANGP(WGANGPParams(), {"G": nn.Linear(2, 2), "D": NearOrigin()}, latent, info)
    x = torch.tensor([[0.1, -0.1], [2.0, -3.0]])                  # near the data, far away
    expected = {began: [0.05, 1.25], wgan: [0.1, 2.5]}   # L(x) = 0.5 mean|x|; -D(x) = mean|x|
    for objective, score in expected.items():
        model = type("Model", (), {"objective": objective, "device": torch.device("cpu")})()
        got = run_batches(METHODS["critic"], model, x, Options())["score"]
        torch.testing.assert_close(got, torch.tensor(score, dtype=torch.float64))
        assert got[1] > got[0]
    assert critic_orientation(began) == (1, "reconstruction error L(x): the critic's energy, "
                                            "higher away from the data")
    assert critic_orientation(wgan) == (-1, "-D(x): minus the critic's value")
    model = type("Model", (), {"objective": began})()
    assert METHODS["critic"].describe(model).startswith("reconstruction error L(x)")
