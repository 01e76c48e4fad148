"""The contracts every registered objective and network family keep (one test each, all of them).

An objective passes when: its docstring cites a paper and writes each phase's loss as a formula;
each phase changes exactly its players' parameters, and the objective never steps an optimizer
or calls backward() (guards make touching them fail); for every data kind it declares, a tiny
run trains 3 steps with finite losses, writes its figures, evaluates the metrics that apply to
it, and resumes bit-exactly. A family passes when it builds every role type it registers and
the result maps inputs to outputs of the role's shapes.
"""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest
import torch

from gankit import api
from gankit.config import validate
from gankit.core import roles as R
from gankit.core.step import Latent, PhaseOptions
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.metrics.protocol import RunFacts
from gankit.registry import METRICS, NETWORKS, OBJECTIVES
from gankit.train.checkpoint import load_checkpoint, newest_intact
from gankit.train.trainer import Trainer

# The default tiny run for each data kind; an objective's ``smoke_config`` overrides sections.
SMOKE_DATA = {
    "toy1d": {"data": {"name": "gaussian1d"},
              "model": {"name": "mlp", "z_dim": 1, "g_hidden": 16, "d_hidden": 16}},
    "toy2d": {"data": {"name": "ring"}, "model": {"name": "mlp", "g_hidden": 16, "d_hidden": 16}},
    "image": {"data": {"name": "mnist", "split": "test"},
              "model": {"name": "mlp", "z_dim": 8, "g_hidden": 16, "d_hidden": 16,
                        "out_activation": "tanh"}},
    "unpaired": {"data": {"name": "mnist-strokes", "split": "test", "n_examples": 4},
                 "model": {"name": "translation", "ngf": 4, "ndf": 4, "n_blocks": 1}},
    "text": {"data": {"name": "text", "corpus": "kjv"},
             "model": {"name": "textconv", "z_dim": 8, "dim": 8, "blocks": 1}},
    "paired": {"data": {"name": "fashion-edges", "split": "test", "n_examples": 4},
               "model": {"name": "translation", "generator": "unet", "ngf": 4, "ndf": 4,
                         "unet_dropout": 0.0}},
}
TINY = {"train": {"steps": 3, "batch_size": 8},
        "log": {"progress": False, "sample_at": [], "n_fixed": 4, "every": 1}}
# The improved techniques of Salimans et al. 2016 (options of the sigmoid games and of the
# mlp / dcgan networks), all at once: feature matching, historical averaging, one-sided label
# smoothing, minibatch discrimination, virtual batch norm.
IMPROVED = {"objective": {"g_loss": "feature_matching", "historical_averaging": 0.1,
                          "real_label": 0.9},
            "model": {"minibatch_kernels": 4, "minibatch_dims": 3, "g_norm": "virtual",
                      "vbn_reference": 4}}
DCGAN_TINY = {"model": {"name": "dcgan", "z_dim": 4, "ngf": 4, "ndf": 4, "aux_hidden": 0}}
OPTIONS = {"": {}, "improved": IMPROVED, "improved-dcgan": {**IMPROVED, **{
    "model": DCGAN_TINY["model"] | IMPROVED["model"]}},
    # the captions family's what / where networks (digits of 16 px on a 32-px canvas)
    "slots": {"data": {"canvas": 32}, "model": {"slots": 2},
              "objective": {"g_encoder": True, "caption_loss": 1.0}}}
CASES = [(name, kind, "") for name in OBJECTIVES.names()
         for kind in OBJECTIVES.get(name).data_kinds]
CASES += [("nonsaturating", "toy2d", "improved"), ("unrolled", "toy2d", "improved"),
          ("cgan", "image", "improved"), ("acgan", "image", "improved-dcgan"),
          ("infogan", "image", "improved-dcgan"), ("gan-cls", "image", "slots")]
OPTION_CASES = [c for c in CASES if c[2]]


def case_id(name: str, kind: str, options: str) -> str:
    return "-".join(filter(None, (name, kind, options)))


