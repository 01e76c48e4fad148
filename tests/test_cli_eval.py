"""`gankit eval` and `gankit fid` from the command line (stand-in Inception weights)."""

import json

import numpy as np
import pytest
from PIL import Image

from gankit import api
from cli_runner import run_cli
from gankit.config import build_config


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))


def test_eval_image_run_prints_metrics_with_protocol(tmp_path, data_root, monkeypatch,
                                                     stand_in_inception_weights):
    monkeypatch.setenv("GANKIT_DATA", str(data_root))
    cfg = build_config("dcgan-mnist", ["model.ngf=8", "model.ndf=8", "train.steps=2",
                                       "train.batch_size=8", "log.progress=false",
                                       "log.sample_at=[]", "data.split=test",
                                       "log.figures=false"])
    run = api.train(cfg, tmp_path / "run")
    code, out, err = run_cli(["eval", str(run.path), "--metrics", "fid,is,kid,pr,mnist",
                              "--n", "12", "--fid-method", "svd",
                              "--inception-weights", str(stand_in_inception_weights)])
    assert code == 0, err
    res = json.loads(out)
    for key in ("fid", "is_mean", "kid_mean", "precision", "recall", "cfd_mnist"):
        assert np.isfinite(res[key]), key
    # how each metric measured, by metric name
    assert set(res["protocol"]) == {"fid", "is", "kid", "pr", "mnist"}
    for name in ("fid", "kid", "pr"):
        p = res["protocol"][name]
        assert p["n_real"] == 12 and p["n_generated"] == 12 and "weights_sha256" in p
        assert (p["seed_real"], p["seed_generated"], p["reference_split"]) == (0, 1, "test")
    assert res["protocol"]["fid"]["fid_method"] == "svd"
    assert res["protocol"]["mnist"]["classifier"] == "mnist"
    assert json.loads((run.path / "eval-00000002.json").read_text()) == res


def test_fid_command_on_folders_and_stats(tmp_path, stand_in_inception_weights):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
                tmp_path / name / f"{i}.png")
    w = ["--inception-weights", str(stand_in_inception_weights), "--fid-method", "svd"]
    code, out, err = run_cli(["fid", str(tmp_path / "a"), str(tmp_path / "b"), *w,
                              "--save-stats", str(tmp_path / "a.npz")])
    assert code == 0, err
    first = json.loads(out)
    assert first["fid"] > 0 and "weights_sha256" in first["protocol"]
    code, out, _ = run_cli(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b"), *w])
    assert code == 0 and json.loads(out)["fid"] == pytest.approx(first["fid"], rel=1e-6)


def test_eval_errors_are_one_line(tmp_path):
    code, out, err = run_cli(["eval", str(tmp_path), "--metrics", "nosuch"])
    assert code == 2 and err.count("\n") == 1
    code, out, err = run_cli(["fid", str(tmp_path / "x"), str(tmp_path / "y")])
    assert code == 2 and err.count("\n") == 1
    # a bad path is named even without Inception weights (it was the weights' message)
    (tmp_path / "empty").mkdir()
    (tmp_path / "one").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "one" / "0.png")
    for a, b, said in [("one", "nosuch", "not an image folder or .npz statistics file"),
                       ("empty", "one", "no images"), ("one", "gone.npz", "not found")]:
        code, out, err = run_cli(["fid", str(tmp_path / a), str(tmp_path / b),
                                  "--inception-weights", str(tmp_path / "no-weights.pth")])
        assert code == 2 and said in err and err.count("\n") == 1, err
