"""Metric maths never hangs and never prints a non-number (issue 20, section 3): NaN or
infinite inputs and results are one-line errors naming the input (exit 2 from the CLI)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from cli_runner import run_cli
from gankit import api
from gankit.config import build_config
from gankit.errors import GankitError
from gankit.metrics import fid as fidmath
from gankit.metrics.classifier import classify, load_classifier
from gankit.metrics.finite import NonFiniteError, check_finite
from gankit.metrics.inception_score import inception_score
from gankit.metrics.kid import kernel_inception_distance
from gankit.metrics.prdc import prdc
from gankit.metrics.toy import mode_metrics

NAN = float("nan")


def one_sample_stats(path, d: int, nan_in: str = "sigma"):
    """pytorch-fid-style statistics of ONE sample: np.cov gives NaN (division by N-1 = 0)."""
    x = np.random.default_rng(0).normal(size=(1, d))
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        mu, sigma = x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))
    if nan_in == "mu":
        mu, sigma = np.full(d, NAN), np.eye(d)
    np.savez(path, mu=mu, sigma=sigma)
    return path


def good_stats(path, d: int):
    np.savez(path, mu=np.zeros(d), sigma=np.eye(d))
    return path


def test_check_finite_names_the_input():
    with pytest.raises(NonFiniteError, match=r"^fakes is not finite: 2 NaN and 1 infinite "
                                             r"of 4 values$"):
        check_finite("fakes", torch.tensor([NAN, NAN, float("inf"), 0.0]))
    check_finite("labels", np.array([1, 2]))                 # integers are always finite
    assert issubclass(NonFiniteError, GankitError)


def test_nan_covariance_fails_at_once_not_after_minutes_of_sqrtm():
    d = 2048                                                # the FID size: sqrtm ran > 15 min
    mu, sigma = np.zeros(d), np.full((d, d), NAN)
    start = time.perf_counter()
    with pytest.raises(NonFiniteError, match="FID statistics of the first: sigma is not "
                                             "finite: 4,194,304 NaN"):
        fidmath.frechet_distance(mu, sigma, mu, np.eye(d))
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("method", ["sqrtm", "svd"])
def test_small_nan_statistics_raise_a_gankit_error_not_scipy(method):
    mu, sigma = np.zeros(3), np.eye(3)
    bad = sigma.copy()
    bad[1, 2] = NAN
    with pytest.raises(GankitError, match="the second: sigma is not finite: 1 NaN of 9"):
        fidmath.frechet_distance(mu, sigma, mu, bad, method=method)
    with pytest.raises(GankitError, match="the first: mu is not finite"):
        fidmath.frechet_distance(np.array([0, np.inf, 0]), sigma, mu, sigma, method=method)
    with pytest.raises(GankitError, match="real features is not finite"):
        fidmath.fid_from_features(np.full((4, 3), NAN), np.zeros((4, 3)), method=method)


def test_fid_command_with_nan_statistics_exits_2_in_one_line(tmp_path):
    good = good_stats(tmp_path / "good.npz", 2048)
    for nan_in in ("sigma", "mu"):
        bad = one_sample_stats(tmp_path / f"nan-{nan_in}.npz", 2048, nan_in)
        start = time.perf_counter()
        code, out, err = run_cli(["fid", str(good), str(bad)])          # default: sqrtm
        assert time.perf_counter() - start < 10
        assert code == 2 and out == ""                                  # nothing like NaN
        assert err.count("\n") == 1 and f"nan-{nan_in}.npz: {nan_in} is not finite" in err
    with pytest.raises(GankitError, match="statistics to save"):
        fidmath.save_stats(tmp_path / "x.npz", np.full(3, NAN), np.eye(3))


def test_other_metrics_refuse_non_finite_features():
    x = np.random.default_rng(0).normal(size=(20, 4))
    bad = x.copy()
    bad[3, 1] = NAN
    with pytest.raises(NonFiniteError, match="KID generated features is not finite: 1 NaN"):
        kernel_inception_distance(x, bad, subsets=2, subset_size=10)
    with pytest.raises(NonFiniteError, match="Inception Score logits is not finite"):
        inception_score(bad, splits=2)
    with pytest.raises(NonFiniteError, match="real features is not finite"):
        prdc(bad, x)
    with pytest.raises(NonFiniteError, match="samples is not finite"):
        mode_metrics(bad[:, :2], np.zeros((8, 2)), 0.02)
    with pytest.raises(NonFiniteError, match="images to classify is not finite"):
        classify(load_classifier("mnist"), torch.full((2, 1, 28, 28), NAN))


def tiny_ring(tmp_path):
    cfg = build_config("ring", ["train.steps=2", "train.batch_size=16", "model.g_hidden=8",
                                "model.d_hidden=8", "log.progress=false", "log.figures=false",
                                "log.sample_at=[]", "train.threads=1"])
    return api.train(cfg, tmp_path / "run")


def test_eval_of_a_nan_generator_exits_2_and_writes_no_json(tmp_path, monkeypatch):
    from gankit.train.model import Sampling          # the trainer's and the run folder's
    run = tiny_ring(tmp_path)
    code, out, err = run_cli(["eval", str(run.path), "--metrics", "toy2d", "--n", "50"])
    assert code == 0 and np.isfinite(json.loads(out)["kl"])
    monkeypatch.setattr(Sampling, "sample", lambda self, n, seed=0, batch=1024:
                        torch.full((n, 2), NAN))
    code, out, err = run_cli(["eval", str(run.path), "--metrics", "toy2d", "--n", "50"])
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "the generator's samples (n=50, seed=12345) is not finite: 100 NaN" in err
    assert sorted(p.name for p in run.path.glob("eval-*.json")) == ["eval-00000002.json"]


def test_training_logs_a_nan_metric_and_goes_on(tmp_path, monkeypatch, capsys):
    from gankit.train.evaluation import EvaluationCallback
    from gankit.train.trainer import Trainer
    cfg = build_config("ring", ["train.steps=4", "train.batch_size=16", "model.g_hidden=8",
                                "model.d_hidden=8", "log.progress=false", "train.threads=1"])
    trainer = Trainer(cfg)
    logged = []
    logger = type("L", (), {"write": lambda self, t, v: logged.append(v)})()
    cb = EvaluationCallback(logger, ["toy2d"], every_n=2, n=50, best_metric="kl")
    monkeypatch.setattr(Trainer, "sample", lambda self, n, seed=0, batch=1024:
                        torch.full((n, 2), NAN))
    cb.on_start(trainer)
    values = cb.evaluate(trainer)
    assert set(values) == {"modes", "hq_fraction", "kl"}
    assert all(np.isnan(v) for v in values.values()) and logged == [values]
    assert cb.tracker.best is None                           # NaN is never the best
    assert "samples (n=50, seed=12345) is not finite" in capsys.readouterr().out