def tiny_config(name: str, kind: str | None = None, options: str = "", **sections):
    """The contract's tiny run of objective ``name`` on ``kind`` data, with the ``OPTIONS``
    of that name merged into its sections (or replacing one that they name anew), then
    ``sections`` replacing whole sections."""
    cls = OBJECTIVES.get(name)
    raw = copy.deepcopy(SMOKE_DATA[kind or cls.data_kinds[0]])
    raw |= copy.deepcopy(cls.smoke_config)
    raw["objective"] = {"name": name} | raw.get("objective", {})
    raw["train"] = TINY["train"] | raw.get("train", {})
    raw["log"] = dict(TINY["log"])
    for section, values in OPTIONS[options].items():     # a new "name" starts afresh
        raw[section] = values if "name" in values else raw.get(section, {}) | values
    raw |= sections
    return validate(raw)


def applicable_metrics(cfg) -> list[str]:
    """The registered metrics whose check passes for this config. Those that need files gankit
    does not ship (the Inception weights) run in tests/test_metric_protocol.py instead: they
    read only samples, which every case here already shows it makes."""
    facts = RunFacts.from_config(cfg)
    return [m for m in METRICS.names()
            if METRICS.get(m).offline and METRICS.get(m).check(facts) is None]


def snapshot(trainer):
    return {n: [p.detach().clone() for p in net.parameters()] for n, net in trainer.nets.items()}


@pytest.fixture(params=OBJECTIVES.names())
def variant(request, data_root):
    return request.param


def test_docstring_cites_paper_and_writes_losses(variant):
    cls = OBJECTIVES.get(variant)
    doc = cls.__doc__ or ""
    assert re.search(r"\b(19|20)\d\d\b", doc), f"{variant}: cite the paper (author year)"
    for phase in cls.phase_names(cls.Params.model_validate({"name": variant})):
        assert re.search(rf"L_{re.escape(phase)}\w*\s*=", doc), f"{variant}: write L_{phase} = ..."


class Touched(AssertionError):
    pass


def guard_engine(trainer, monkeypatch):
    """Make optimizers and backward() fail while the objective's code runs."""
    inside = {"on": False}

    def forbid(what):
        def fail(*args, **kwargs):
            raise Touched(f"the objective called {what}")
        return fail

    for opt in trainer.optims.values():
        for method in ("step", "zero_grad", "load_state_dict", "add_param_group"):
            real = getattr(opt, method)
            monkeypatch.setattr(opt, method, lambda *a, _r=real, _m=method, **k:
                                forbid(f"optimizer.{_m}")() if inside["on"] else _r(*a, **k))
    real_backward = torch.Tensor.backward
    monkeypatch.setattr(torch.Tensor, "backward", lambda self, *a, **k:
                        forbid("backward()")() if inside["on"] else real_backward(self, *a, **k))
    real_autograd_backward = torch.autograd.backward
    monkeypatch.setattr(torch.autograd, "backward", lambda *a, **k:
                        forbid("autograd.backward()")() if inside["on"]
                        else real_autograd_backward(*a, **k))
    obj = trainer.objective
    for method in ("loss", "end_step", "post_step"):
        real = getattr(obj, method)

        def wrapped(*a, _r=real, **k):
            inside["on"] = True
            try:
                return _r(*a, **k)
            finally:
                inside["on"] = False
        monkeypatch.setattr(obj, method, wrapped)


def test_phases_update_only_their_players(variant, tmp_path, monkeypatch):
    check_phases(tiny_config(variant), tmp_path, monkeypatch)


@pytest.mark.parametrize("name,kind,options", OPTION_CASES,
                         ids=[case_id(*c) for c in OPTION_CASES])
def test_options_keep_phases_to_their_players(name, kind, options, data_root, tmp_path,
                                              monkeypatch):
    check_phases(tiny_config(name, kind, options), tmp_path, monkeypatch)


def check_phases(cfg, tmp_path, monkeypatch):
    """Each phase changes exactly its players' parameters and its own optimizer's state,
    and the objective never steps an optimizer or calls backward()."""
    variant = cfg.objective.name
    trainer = Trainer(cfg, tmp_path)
    guard_engine(trainer, monkeypatch)
    ctx = trainer.step_context()
    for phase in trainer.phases:
        before = snapshot(trainer)
        states = {n: copy.deepcopy(o.state_dict()) for n, o in trainer.optims.items()}
        trainer._phase_step(phase, ctx)
        after = snapshot(trainer)
        for name in trainer.nets:
            changed = any(not torch.equal(a, b) for a, b in zip(before[name], after[name]))
            if name in phase.players:
                assert changed, f"{variant}: phase {phase.name} did not update {name}"
            else:
                assert not changed, f"{variant}: phase {phase.name} changed {name}"
        for name, opt in trainer.optims.items():      # only the phase's own optimizer moved
            if name != phase.name:
                assert str(opt.state_dict()) == str(states[name]), name
    trainer.objective.end_step(ctx)
    assert trainer.c.bad_total == 0


