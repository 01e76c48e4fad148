"""Config values are what they say (issue 20, section 6): booleans, integers and floats are
never converted into one another, and what the networks require of a config (batch norm's
per-process batch, image sizes) is refused at validation, before a run folder exists."""

from __future__ import annotations

import os
import typing
from typing import Any

import pytest
from pydantic import ValidationError

from cli_runner import run_cli
from gankit.config import (EvalConfig, LogConfig, OptimConfig, TrainConfig, build_config,
                           parse_override)
from gankit.params import Params
from gankit.errors import ConfigError
from gankit.registry import DATASETS, NETWORKS, OBJECTIVES

TINY = ["log.progress=false", "log.figures=false", "train.threads=1"]


def _cli_refuses(tmp_path, args: list[str], message: str) -> None:
    """``gankit train ...`` ends with one line naming ``message``, exit 2, nothing written."""
    out = tmp_path / "run"
    code, _, err = run_cli(["train", *args, "--out", str(out)])
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()


@pytest.mark.parametrize("key", ["train.steps", "train.batch_size"])
def test_a_boolean_is_not_a_count(tmp_path, key):
    """Before: train.steps=true trained 1 step, train.batch_size=true a batch of 1."""
    _cli_refuses(tmp_path, ["--set", f"{key}=true", *(f"--set={o}" for o in TINY)],
                 f"{key}: Input should be a valid integer, not the boolean true")


@pytest.mark.parametrize("override, message", [
    ("train.steps=1e3", "not 1000.0 (an integer is written without a dot or exponent: 1000)"),
    ("train.steps=2.0", "not 2.0"),
    ("train.steps=2.5", "not 2.5"),
    ("optim.G.lr=true", "optim.G.lr: Input should be a valid number, not the boolean true"),
    ("log.figures=1", "log.figures: Input should be a valid boolean, not 1"),
    ("eval.n='100'", "eval.n: Input should be a valid integer, not '100'"),
    ("optim.G.betas=[true, 0.9]", "optim.G.betas.0: Input should be a valid number"),
    ("log.sample_at=[1, true]", "log.sample_at.1: Input should be a valid integer"),
    ("data.n_modes=true", "data.n_modes: Input should be a valid integer"),
])
def test_values_of_another_type_are_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace(".", r"\.")):
        build_config("ring", [override])


def test_an_integer_where_a_float_is_expected_is_fine_and_exponents_are_floats():
    cfg = build_config("ring", ["optim.G.lr=1", "optim.D.lr=1e-4", "optim.G.betas=[0, 1e-1]",
                                "objective.real_label=1"])
    assert cfg.optim["G"].lr == 1.0 and isinstance(cfg.optim["G"].lr, float)
    assert cfg.optim["D"].lr == 1e-4
    assert cfg.optim["G"].betas == (0.0, 0.1)
    assert parse_override("optim.G.lr=3E-5")[1] == 3e-5
    assert parse_override("train.steps=1_000")[1] == 1000
    assert parse_override("data.path=1e")[1] == "1e"


def test_image_channels_are_not_booleans():
    with pytest.raises(ConfigError, match="data.channels: expected a number, not the boolean"):
        build_config("dcgan-folder", ["data.path=x", "data.channels=true"])


# ------------------------------------------------------------------ every config model
def _config_models() -> list[type]:
    import gmm_plugin

    models = [OptimConfig, TrainConfig, LogConfig, EvalConfig, gmm_plugin.GMMParams,
              gmm_plugin.GMMFitParams]
    for registry in (DATASETS, NETWORKS, OBJECTIVES):
        models += [registry.get(name).Params for name in registry.names()]
    return models


