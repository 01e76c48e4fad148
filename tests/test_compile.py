"""``train.compile``: torch.compile of G and D changes speed, not results."""

from __future__ import annotations

import shutil

import pytest
import torch

from gankit.config import build_config
from gankit.train.trainer import Trainer

TOY = ["train.batch_size=32", "model.g_hidden=32", "model.d_hidden=32", "model.g_depth=2",
       "model.d_depth=2", "train.device=cpu", "seed=2"]


def _compiled(module) -> bool:
    return isinstance(module, torch._dynamo.eval_frame.OptimizedModule)


def test_compile_wraps_what_the_objective_calls_not_what_is_saved():
    plain = Trainer(build_config(None, TOY))
    t = Trainer(build_config(None, TOY + ["train.compile=true"]))
    assert _compiled(t.objective.nets["G"]) and _compiled(t.objective.nets["D"])
    assert not any(_compiled(m) for m in t.nets.values())
    assert t.fingerprint() == plain.fingerprint()                # checkpoints are compatible
    assert list(t.state()["nets"]["G"]) == list(plain.state()["nets"]["G"])


def test_gradient_penalty_critics_stay_eager():
    """AOTAutograd has no double backward: a critic without batch norm (the per-sample,
    penalised kind) is not compiled; its generator still is."""
    t = Trainer(build_config(None, TOY + ["objective=wgan-gp", "train.compile=true"]))
    assert _compiled(t.objective.nets["G"]) and t.objective.nets["D"] is t.nets["D"]


@pytest.mark.slow   # inductor compiles ~4 graphs (G/D x phase): 1-3 min on this shared CPU
@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_training_matches_eager():
    eager = Trainer(build_config(None, TOY))
    comp = Trainer(build_config(None, TOY + ["train.compile=true"]))
    for _ in range(3):
        eager.train_step()
        comp.train_step()
    a, b = eager.nets.state_dict(), comp.nets.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-4, msg=k)
    assert any((eager.nets.state_dict()[k] - Trainer(build_config(None, TOY)).nets.state_dict()[k])
               .abs().max() > 1e-3 for k in a)