def test_guards_catch_an_objective_that_steps(tmp_path, monkeypatch):
    """The guards above are real: an objective that steps an optimizer is caught."""
    trainer = Trainer(tiny_config("nonsaturating"), tmp_path)
    opt = trainer.optims["D"]
    real_loss = type(trainer.objective).loss

    def cheating(phase, ctx):
        loss, scalars = real_loss(trainer.objective, phase, ctx)
        opt.step()
        return loss, scalars
    monkeypatch.setattr(trainer.objective, "loss", cheating)
    guard_engine(trainer, monkeypatch)          # wraps the cheating loss
    with pytest.raises(Touched):
        trainer._phase_step(trainer.phases[0])


RENDERED: set[tuple[str, str]] = set()
REPORT_CURVES: dict[str, str] = {}          # data kind -> report.html's curves, rendered once


def render_once_per_view(kind: str, monkeypatch) -> list[str]:
    """Every case builds all of its figures (the data, shapes and artists, where an
    objective's outputs could break them), but rendering a figure to PNG is matplotlib's
    work, the same for every objective: each figure file is rendered once per data kind
    (a third of the contract's time otherwise). Returns "folder/name" of the figures built."""
    import matplotlib.pyplot as plt

    import gankit.plots.common as common
    real_save, built = common.save, []

    def save(fig, path):
        path = Path(path)
        built.append(f"{path.parent.name}/{path.name}")
        key = (kind, re.sub(r"\d+", "N", path.name))
        if key in RENDERED:
            plt.close(fig)
            return path
        RENDERED.add(key)
        return real_save(fig, path)
    import gankit.plots
    modules = [importlib.import_module(info.name)   # all imported before any is patched
               for info in pkgutil.iter_modules(gankit.plots.__path__, "gankit.plots.")]
    for module in modules:
        if getattr(module, "save", None) is real_save:
            monkeypatch.setattr(module, "save", save)
    from gankit.report import pages                  # report.html's curves, the same way
    real_png = pages.png_uri

    def png_uri(fig):
        if kind not in REPORT_CURVES:
            REPORT_CURVES[kind] = real_png(fig)
        return REPORT_CURVES[kind]
    monkeypatch.setattr(pages, "png_uri", png_uri)
    return built


@pytest.mark.parametrize("name,kind,options", CASES, ids=[case_id(*c) for c in CASES])
def test_trains_plots_evaluates_and_resumes(name, kind, options, data_root, tmp_path,
                                            monkeypatch):
    monkeypatch.setenv("GANKIT_STRICT_FIGURES", "1")      # a failing figure fails the test
    built = render_once_per_view(kind, monkeypatch)
    probe = tiny_config(name, kind, options)
    metrics = applicable_metrics(probe)
    cfg = tiny_config(name, kind, options, eval={"metrics": metrics, "every": 1000, "n": 16})
    run = api.train(cfg, tmp_path / "run")
    rows = run.read_metrics()
    last = {k: v for r in rows for k, v in r.items()}
    losses = {k: v for k, v in last.items() if k.startswith("loss/")}
    assert losses and all(isinstance(v, float) and abs(v) < float("inf") for v in losses.values())
    assert rows[-1]["step"] == 3
    plots = sorted((tmp_path / "run" / "plots").iterdir())
    assert [p for p in built if p.startswith("plots/")], f"{name} on {kind}: no figures"
    assert all(p.stat().st_size > 0 for p in plots)
    assert any((tmp_path / "run" / "samples").glob("*.png")) or \
        [p for p in built if p.startswith("samples/")], f"{name} on {kind}: no sample grid"
    assert "loss/" in (tmp_path / "run" / "report.html").read_text()
    evaluated = [r for r in rows if any(k not in r for k in ("loss/D", "loss/G"))]
    assert not metrics or evaluated, f"metrics {metrics} wrote nothing"
    for value in (v for r in evaluated for k, v in r.items() if k not in ("step",)):
        assert value == value, f"{name} on {kind}: NaN metric"
    # resume: 2 steps, a checkpoint, then the third step in a new trainer == uninterrupted
    a = Trainer(cfg, tmp_path / "a")
    a.fit(until=2)
    a.save()
    b = Trainer(cfg, tmp_path / "b")
    b.load(newest_intact(tmp_path / "a")[1])
    a.train_step()
    b.train_step()
    full = load_checkpoint(newest_intact(tmp_path / "run" / "checkpoints")[0])
    for net in a.nets:
        for key, p in a.nets[net].state_dict().items():
            assert torch.equal(p, b.nets[net].state_dict()[key]), f"{name}: {net}.{key}"
            assert torch.equal(p.cpu(), full["nets"][net][key]), f"{name}: {net}.{key} vs api"
    assert json.dumps(a.c.images_seen) == json.dumps(b.c.images_seen)
    # inference needs only the run folder: its model samples as the trainer that made it
    _, model = api.load_model(tmp_path / "run", device="cpu")
    assert torch.equal(model.sample(4, seed=5), a.sample(4, seed=5)), f"{name} on {kind}"


