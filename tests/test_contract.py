"""The contract every registered objective keeps (one test, all variants).

A variant passes when: its docstring cites a paper and writes each phase's loss as a formula;
a few steps of its smoke config give finite losses; each phase changes exactly its players'
parameters; it never steps an optimizer itself; its state and a checkpoint round-trip exactly.
"""

import copy
import re

import pytest
import torch

from gankit.config import validate
from gankit.registry import OBJECTIVES
from gankit.train.trainer import Trainer

TINY = {"train": {"steps": 4, "batch_size": 8},
        "log": {"progress": False, "sample_at": [], "n_fixed": 4}}


def tiny_config(name: str, data_root=None):
    cls = OBJECTIVES.get(name)
    raw = {"data": {"name": "ring"}, "model": {"name": "mlp", "g_hidden": 16, "d_hidden": 16}}
    raw |= copy.deepcopy(cls.smoke_config)
    raw["objective"] = {"name": name} | raw.get("objective", {})
    raw["train"] = TINY["train"] | raw.get("train", {})
    raw["log"] = TINY["log"]
    return validate(raw)


def snapshot(trainer):
    return {n: [p.detach().clone() for p in net.parameters()] for n, net in trainer.nets.items()}


@pytest.fixture(params=OBJECTIVES.names())
def variant(request, data_root):
    return request.param


def test_docstring_cites_paper_and_writes_losses(variant):
    cls = OBJECTIVES.get(variant)
    doc = cls.__doc__ or ""
    assert re.search(r"\b(19|20)\d\d\b", doc), f"{variant}: cite the paper (author year)"
    for phase in cls.phase_names():
        assert re.search(rf"L_{re.escape(phase)}\w*\s*=", doc), f"{variant}: write L_{phase} = ..."


def test_phases_update_only_their_players(variant, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(variant), tmp_path)
    for opt in trainer.optims.values():            # objectives must never step optimizers
        monkeypatch.setattr(opt, "zero_grad", opt.zero_grad)
    for phase in trainer.phases:
        before = snapshot(trainer)
        trainer._phase_step(phase)
        after = snapshot(trainer)
        for name in trainer.nets:
            changed = any(not torch.equal(a, b) for a, b in zip(before[name], after[name]))
            if name in phase.players:
                assert changed, f"{variant}: phase {phase.name} did not update {name}"
            else:
                assert not changed, f"{variant}: phase {phase.name} changed {name}"
    assert trainer.c.bad_total == 0


def test_steps_are_finite_and_sampling_works(variant, tmp_path):
    trainer = Trainer(tiny_config(variant), tmp_path)
    trainer.fit()
    scalars = trainer.pop_scalars()
    assert scalars and all(v == v and abs(v) != float("inf") for v in scalars.values()), scalars
    for name in trainer.objective.sample_nets:
        x = trainer.generate(trainer.fixed_inputs, name)
        assert torch.isfinite(x).all()
    state = trainer.objective.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_checkpoint_round_trip_continues_identically(variant, tmp_path):
    cfg = tiny_config(variant)
    a = Trainer(cfg, tmp_path / "a")
    a.fit(until=2)
    a.save()
    b = Trainer(cfg, tmp_path / "b")
    from gankit.train.checkpoint import newest_intact
    b.load(newest_intact(tmp_path / "a")[1])
    a.train_step()
    b.train_step()
    for name in a.nets:
        for p, q in zip(a.nets[name].parameters(), b.nets[name].parameters()):
            assert torch.equal(p, q), f"{variant}: {name} differs after resume"
