"""Config semantics: a preset's optimizer settings belong to its objective; switching the
objective takes the new one's paper defaults unless the command line sets them, and the run
says which settings it took and from where. Combinations that cannot work are refused before
anything is written; configs saved by older versions keep their behaviour."""

from __future__ import annotations

import pytest
import yaml

import gmm_plugin
from cli_runner import run_cli
from gankit.config import build_config, from_saved, resolve
from gankit.errors import ConfigError


def test_switching_objective_takes_its_paper_defaults():
    cfg, note = resolve("grid", ["objective=wgan-gp"])
    assert (cfg.optim["D"].name, cfg.optim["D"].lr, cfg.optim["D"].betas) == ("adam", 1e-4, (0, 0.9))
    assert cfg.optim["G"].lr == 1e-4 and cfg.optim["D"].schedule == "constant"
    assert cfg.train.d_steps == 5
    assert "[wgan-gp defaults]" in note and "grid preset's optim" in note
    wgan = build_config("grid", ["objective=wgan"])
    assert (wgan.optim["D"].name, wgan.optim["D"].lr, wgan.train.d_steps) == ("rmsprop", 5e-5, 5)


def test_the_command_line_still_wins():
    cfg, note = resolve("grid", ["objective=wgan", "optim.D.lr=1e-4", "train.d_steps=3"])
    assert cfg.optim["D"].lr == 1e-4 and cfg.optim["D"].name == "rmsprop"
    assert cfg.optim["G"].lr == 5e-5 and cfg.train.d_steps == 3
    assert "D rmsprop lr 0.0001 [command line]" in note
    assert "G rmsprop lr 5e-05 [wgan defaults]" in note and "k/n_critic 3 [command line]" in note


def test_same_objective_keeps_the_preset():
    for overrides in ([], ["objective=nonsaturating"], ["objective.name=nonsaturating"]):
        cfg, note = resolve("grid", overrides)
        assert cfg.optim["D"].lr == 1e-3 and cfg.optim["D"].schedule == "linear"
        assert "[preset grid]" in note and "not used" not in note


def test_cli_prints_which_settings_it_took(tmp_path):
    code, out, err = run_cli(["train", "grid", "--set", "objective=wgan-gp", "--steps", "2",
                              "--out", str(tmp_path / "run"), "--set", "log.progress=false"])
    assert code == 0, err
    lines = [line for line in out.splitlines() if "optimizer:" in line]
    assert len(lines) == 1 and "adam lr 0.0001 betas (0, 0.9) [wgan-gp defaults]" in lines[0]
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["optim"]["D"]["lr"] == 1e-4 and saved["train"]["d_steps"] == 5


def test_infogan_on_the_ring_trains_and_draws(tmp_path):
    """Once a traceback in the toy plots (a reshape of the critic's 1 + Q outputs)."""
    code, out, err = run_cli(["train", "ring", "--set", "objective=infogan", "--steps", "3",
                              "--out", str(tmp_path / "run"), "--set", "log.progress=false"])
    assert code == 0, err
    assert (tmp_path / "run" / "plots" / "critic_and_gradient_field.png").exists()
    assert "failed" not in out


@pytest.mark.parametrize("overrides,message", [
    (["objective=cyclegan"], "cyclegan objective trains on unpaired or paired data; ring is toy2d"),
    (["objective=cgan"], "cgan objective trains on image data"),
])
def test_impossible_combinations_are_refused_before_any_folder(tmp_path, overrides, message):
    code, _, err = run_cli(["train", "ring", "--out", str(tmp_path / "run"),
                            *(f"--set={o}" for o in overrides)])
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_networks_on_data_they_do_not_take_are_refused(tmp_path):
    code, _, err = run_cli(["train", "ring", "--out", str(tmp_path / "run"), "--set=model=dcgan"])
    assert code == 2 and "the dcgan network takes image data; ring is toy2d data" in err
    assert not (tmp_path / "run").exists()


def test_roles_a_family_cannot_build_leave_no_run_folder(tmp_path):
    gmm_plugin.register()                   # an objective asking for a density model
    try:
        code, _, err = run_cli(["train", "ring", "--out", str(tmp_path / "run"),
                                "--set=objective=gmm-fit", "--set=eval.metrics=[]"])
    finally:
        gmm_plugin.unregister()
    assert code == 2 and err.count("\n") == 1
    assert "the mlp network cannot build a density (density); it builds: " in err
    assert all(kind in err for kind in ("critic", "generator"))       # among what it builds
    assert not (tmp_path / "run").exists()


def test_saved_folder_configs_from_before_holdout_train_on_every_file():
    old = {"data": {"name": "folder", "path": "x"}, "model": {"name": "dcgan"}}
    assert from_saved(old).data.holdout == 0
    assert build_config("dcgan-folder", ["data.path=x"]).data.holdout == 0.1
    with pytest.raises(ConfigError):
        from_saved({"data": {"name": "ring", "holdout": 0.1}})     # not a key of toy data


def test_list_describes_every_preset():
    from gankit.config import list_presets
    code, out, _ = run_cli(["list"])
    assert code == 0
    presets = out.split("objectives:")[0].splitlines()
    lines = {line.split()[0]: line for line in presets if line.startswith("  ")}
    for name in list_presets():
        assert "[data: " in lines[name] and " steps]" in lines[name], lines[name]
        assert len(lines[name].split("[data:")[0].split(name, 1)[1].strip()) > 20
