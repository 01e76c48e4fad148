"""The live view's control of a real (tiny) trainer, without a server: single updates, the
objective switched through the config path, learning rates and k, a drawn target, and a
watched run training exactly as an unwatched one."""

from __future__ import annotations

import json

import pytest
import torch

from gankit.config import apply_overrides, build_config, validate
from gankit.data.toy import Drawn
from gankit.errors import ConfigError
from gankit.live.control import LiveControl, parse_command
from gankit.train.trainer import Trainer

TINY = ["model.g_hidden=16", "model.d_hidden=16", "model.g_depth=1", "model.d_depth=1",
        "train.batch_size=32", "train.steps=20", "log.figures=false", "eval.metrics=[]"]


def trainer(*extra: str) -> Trainer:
    return Trainer(build_config("ring", TINY + list(extra)))


def control_of(t: Trainer, *commands: dict) -> tuple[LiveControl, list[dict]]:
    sent: list[dict] = []
    c = LiveControl(sent.append)
    for cmd in commands:
        c.submit(parse_command(json.dumps(cmd)))
    return c, sent


def params(net) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_one_d_update_moves_d_only():
    t = trainer()
    d0, g0 = params(t.nets["D"]), params(t.nets["G"])
    c, sent = control_of(t, {"cmd": "step", "phase": "D"})
    c.poll(t)
    assert c.updates == {"D": 1, "G": 0} and t.c.step == 0
    assert not same(d0, params(t.nets["D"])) and same(g0, params(t.nets["G"]))
    assert sent[-1]["updates"] == {"D": 1, "G": 0} and sent[-1]["kind"] == "toy2d"


def test_objective_switch_goes_through_the_config_and_gets_fresh_optimizers():
    t = trainer()
    t.fit(until=3)
    old_optims, nets = dict(t.optims), t.nets
    c, sent = control_of(t, {"cmd": "objective", "name": "wgan-gp"})
    c.poll(t)
    assert t.cfg.objective.name == "wgan-gp" and type(t.objective).__name__ == "WGANGP"
    assert t.nets is nets and t.optims["D"] is not old_optims["D"]
    assert not t.optims["D"].state                       # fresh: no moments yet
    assert t.cfg.optim["D"].lr == build_config("ring", TINY).optim["D"].lr   # page's lr kept
    t.fit(until=5)
    assert t.c.step == 5 and "wgan-gp" in c.objectives and "began" not in c.objectives


def test_learning_rate_and_k_keep_the_optimizers():
    t = trainer()
    t.fit(until=2)
    optim = t.optims["G"]
    c, _ = control_of(t, {"cmd": "lr", "phase": "G", "value": 1e-5}, {"cmd": "k", "value": 3})
    c.poll(t)
    assert t.optims["G"] is optim and optim.state
    assert t.cfg.optim["G"].lr == pytest.approx(1e-5) and t.phases[0].repeats == 3
    t.fit(until=3)
    assert c.state(t)["updates"] == {"D": 2 + 3, "G": 3}


def test_a_refused_change_is_reported_not_raised():
    t = trainer()
    c, sent = control_of(t, {"cmd": "objective", "name": "began"},
                         {"cmd": "lr", "phase": "Q", "value": 0.1})
    c.poll(t)
    errors = [m["message"] for m in sent if m["type"] == "error"]
    assert len(errors) == 2 and "cannot take over" in errors[0] and "'Q'" in errors[1]
    assert t.cfg.objective.name == "nonsaturating"


def test_reconfigure_refuses_other_data_and_other_networks():
    t = trainer()
    with pytest.raises(ConfigError, match="only the objective"):
        t.reconfigure(validate(apply_overrides(t.cfg.to_dict(), ["data=grid"])))
    with pytest.raises(ConfigError, match="other networks"):
        t.reconfigure(validate(apply_overrides(t.cfg.to_dict(), ["objective=began"])))


def test_drawn_target_becomes_the_data():
    t = trainer()
    c, sent = control_of(t, {"cmd": "draw", "points": [[2.0, 2.0], [-2.0, 2.0]], "std": 0.01})
    c.poll(t)
    assert isinstance(t.data, Drawn) and sent[-1]["drawn"]
    x = t.draw_real()["x"]
    assert ((x.abs() - 2).abs() < 0.1).all()
    assert set(sent[-1]["metrics"]) == {"modes", "hq_fraction", "kl"}
    c.submit(parse_command('{"cmd": "reset_data"}'))
    c.poll(t)
    assert not isinstance(t.data, Drawn)


def test_drawn_target_in_one_dimension():
    t = Trainer(build_config("gaussian1d", ["train.steps=5", "model.d_hidden=16",
                                            "model.g_hidden=16", "train.batch_size=32"]))
    c, sent = control_of(t, {"cmd": "draw", "points": [[1.0], [3.0]], "std": 0.1})
    c.poll(t)
    frame = sent[-1]
    assert frame["kind"] == "toy1d" and "mapping" in frame and len(frame["arrows"]) > 0
    assert t.data.inverse_cdf(0.25) == pytest.approx(1.0, abs=0.02)     # the first point's median
    assert t.data.pdf([1.0, 2.0])[1] < 1e-6 < t.data.pdf([1.0, 2.0])[0]


def test_a_watched_run_trains_exactly_as_an_unwatched_one():
    a, b = trainer(), trainer()
    a.fit()
    b.control = LiveControl(lambda m: None)          # frames made before every step
    b.fit()
    assert same(params(a.nets["G"]), params(b.nets["G"]))
    assert b.control.state(b)["updates"] == {"D": 20, "G": 20}


def test_frame_of_a_higher_dimensional_latent_is_its_z1_z2_slice():
    from gankit.live.frames import HEAT, LATENT_K, FrameMaker

    t = trainer("model.z_dim=5")
    frame = FrameMaker(t).frame(t)
    assert frame["latent"]["dims"] == 2 and len(frame["latent"]["points"]) == LATENT_K ** 2
    assert len(frame["heat"]) == HEAT ** 2 and len(frame["arrows"]) == len(frame["fake"])
    assert frame["critic_label"] == "D(x)" and frame["probability"]


def test_frame_of_an_image_run_is_a_sample_grid(data_root):
    from gankit.live.frames import FrameMaker

    t = Trainer(build_config("gan-mlp-mnist", ["data.split=test", "model.g_hidden=16",
                                               "model.d_hidden=16", "train.batch_size=16"]))
    frame = FrameMaker(t).frame(t)
    assert frame["kind"] == "image" and frame["image"].startswith("data:image/png;base64,")
    assert "heat" not in frame and "latent" not in frame
