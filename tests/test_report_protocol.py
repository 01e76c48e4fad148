"""report.html's "how measured" of the values logged during training: what each metric says
it reads (``Metric.measured_on``) with the run's eval settings: generated samples, held-out
examples, importance samples k."""

from __future__ import annotations

import pytest

from gankit.config import build_config
from gankit.metrics import protocol
from gankit.registry import METRICS
from gankit.report import collect


def logged(preset: str, key: str, *overrides: str) -> collect.Series:
    """The Series of ``key`` in a run of ``preset`` that logged it at steps 100 and 200."""
    config = build_config(preset, list(overrides)).to_dict()
    rows = [{"step": s, key: 1.0 / s} for s in (100, 200)]
    return collect.collect_series(rows, config)[key]


def test_held_out_likelihood_says_held_out_examples_and_importance_samples():
    nll = logged("vae-mnist", "nll")                 # eval: n 1000, iw_samples 100
    assert nll.protocol == ("metric nll: every 20000 steps and at the end, up to 1,000 "
                            "held-out examples (seed 0); an estimated likelihood (a VAE's) "
                            "with k=100 importance samples")
    default_k = logged("pixelcnn-mnist", "bpd").protocol
    assert "held-out examples" in default_k and "the model's default number of" in default_k


def test_test_error_says_the_first_held_out_examples():
    error = logged("ssgan-mnist", "test_error").protocol      # eval: n 10000
    assert error == ("metric test-error: every 3000 steps and at the end, the first 10,000 "
                     "held-out examples in stored order (all, when fewer)")


def test_metrics_of_generated_samples_say_so():
    assert logged("ring", "modes", "eval.n=1000").protocol == (
        "metric toy2d: every 500 steps and at the end, 1,000 generated samples (seed 12345, "
        "fixed)")


def test_a_metric_key_the_objective_logs_itself_is_a_training_scalar():
    # a PixelCNN run from before bpd/train logged its training batches' bpd; without
    # eval.metrics nll no metric ran
    bpd = logged("pixelcnn-mnist", "bpd", "eval.metrics=[]")
    assert bpd.protocol == "mean over each logged interval of 100 steps"


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_says_what_it_reads_in_one_line(name):
    text = protocol.metric(name).measured_on(500, options=protocol.EvalOptions(iw_samples=7))
    assert isinstance(text, str) and "500" in text and "\n" not in text
