"""train.reuse_fakes: one generator forward per step, as in the PyTorch DCGAN example."""

import pytest
import torch

from gankit.config import build_config
from gankit.errors import ConfigError
from gankit.train.trainer import Trainer

SMALL = ["model.g_hidden=16", "model.d_hidden=16", "train.batch_size=32", "log.progress=false",
         "train.device=cpu"]


def _forwards_per_step(overrides: list[str], steps: int = 3) -> float:
    trainer = Trainer(build_config("ring", SMALL + overrides))
    calls = []
    trainer.nets["G"].register_forward_hook(lambda *_: calls.append(1))
    for _ in range(steps):
        trainer.train_step()
    return len(calls) / steps


@pytest.mark.parametrize("objective", ["nonsaturating", "minimax", "hinge", "lsgan"])
def test_one_generator_forward_per_step(objective):
    assert _forwards_per_step([f"objective={objective}"]) == 2
    assert _forwards_per_step([f"objective={objective}", "train.reuse_fakes=true"]) == 1


def test_not_reused_across_several_critic_steps():
    """With k > 1 the G step draws fresh noise, as Algorithm 1 does."""
    assert _forwards_per_step(["objective=wgan-gp", "train.d_steps=2",
                               "train.reuse_fakes=true"]) == 3


def test_conditional_objectives_reuse_labels_with_fakes():
    over = ["data.name=mnist", "data.split=test", "model.z_dim=8", "model.out_activation=tanh",
            "eval.metrics=[]",
            "train.reuse_fakes=true"]
    for objective in ("cgan", "acgan", "infogan"):
        assert _forwards_per_step(over + [f"objective={objective}"], steps=2) == 1


def test_reused_update_equals_the_example_loop():
    """The G step on the kept fakes is the G step on G(z) regenerated from the D step's z
    (the MLP has no batch norm, so regenerating gives the same samples): same weights."""
    cfg = build_config("ring", SMALL + ["train.reuse_fakes=true", "optim.G.schedule=constant",
                                        "optim.D.schedule=constant"])
    trainer = Trainer(cfg)
    ref = Trainer(build_config("ring", SMALL + ["optim.G.schedule=constant",
                                                "optim.D.schedule=constant"]))
    ref.nets.load_state_dict(trainer.nets.state_dict())
    obj = ref.objective
    kept = {}

    def fakes_for_D(ctx, n):           # the reference draws z, remembers it for its G step
        inputs, fake = type(obj).fakes_for_D(obj, ctx, n)
        kept["inputs"] = inputs
        return inputs, fake

    def fakes_for_G(ctx, n):
        inputs = kept.pop("inputs")
        return inputs, obj.generate(inputs)

    obj.fakes_for_D, obj.fakes_for_G = fakes_for_D, fakes_for_G
    for _ in range(3):
        trainer.train_step()
        ref.train_step()
    for (k, a), b in zip(trainer.nets.state_dict().items(), ref.nets.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)


def test_objectives_that_make_their_own_g_samples_refuse_it():
    with pytest.raises(ConfigError, match="pix2pix objective does not reuse"):
        build_config("pix2pix-edges", ["train.reuse_fakes=true"])