# ----------------------------------------------------------------------------- families
INFOS = {"toy": DataInfo("toy2d", (2,)), "image": DataInfo("image", (1, 28, 28), num_classes=10),
         "rgb32": DataInfo("image", (3, 32, 32), num_classes=10),
         "text": DataInfo("text", (6, 5))}


def probe_role(role_type, B: int = 3, plain: bool = False):
    """A typical spec of each role type and a call that checks the built net's shapes on a
    batch of ``B``; ``plain``: a generator of noise only and a one-value critic (text nets)."""
    if plain and role_type is R.GeneratorRole:
        return R.GeneratorRole(z_dim=5), lambda net, info: net(
            torch.randn(B, 5)).shape == (B, *info.shape)
    if plain and role_type is R.CriticRole:
        return R.CriticRole(), lambda net, info: net(torch.randn(B, *info.shape)).shape == (B,)
    if role_type is R.SequenceGeneratorRole:
        return R.SequenceGeneratorRole(z_dim=5, length=6, vocab=5), lambda net, info: net(
            torch.randn(B, 5)).shape == (B, 6, 5)
    if role_type is R.SequenceCriticRole:
        return R.SequenceCriticRole(length=6, vocab=5), lambda net, info: net(
            torch.randn(B, 6, 5)).shape == (B,)
    if role_type is R.GeneratorRole:
        role = R.GeneratorRole(z_dim=5, code_dim=2, num_classes=10)
        return role, lambda net, info: net(torch.randn(B, 7), torch.arange(B)).shape == (B, *info.shape)
    if role_type is R.CriticRole:
        role = R.CriticRole(out_dim=3, num_classes=10)

        def call(net, info):
            out = net(torch.randn(B, *info.shape), torch.arange(B))
            return out.shape == (B, 3)
        return role, call
    if role_type is R.TranslatorRole:
        role = R.TranslatorRole()
        return role, lambda net, info: net(torch.randn(B, *info.shape)).shape == (B, *info.shape)
    if role_type is R.EncoderRole:
        role = R.EncoderRole(z_dim=4, out_dim=8)
        return role, lambda net, info: net(torch.randn(B, *info.shape)).shape == (B, 8)
    if role_type is R.DecoderRole:
        role = R.DecoderRole(z_dim=4)
        return role, lambda net, info: net(torch.randn(B, 4)).shape == (B, *info.shape)
    if role_type is R.AutoregressiveRole:
        role = R.AutoregressiveRole(levels=3)
        return role, lambda net, info: net(torch.randn(B, *info.shape)).shape == (
            B, 3, *info.shape)
    if role_type is R.AutoencoderRole:
        role = R.AutoencoderRole(code_dim=4)
        return role, lambda net, info: net(torch.randn(B, *info.shape)).shape == (B, *info.shape)
    if role_type is R.TextEncoderRole:
        role = R.TextEncoderRole(length=6, vocab=9, out_dim=5)
        tokens = torch.randint(1, 9, (B, 6)) * (torch.arange(6) < torch.randint(1, 7, (B, 1)))
        return role, lambda net, info: net(tokens).shape == (B, 5)    # right-padded with 0
    if role_type is R.ConditionedGeneratorRole:
        role = R.ConditionedGeneratorRole(z_dim=5, cond_dim=3)
        return role, lambda net, info: net(torch.randn(B, 5), torch.randn(B, 3)).shape == (
            B, *info.shape)
    if role_type is R.ConditionedCriticRole:
        role = R.ConditionedCriticRole(cond_dim=3)
        return role, lambda net, info: net(torch.randn(B, *info.shape),
                                           torch.randn(B, 3)).shape == (B,)
    pytest.fail(f"add a probe for {role_type.__name__} to tests/test_contract.py")


