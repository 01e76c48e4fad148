"""A non-adversarial objective plugs in with one file plus registration (tests/gmm_plugin.py):
it trains, draws the figures that apply, evaluates the metrics that apply and resumes exactly,
through the unchanged trainer, views and metrics."""

from __future__ import annotations

import pytest
import torch

import gmm_plugin
from gankit import api
from gankit.config import validate
from gankit.errors import ConfigError
from gankit.registry import OBJECTIVES
from gankit.train.checkpoint import load_checkpoint, newest_intact


@pytest.fixture
def gmm():
    gmm_plugin.register()
    yield
    gmm_plugin.unregister()


def config(steps=60, figures=True, **eval_):
    return validate({"data": {"name": "ring", "std": 0.05}, "model": {"name": "gmm"},
                     "objective": {"name": "gmm-fit"},
                     "train": {"steps": steps, "batch_size": 128, "ema_beta": 0.9},
                     "log": {"progress": False, "every": 10, "sample_at": [1], "figures": figures},
                     "eval": {"metrics": ["toy2d", "nll"], "every": 30, "n": 500} | eval_})


def test_maximum_likelihood_plugin_trains_plots_and_evaluates(gmm, tmp_path, capsys):
    run = api.train(config(steps=300), tmp_path / "run")
    rows = run.read_metrics()
    nll = [r["loss/nll"] for r in rows if "loss/nll" in r]
    assert nll[-1] < nll[0] - 1.0                            # the likelihood went up
    assert rows[-1]["modes"] == 8                            # covers the ring's 8 modes
    nll_heldout = [r["nll"] for r in rows if "nll" in r]     # held-out, from the EMA weights
    assert len(nll_heldout) == 10 and nll_heldout[-1] < nll_heldout[0]
    assert abs(nll_heldout[-1] - nll[-1]) < 0.5              # no gap: a mixture cannot memorise
    plots = {p.name for p in (tmp_path / "run" / "plots").glob("*.png")}
    assert {"ring_samples.png", "log_likelihood.png", "losses.png"} <= plots
    assert "critic_and_gradient_field.png" not in plots      # no critic: skipped, silently
    assert "critic_and_gradient_field" not in capsys.readouterr().out


def test_plugin_resumes_bit_exactly(gmm, tmp_path):
    cfg = config(steps=40, figures=False)
    api.train(cfg, tmp_path / "a", until=25)
    api.resume(tmp_path / "a")
    api.train(cfg, tmp_path / "b")
    a = load_checkpoint(newest_intact(tmp_path / "a" / "checkpoints")[0])
    b = load_checkpoint(newest_intact(tmp_path / "b" / "checkpoints")[0])
    assert a["counters"]["step"] == b["counters"]["step"] == 40
    for part in ("nets", "ema", "optim"):
        flat_a, flat_b = _flat(a[part]), _flat(b[part])
        assert flat_a.keys() == flat_b.keys()
        for k in flat_a:
            assert torch.equal(flat_a[k], flat_b[k]), f"{part} {k}"


def test_plugin_with_the_old_default_optim_signature_gets_one_line(gmm):
    """A plug-in written for ``default_optim(phase)`` is refused at validation with one line
    naming the signature, not a TypeError from inside gankit."""
    class OldFit(gmm_plugin.GMMFit):
        @classmethod
        def default_optim(cls, phase):
            return {"name": "adam", "lr": 5e-2}

    OBJECTIVES.unregister("gmm-fit")
    OBJECTIVES.register("gmm-fit", OldFit)
    with pytest.raises(ConfigError, match=r"gmm-fit objective's default_optim must take "
                                          r"\(params, phase\)") as e:
        config()
    assert "\n" not in str(e.value)


def _flat(tree, prefix=""):
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out |= _flat(v, f"{prefix}{k}/")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out |= _flat(v, f"{prefix}{i}/")
    elif torch.is_tensor(tree):
        out[prefix] = tree
    return out
