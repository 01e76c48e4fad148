"""The contract every registered metric keeps (one test each, all of them), and the metric
protocol end to end: config validation, `gankit eval`, `gankit list`, training by FID.

A metric passes when: it has a one-line summary; it declares a direction (or "not a score")
for every key it can return, and no other metric returns those keys; its ``check`` accepts its
own smoke run and refuses, with a reason, a toy or an image run; and on a tiny untrained
trainer of its smoke run ``evaluate`` returns exactly the keys it declares, all finite.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import re
from types import SimpleNamespace

import gmm_plugin
import numpy as np
import pytest
from PIL import Image

import gankit.config
from cli_runner import run_cli
from gankit.config import build_config, validate
from gankit.errors import ConfigError, GankitError
from gankit.eval.metrics import FID
from gankit.metrics import protocol
from gankit.metrics.protocol import EvalOptions, Metric, RunFacts
from gankit.registry import DATASETS, METRICS, OBJECTIVES
from gankit.run import RunDir
from gankit.train.checkpoint import load_checkpoint
from gankit.train.evaluation import BEST_NAME, EXTRA_KEY, EvaluationCallback
from gankit.train.trainer import Trainer

pytestmark = pytest.mark.filterwarnings("ignore::gankit.metrics.fid.FIDWarning")

RING = {"data": {"name": "ring"}, "model": {"name": "mlp", "g_hidden": 16, "d_hidden": 16}}
MNIST = protocol.SMOKE_MNIST
TINY = {"train": {"batch_size": 8}, "log": {"progress": False, "sample_at": []}}
# Inception features cost about 0.1 s per image on one core: small n for those metrics.
N_OFFLINE, N_INCEPTION = 64, 8


@pytest.fixture(scope="module", autouse=True)
def density_plugin():
    """No built-in objective offers a likelihood yet: the metrics that need one are tried on
    the maximum-likelihood plug-in of tests/gmm_plugin.py."""
    gmm_plugin.register()
    yield
    gmm_plugin.unregister()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANKIT_INCEPTION_WEIGHTS", raising=False)


@pytest.fixture(params=METRICS.names())
def name(request):
    return request.param


def rgb_folder(root, n=12, size=28):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            root / f"{i}.png")
    return root


def smoke_raw(m: type[Metric], folder_root) -> dict:
    """The metric's smoke run: its ``smoke_config`` over the ring / MLP demo, tiny; a folder
    data set without a path gets a folder of random RGB images."""
    raw = copy.deepcopy(RING) | copy.deepcopy(m.smoke_config) | copy.deepcopy(TINY)
    if raw["data"]["name"] == "folder" and "path" not in raw["data"]:
        raw["data"]["path"] = str(rgb_folder(folder_root))
    kind = DATASETS.get(raw["data"]["name"]).kind
    offers = lambda o: OBJECTIVES.get(o).capabilities(OBJECTIVES.get(o).Params(name=o))  # noqa: E731
    if not m.needs <= offers(raw.get("objective", {}).get("name", "nonsaturating")):
        objective = next(o for o in OBJECTIVES.names()  # the first offering what it needs
                         if kind in OBJECTIVES.get(o).data_kinds and m.needs <= offers(o))
        raw |= copy.deepcopy(OBJECTIVES.get(objective).smoke_config)
        raw["objective"] = {"name": objective}
    return raw


# Trainers are built once per smoke config, so that metrics sharing one (mnist, fid, is, kid,
# pr) also share its real-data statistics, as they would in one process.
_TRAINERS: dict[str, Trainer] = {}


def smoke_trainer(raw: dict, ckpt_dir) -> Trainer:
    key = json.dumps(raw, sort_keys=True)
    if key not in _TRAINERS:
        _TRAINERS[key] = Trainer(validate(raw), ckpt_dir)
    return _TRAINERS[key]


# ------------------------------------------------------------------ the contract
def test_declares_meaning_keys_and_directions(name):
    m = METRICS.get(name)
    assert isinstance(m, type) and issubclass(m, Metric) and m.name == name
    assert m.summary and "\n" not in m.summary and len(m.summary) <= 90, m.summary
    keys = m.keys()
    assert keys and all(d in ("min", "max", None) for d in keys.values()), keys
    assert any(d is not None for d in keys.values()), "nothing to keep the best checkpoint by"


def test_each_key_belongs_to_one_metric():
    owner: dict[str, str] = {}
    for name in METRICS.names():
        for key in METRICS.get(name).keys():
            assert key not in owner, f"{key!r} is returned by {owner.get(key)} and {name}"
            owner[key] = name


def test_check_accepts_its_smoke_run_and_refuses_others_with_a_reason(name, tmp_path):
    m = METRICS.get(name)
    facts = RunFacts.from_config(validate(smoke_raw(m, tmp_path / "images")))
    assert m.check(facts) is None
    assert m.keys(facts).items() <= m.keys().items()      # same keys, same directions
    reasons = [m.check(RunFacts.from_config(validate(raw))) for raw in (RING, MNIST)]
    reasons = [r for r in reasons if r is not None]
    assert reasons, f"{name} applies to a toy ring run and to an image run alike"
    assert all(r.startswith("needs ") and "\n" not in r for r in reasons), reasons


def test_evaluate_returns_exactly_the_declared_keys(name, tmp_path, data_root, request):
    m = METRICS.get(name)
    options = EvalOptions()
    if not m.offline:
        weights = request.getfixturevalue("stand_in_inception_weights")
        options = EvalOptions(inception_weights=str(weights), fid_method="svd")
    m.prepare(options)
    trainer = smoke_trainer(smoke_raw(m, tmp_path / "images"), tmp_path / "ckpt")
    n = N_OFFLINE if m.offline else N_INCEPTION
    with protocol.shared_samples():          # the second evaluation reuses the samples
        values = m.evaluate(trainer, n, options=options)
        assert set(values) == set(m.keys(RunFacts.from_config(trainer.cfg)))
        assert all(math.isfinite(v) for v in values.values()), values
        assert protocol.run_metric(m, trainer, n, options=options) == values
    json.dumps(m.describe(trainer, n, options=options))


# ------------------------------------------------------------------ config validation
@pytest.mark.parametrize("override, message", [
    ("eval.metrics=[mnist]", "metric 'mnist' does not apply to this run: it needs MNIST or "
                             "Fashion-MNIST data; this run trains on ring"),
    ("eval.metrics=[fid]", "metric 'fid' does not apply to this run: it needs image data"),
    ("eval.best_metric=fid", "eval.best_metric 'fid' is not a value of eval.metrics [toy2d] "
                             "for this run; they return: hq_fraction, kl, modes"),
])
def test_train_refuses_metrics_that_do_not_apply(tmp_path, override, message):
    out = tmp_path / "never"
    code, _, err = run_cli(["train", "ring", "--set", override, "--out", str(out)])
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_validation_asks_capabilities_data_and_directions():
    with pytest.raises(ConfigError, match="class-conditional sampling"):
        build_config("dcgan-mnist", ["eval.metrics=[conditional-accuracy]"])
    with pytest.raises(ConfigError, match="stacked-mnist.*data.channels: 3"):
        build_config("dcgan-mnist", ["eval.metrics=[stacked-mnist]"])
    with pytest.raises(ConfigError, match="'is_std' is not a score.*eval.mode"):
        build_config("dcgan-mnist", ["eval.metrics=[is]", "eval.best_metric=is_std"])
    with pytest.raises(ConfigError, match="they return: hq_fraction$"):
        build_config("spiral", ["eval.best_metric=modes"])     # a manifold has no modes
    build_config("dcgan-mnist", ["eval.metrics=[is]", "eval.best_metric=is_std", "eval.mode=min"])


def test_mode_auto_takes_the_declared_direction(tmp_path):
    cfg = build_config("dcgan-mnist", ["eval.metrics=[fid,pr,mnist]",
                                       "eval.best_metric=precision", "eval.fid_method=svd",
                                       "eval.inception_weights=w.pth"])
    cb = EvaluationCallback.from_config(None, SimpleNamespace(cfg=cfg, ckpt_dir=tmp_path))
    assert cb.tracker.mode == "max"
    assert cb.options == EvalOptions(inception_weights=os.path.abspath("w.pth"),   # PathStr
                                     fid_method="svd")
    cfg = build_config("dcgan-mnist", ["eval.metrics=[fid,pr,mnist]", "eval.best_metric=cfd_mnist"])
    cb = EvaluationCallback.from_config(None, SimpleNamespace(cfg=cfg, ckpt_dir=tmp_path))
    assert cb.tracker.mode == "min"


def test_config_does_not_import_the_training_engine():
    source = inspect.getsource(gankit.config)
    assert not re.search(r"^\s*(from|import)\s+gankit\.train", source, re.MULTILINE)


# ------------------------------------------------------------------ gankit eval / list
def test_eval_refuses_a_metric_that_does_not_apply_before_any_work(tmp_path, monkeypatch):
    run = RunDir.create(tmp_path / "ring", build_config("ring")).path
    from gankit import api

    def no_loading(*args, **kwargs):
        raise AssertionError("the run was loaded before its metrics were checked")
    monkeypatch.setattr(api, "load_model", no_loading)
    code, out, err = run_cli(["eval", str(run), "--metrics", "toy2d,mnist", "--n", "100"])
    assert (code, out) == (2, "")
    assert err == ("gankit: error: metric 'mnist' does not apply to this run: it needs MNIST or "
                   "Fashion-MNIST data; this run trains on ring\n")
    code, _, err = run_cli(["eval", str(run), "--metrics", "fid"])
    assert code == 2 and err.count("\n") == 1
    assert "metric 'fid' does not apply to this run: it needs image data" in err
    assert not list(run.glob("eval-*.json"))


def test_list_and_eval_help_show_every_metric():
    code, out, _ = run_cli(["list"])
    assert code == 0
    lines = out.split("metrics:\n")[1].splitlines()
    for name in METRICS.names():
        m = METRICS.get(name)
        line = next(l for l in lines if l.split()[0] == name)
        assert m.summary in line and protocol.describe_keys(m.keys()) in line
    assert any(l.split()[0] == "fid" and "(fid: lower is better)" in l for l in lines)
    code, out, _ = run_cli(["eval", "--help"])
    text = re.sub(r"-\s+", "-", " ".join(out.split()))          # undo click's line wrapping
    assert code == 0 and all(name in text for name in METRICS.names())


# ------------------------------------------------------------------ Inception metrics
def test_inception_work_is_shared(tmp_path, data_root, stand_in_inception_weights,
                                  fake_inception):
    """Real features once per process and data source; generated ones once per evaluation
    (the plumbing, on a cheap stand-in extractor: the network is tested above)."""
    trainer = Trainer(validate(MNIST | TINY), tmp_path)        # nothing cached for its data
    calls = {"real": 0, "generated": 0}

    def counting(fn, key):
        def wrapped(*args, **kwargs):
            calls[key] += 1
            return fn(*args, **kwargs)
        return wrapped
    trainer.data.sample = counting(trainer.data.sample, "real")
    trainer.sample = counting(trainer.sample, "generated")
    options = EvalOptions(inception_weights=str(stand_in_inception_weights), fid_method="svd")
    first = FID.evaluate(trainer, 8, options=options)
    assert FID.evaluate(trainer, 8, options=options) == first
    assert calls == {"real": 1, "generated": 2}       # the generator may change in between
    values, described = protocol.evaluate_metrics(trainer, ["fid", "kid", "pr"], 8,
                                                  options=options)
    assert calls == {"real": 1, "generated": 3}
    assert values["fid"] == first["fid"] and set(described) == {"fid", "kid", "pr"}
    assert described["kid"]["n_real"] == 8 and described["kid"]["subset_size"] == 8


def test_training_keeps_the_best_checkpoint_by_fid(tmp_path, data_root,
                                                   stand_in_inception_weights, fake_inception):
    run = tmp_path / "run"
    sets = ["model.ngf=8", "model.ndf=8", "train.batch_size=8", "log.progress=false",
            "log.sample_at=[]", "log.figures=false", "data.split=test", "eval.metrics=[fid]",
            "eval.best_metric=fid",
            "eval.patience=3", "eval.every=2", "eval.n=8", "eval.fid_method=svd",
            f"eval.inception_weights={stand_in_inception_weights}"]
    code, _, err = run_cli(["train", "dcgan-mnist", "--steps", "4", "--out", str(run),
                            *(a for s in sets for a in ("--set", s))])
    assert code == 0, err
    rows = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "fid" in r]
    assert [r["step"] for r in rows] == [2, 4] and all(math.isfinite(r["fid"]) for r in rows)
    best = min(rows, key=lambda r: r["fid"])
    saved = load_checkpoint(run / "checkpoints" / BEST_NAME)
    assert saved["counters"]["step"] == best["step"]
    tracked = saved["counters"]["extra"][EXTRA_KEY]
    assert (tracked["metric"], tracked["mode"], tracked["best"]) == ("fid", "min", best["fid"])


def test_missing_inception_weights_fail_before_training(tmp_path, data_root):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "dcgan-mnist", "--steps", "2", "--out", str(out),
                            "--set", "eval.metrics=[fid]", "--set", "model.ngf=8",
                            "--set", "model.ndf=8", "--set", "data.split=test",
                            "--set", "eval.inception_weights=/nonexistent/w.pth"])
    assert code == 2 and err.count("\n") == 1 and "Inception weights" in err, err
    assert not out.exists()                  # refused before the run folder was written


def test_evaluation_errors_stay_gankit_errors():
    with pytest.raises(GankitError, match="no registered metric returns it"):
        protocol.declared_direction("nosuch")
