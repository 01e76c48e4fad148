"""What a mistyped key or a value of the wrong shape says: one line naming the key, the
closest known key of its section, how to write a list; never pydantic's wording alone."""

from __future__ import annotations

import pytest

from cli_runner import run_cli
from gankit.config import build_config
from gankit.errors import ConfigError


@pytest.mark.parametrize("preset, override, message", [
    ("ring", "train.step=10", "unknown key train.step (did you mean train.steps?)"),
    ("ring", "trian.steps=10", "unknown key trian (did you mean train?)"),
    ("ring", "optim.D.lrr=0.1", "unknown key optim.D.lrr (did you mean optim.D.lr?)"),
    ("vae-mnist", "data.binarise=none", "unknown key data.binarise (did you mean data.binarize?)"),
    ("wgangp-text-kjv", "objective.gp_wieght=1",
     "unknown key objective.gp_wieght (did you mean objective.gp_weight?)"),
    ("ring", "train.zzz=1", "unknown key train.zzz; train has steps, schedule_steps,"),
    ("ring", "zzz=1", "unknown key zzz; the config has seed, data, model,"),
])
def test_an_unknown_key_names_the_closest_known_one(preset, override, message):
    with pytest.raises(ConfigError) as err:
        build_config(preset, [override])
    assert message in str(err.value) and "Extra inputs" not in str(err.value)


@pytest.mark.parametrize("override, message", [
    ("eval.metrics=nll", "eval.metrics: Input should be a valid list, not 'nll'; "
                         "write a list, e.g. [nll]"),
    ("log.sample_at=5", "write a list, e.g. [5]"),
    ("optim.D.betas=0.5", "write a list, e.g. [0.5, 0.999]"),     # a pair: its default
])
def test_one_value_for_a_list_says_how_to_write_the_list(override, message):
    with pytest.raises(ConfigError, match=r"write a list") as err:
        build_config("ring", [override])
    assert message in str(err.value)


def test_the_cli_prints_the_suggestion_on_one_line(tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "ring", "--set", "train.step=10", "--out", str(out)])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "unknown key train.step (did you mean train.steps?)" in err
    assert not out.exists()