@pytest.mark.parametrize("family", NETWORKS.names())
def test_every_family_builds_every_role_it_registers(family):
    fam = NETWORKS.get(family)
    params = fam.Params.model_validate({"name": family})
    assert fam.builders, f"{family} registers no role builders"
    for role_type in fam.builders:
        role, call = probe_role(role_type)
        if role_type is R.CriticRole and family == "translation":
            role = R.CriticRole(reads=("a",))        # PatchGAN: one logit per patch, no labels
            call = (lambda net, info: net(torch.randn(3, *info.shape)).shape[0] == 3)
        built = 0
        for info in INFOS.values():
            if info.kind == "text" and "text" not in fam.data_kinds:
                continue
            spec, check = ((role, call) if info.kind != "text" else  # noise only, one value
                           probe_role(role_type, plain=True))
            try:
                nets = R.build_nets(fam, params, info, {"net": spec})
            except ConfigError:
                continue                       # a data shape this family does not take
            assert check(nets["net"], info), f"{family} {spec.kind} on {info.shape}"
            built += 1
        assert built, f"{family} built its {role.kind} for none of {list(INFOS)}"


# roles whose inputs are not noise or images (tokens; a vector beside z or x)
CONDITIONED = (R.TextEncoderRole, R.ConditionedGeneratorRole, R.ConditionedCriticRole)


@pytest.mark.parametrize("family", NETWORKS.names())
def test_every_family_trains_on_the_batch_it_declares(family):
    """A family's ``min_batch(params, info, role)`` is true: its nets run a training-mode
    forward on that many samples, and (when it asks for more than 1) fail on fewer."""
    fam = NETWORKS.get(family)
    params = fam.Params.model_validate({"name": family})
    declared = getattr(fam, "min_batch", lambda p, info, role: 1)
    for role_type in fam.builders:
        for info in INFOS.values():
            role, _ = probe_role(role_type)
            if role_type in CONDITIONED:     # inputs beside z or x: the probe's own call
                try:
                    net = R.build_nets(fam, params, info, {"net": role})["net"].train()
                except ConfigError:
                    continue
                assert probe_role(role_type, declared(params, info, role))[1](net, info)
                continue
            variants = [role] + ([R.CriticRole(out_dim=role.out_dim, per_sample=True)]
                                 if role_type is R.CriticRole else [])
            if family == "translation" and role_type is R.CriticRole:
                variants = [R.CriticRole(reads=("a",)), R.CriticRole(reads=("a",), per_sample=True)]
            for role in variants:
                try:
                    net = R.build_nets(fam, params, info, {"net": role})["net"].train()
                except ConfigError:
                    continue
                n = declared(params, info, role)
                labels = role_type is not R.TranslatorRole and getattr(role, "num_classes", 0)
                z_in = role_type in (R.GeneratorRole, R.DecoderRole, R.SequenceGeneratorRole)
                run = lambda b: net(torch.randn(b, *(  # noqa: E731
                    (getattr(role, "in_dim", None) or role.z_dim,) if z_in else info.shape)),
                    *([torch.arange(b) % 10] if labels else []))
                run(n)
                if n > 1:
                    with pytest.raises(ValueError, match="more than 1 value per channel"):
                        run(n - 1)


def test_a_family_refuses_roles_it_cannot_build():
    with pytest.raises(ConfigError, match="cannot build a translator"):
        R.build_nets(NETWORKS.get("mlp"), NETWORKS.get("mlp").Params(), INFOS["toy"],
                     {"T": R.TranslatorRole()})


def test_roles_say_double_backward_explicitly():
    wgan_gp = OBJECTIVES.get("wgan-gp")
    roles = wgan_gp.roles(wgan_gp.Params(), INFOS["toy"], Latent(2))
    assert roles["D"].double_backward and roles["D"].per_sample and not roles["D"].may_compile
    assert roles["G"].may_compile
    phases = wgan_gp.phases(wgan_gp.Params(), PhaseOptions(d_steps=5))
    assert [p.repeats for p in phases] == [5, 1]