def _kinds(annotation: Any) -> set[str]:
    """'int', 'float', 'bool', 'literal-int' among the types a field annotation admits."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _kinds(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return set().union(*(_kinds(a) for a in args))
    if origin is typing.Literal:
        return {"literal-int"} if all(type(a) is int for a in args) else set()
    return {t.__name__ for t in (int, float, bool) if annotation is t}


def _minimal(model: type) -> dict[str, Any]:
    """The required fields of ``model`` with a plausible value (a name, a path)."""
    base = {}
    for name, field in model.model_fields.items():
        if field.is_required():
            base[name] = "x"
    if "name" in model.model_fields and model.model_fields["name"].default:
        base["name"] = model.model_fields["name"].default
    return base


@pytest.mark.parametrize("model", _config_models(), ids=lambda m: m.__name__)
def test_every_config_model_is_strict(model):
    """Every section and every variant's Params (plug-ins included) derives from the strict
    base, and refuses a boolean for a number, a float for an integer and a number for a
    boolean, field by field."""
    assert issubclass(model, Params), f"{model.__name__} does not derive from gankit.params.Params"
    base = _minimal(model)
    checked = 0
    for name, field in model.model_fields.items():
        kinds = _kinds(field.annotation)
        wrong = []
        if kinds & {"int", "float", "literal-int"} and "bool" not in kinds:
            wrong.append(True)
        if "int" in kinds and "float" not in kinds:
            wrong.append(2.0)
        if "bool" in kinds and not kinds & {"int", "float"}:
            wrong.append(1)
        for value in wrong:
            with pytest.raises(ValidationError):
                model.model_validate(base | {name: value})
            checked += 1
        if "float" in kinds and "int" not in kinds:
            default = field.default if isinstance(field.default, float) else None
            if default is not None and default.is_integer():
                assert model.model_validate(base | {name: int(default)})  # int -> float is fine
    assert checked or not model.model_fields.keys() - {"name"}, model


# ------------------------------------------------------------------ what networks require
@pytest.mark.parametrize("preset, nets", [("infogan-mnist", "G and D"), ("acgan-mnist", "D")])
def test_batch_norm_needs_two_samples_per_process(tmp_path, preset, nets):
    """Before: a traceback from batch norm ('Expected more than 1 value per channel'), exit 1,
    and a run folder holding only config.yaml."""
    _cli_refuses(tmp_path, [preset, "--set", "train.batch_size=1"],
                 f"train.batch_size=1: the {'infogan' if 'info' in preset else 'dcgan'} "
                 f"network's {nets} need")
    assert build_config(preset, ["train.batch_size=2"]).train.batch_size == 2


def test_a_batch_of_one_is_fine_where_no_norm_sees_a_single_value():
    """DCGAN's conv batch norms see whole 7x7 maps; per-sample critics have no batch norm."""
    assert build_config("dcgan-mnist", ["train.batch_size=1"]).train.batch_size == 1
    assert build_config("acgan-mnist", ["train.batch_size=1", "model.aux_hidden=0"])
    assert build_config("pix2pix-edges", ["train.batch_size=1", "model.norm=batch"])


def test_the_per_process_batch_counts_under_nproc(tmp_path):
    code, _, err = run_cli(["train", "infogan-mnist", "--nproc", "2", "--set",
                            "train.batch_size=2", "--out", str(tmp_path / "r")])
    assert code == 2 and "train.batch_size=2 over 2 processes is 1 per process" in err, err
    assert not (tmp_path / "r").exists()


def test_unsupported_image_sizes_are_refused_at_validation():
    with pytest.raises(ConfigError, match="dcgan network supports .* not \\(1, 30, 30\\)"):
        build_config("dcgan-mnist", ["data.size=30"])
    with pytest.raises(ConfigError, match="infogan network supports"):
        build_config("infogan-mnist", ["data.size=64"])


def test_the_trainer_checks_what_validation_cannot_know(tmp_path):
    """The classes of an image folder are known once it is read: an AC-GAN on a folder with
    batch 1 is refused when the networks are built, still before a run folder exists."""
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (28, 28), 40 * i).save(tmp_path / "imgs" / label / f"{i}.png")
    _cli_refuses(tmp_path, ["dcgan-folder", "--set", f"data.path={tmp_path / 'imgs'}",
                            "--set", "data.size=28", "--set", "data.channels=1",
                            "--set", "data.holdout=0", "--set", "data.labels=true",
                            "--set", "objective=acgan", "--set", "train.reuse_fakes=false",
                            "--set", "train.batch_size=1", *(f"--set={o}" for o in TINY)],
                 "train.batch_size=1 (1 per process): the dcgan network's D needs at least 2")


def test_a_saved_config_reads_back_as_it_was(tmp_path):
    """A string that YAML 1.2 would read as a float (a folder named 1e5) is written quoted."""
    from gankit.run import RunDir

    cfg = build_config("dcgan-folder", ["data.path=1e5x", "optim.G.lr=1e-4"])
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": "1e5"})})
    run = RunDir.create(tmp_path / "run", cfg)
    # read back as the string "1e5" (a float would be refused), then made absolute (PathStr)
    absolute = cfg.data.model_copy(update={"path": os.path.abspath("1e5")})
    assert run.read_config() == cfg.model_copy(update={"data": absolute})


def test_paths_are_kept_absolute_so_a_run_reads_them_from_anywhere(tmp_path, monkeypatch):
    """``--set data.path=corpus.txt`` names the file in the working directory of the command,
    and the saved config names it wherever the run is read from later."""
    monkeypatch.chdir(tmp_path)
    cfg = build_config("wgangp-text-kjv", ["data.path=corpus.txt",
                                           "eval.inception_weights=~/w.pth"])
    assert cfg.data.path == str(tmp_path / "corpus.txt")
    assert cfg.eval.inception_weights == os.path.join(os.path.expanduser("~"), "w.pth")


def test_a_moved_corpus_may_be_named_again_on_resume():
    """Where the data are is not what they are: data.path, data.root and objective.gan_run
    may change on resume (a project moved to another folder); the data's settings may not."""
    from gankit.config import incompatible_keys
    old = build_config("wgangp-text-kjv", ["data.path=/old/corpus.txt"])
    moved = build_config("wgangp-text-kjv", ["data.path=/new/corpus.txt", "data.root=/data"])
    assert incompatible_keys(old, moved) == []
    longer = build_config("wgangp-text-kjv", ["data.path=/old/corpus.txt", "data.seq_len=64"])
    assert incompatible_keys(old, longer) == ["data.seq_len"]
