"""Likelihood models beside the GANs: a VAE and a PixelCNN trained, evaluated and compared.

Tiny runs of each (MNIST's test split, a few steps) go through what the comparison of
benchmarks/RESULTS.md does: ``gankit eval`` with the held-out NLL (IW samples for the VAE,
exact for the PixelCNN, nats and bits/dim), the shipped classifier's scores and the sampling
speed, then ``gankit compare --table --figure``: one row per run with every value filled,
and their samples side by side. A VAE with a 2-d latent draws its manifold and encodings.
"""

from __future__ import annotations

import json

import pytest
from cli_runner import run_cli
from test_contract import tiny_config

from gankit import api

pytestmark = pytest.mark.slow      # tiny trainings, held-out MNIST, PixelCNN sampling

LOG = {"progress": False, "sample_at": [2], "n_fixed": 4, "every": 1, "figures": False}
METRICS = "nll,speed,mnist,mnist-pr"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    root = tmp_path_factory.mktemp("likelihood")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_DATA", str(data_root))
        mp.setenv("GANKIT_OFFLINE", "1")
        return {name: api.train(tiny_config(name, log=LOG), root / name).path
                for name in ("vae", "pixelcnn")}


def test_eval_reports_nll_in_nats_and_bits_with_its_estimator(runs):
    code, out, err = run_cli(["eval", str(runs["vae"]), "--metrics", METRICS, "--n", "12",
                              "--iw-samples", "3", "--device", "cpu"])
    assert code == 0, err
    vae = json.loads(out)
    assert vae["protocol"]["nll"]["iw_samples"] == 3
    assert vae["bpd"] == pytest.approx(vae["nll"] / (784 * 0.6931471805599453))
    code, out, err = run_cli(["eval", str(runs["pixelcnn"]), "--metrics", METRICS, "--n",
                              "12", "--device", "cpu"])
    assert code == 0, err
    pixel = json.loads(out)
    assert pixel["protocol"]["nll"]["estimator"].startswith("exact")
    assert pixel["samples_per_s"] > 0 and 0 <= pixel["recall_mnist"] <= 1


def test_compare_tabulates_every_model_and_shows_their_samples(runs, tmp_path):
    for run in runs.values():
        if not list(run.glob("eval-*.json")):
            api.save_evaluation(run, api.evaluate(run, METRICS.split(","), n=12, iw_samples=3,
                                                  device="cpu"))
    page, figure = tmp_path / "c.html", tmp_path / "samples.png"
    code, out, err = run_cli(["compare", *map(str, runs.values()), "--out", str(page),
                              "--figure", str(figure), "--table"])
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == str(page) and lines[0].startswith("| run | objective")
    head = lines[0]
    for key in ("nll", "bpd", "cfd_mnist", "precision_mnist", "recall_mnist", "samples_per_s",
                "training time"):
        assert key in head, key
    rows = [line for line in lines[2:-1]]
    assert len(rows) == 2 and all("|  |" not in r for r in rows), rows     # all filled
    assert "k=3" in rows[0] and "n=12" in rows[1]
    text = page.read_text()
    assert "Evaluations" in text and 'data-name="samples"' in text
    assert figure.stat().st_size > 0


def test_a_2d_vae_draws_its_manifold_and_encodings(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_STRICT_FIGURES", "1")
    cfg = tiny_config("vae", log=LOG | {"figures": True, "sample_at": []},
                      model={"name": "mlp", "z_dim": 2, "g_hidden": 16, "d_hidden": 16})
    run = api.train(cfg, tmp_path / "run").path
    drawn = {p.name for p in (run / "plots").iterdir()}
    assert {"latent_manifold.png", "latent_encodings.png", "reconstruction.png"} <= drawn
