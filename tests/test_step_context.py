"""The step context: functional optimizer steps, differentiable inner updates, real batches
(shared, fresh, extra) and what they count, scratch, rank means and end-of-step hooks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gankit.config import OptimConfig, build_config, validate
from gankit.core import functional_optim as F
from gankit.core.step import FunctionalNet, Phase, StepContext
from gankit.objectives import functional as L
from gankit.objectives.base import ObjectiveParams
from gankit.objectives.gan import GANObjective
from gankit.registry import OBJECTIVES
from gankit.train.optim import build_optimizer, fusable
from gankit.train.trainer import Trainer

OPTIMS = [OptimConfig(name="adam", lr=0.01, betas=(0.5, 0.9)),
          OptimConfig(name="adam", lr=0.003, weight_decay=0.1),
          OptimConfig(name="rmsprop", lr=0.01),
          OptimConfig(name="rmsprop", lr=0.01, momentum=0.5, weight_decay=0.01),
          OptimConfig(name="sgd", lr=0.1),
          OptimConfig(name="sgd", lr=0.1, momentum=0.9),
          OptimConfig(name="adam", lr=0.01, grad_clip=0.05)]


@pytest.mark.parametrize("cfg", OPTIMS, ids=lambda c: f"{c.name}-m{c.momentum}-wd{c.weight_decay}"
                                                    f"-clip{c.grad_clip}")
def test_functional_steps_equal_torch_optim(cfg):
    """Two real steps build some state; then three functional steps from a copy of that state
    equal three more real steps (and leave the real optimizer alone)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = build_optimizer(cfg, net.parameters())
    xs = [torch.randn(8, 3) for _ in range(5)]
    def real_step(x):
        opt.zero_grad()
        net(x).square().mean().backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()

    for x in xs[:2]:
        real_step(x)
    before = copy.deepcopy(opt.state_dict())
    fnet = FunctionalNet(net, opt, cfg, cfg.lr)
    for x in xs[2:]:
        fnet.step(fnet(x).square().mean())
    assert str(opt.state_dict()) == str(before)            # the copy never touched it
    for x in xs[2:]:
        real_step(x)
    for name, p in net.named_parameters():
        torch.testing.assert_close(fnet.params[name], p, rtol=1e-5, atol=1e-6, msg=name)


# ------------------------------------------------------------------ unrolled inner steps
# The registered unrolled GAN (gankit.objectives.unrolled, Metz et al. 2017) with 3 inner steps,
# each on its own real batch and noise ("fresh"), and the non-saturating G loss:
#     L_G = -E[log D_K(G(z))],  D_K = K functional steps of D's optimizer on L_D
# (tests/test_unrolled.py checks the other settings against a hand-written reference).
INNER = 3


def record_draws(trainer) -> dict:
    """Record, in float64, every real batch the trainer draws and every noise batch the
    objective samples (the unrolled G phase draws K of each, then G's noise)."""
    record = {"real": [], "z": []}
    draw = trainer.draw_real

    def draw_real():
        batch = {k: v.double() for k, v in draw().items()}
        record["real"].append(batch["x"])
        return batch
    trainer.draw_real = draw_real
    obj = trainer.objective
    obj.latent = type(obj.latent)(obj.latent.dim)        # a copy whose sample we may wrap
    sample = obj.latent.sample

    def sample_z(n, rng, dev):
        z = sample(n, rng, dev).double()
        record["z"].append(z)
        return z
    object.__setattr__(obj.latent, "sample", sample_z)
    return record


def unrolled_trainer(tmp_path, optim_d=None, inner="fresh", **train):
    cfg = validate({"data": {"name": "ring"},
                    "model": {"name": "mlp", "z_dim": 2, "g_hidden": 5, "d_hidden": 5,
                              "g_depth": 1, "d_depth": 1, "activation": "tanh",
                              "d_activation": "tanh"},
                    "objective": {"name": "unrolled", "unrolling_steps": INNER,
                                  "inner_batches": inner},
                    "optim": {"D": optim_d or {"lr": 0.05, "betas": [0.5, 0.9]}},
                    "train": {"steps": 4, "batch_size": 16} | train,
                    "log": {"progress": False}})
    return Trainer(cfg, tmp_path)


def reference_loss(G, D, opt_state, cfg, lr, record):
    """L_G after K *real* torch.optim steps of a copy of D (no graph): for finite differences."""
    D = copy.deepcopy(D).requires_grad_(True)
    opt = build_optimizer(cfg, D.parameters())
    opt.load_state_dict(copy.deepcopy(opt_state))     # load_state_dict would alias its tensors
    for real, z in zip(record["real"], record["z"][:INNER]):
        opt.zero_grad()
        with torch.no_grad():
            fake = G(z)
        L.d_loss_bce(D(real), D(fake)).backward()
        opt.step()
    with torch.no_grad():
        return L.g_loss_nonsaturating(D(G(record["z"][INNER]))).item()


@pytest.mark.parametrize("optim_d", [{"name": "sgd", "lr": 0.5, "momentum": 0.5},
                                     {"name": "adam", "lr": 0.05, "betas": [0.5, 0.9]}],
                         ids=["sgd-momentum", "adam"])
def test_unrolled_g_gradient_matches_finite_differences(tmp_path, optim_d):
    """G's gradient through 3 functional D updates (float64) equals central differences of
    the same loss after 3 real torch.optim steps of a copy of D; D's optimizer is untouched."""
    trainer = unrolled_trainer(tmp_path, optim_d)
    trainer.fit(until=2)                                  # D's Adam has a state to copy
    trainer.nets.double()                                 # float64 for finite differences
    for opt in trainer.optims.values():
        for st in opt.state.values():
            for k, v in st.items():
                if torch.is_tensor(v) and k != "step":
                    st[k] = v.double()
    G, D = trainer.nets["G"], trainer.nets["D"]
    obj = trainer.objective
    record = record_draws(trainer)                        # same draws, float64
    d_state = copy.deepcopy(trainer.optims["D"].state_dict())
    ctx = trainer.step_context()
    for net in trainer.nets.values():
        net.requires_grad_(False)
    G.requires_grad_(True)
    loss, _ = obj.loss("G", ctx)
    grads = torch.autograd.grad(loss, list(G.parameters()))
    assert str(trainer.optims["D"].state_dict()) == str(d_state)   # inner steps: copies only
    cfg_d, lr = trainer.cfg.optim["D"], trainer.lr("D")
    h = 1e-6
    worst = 0.0

    def at(flat, i, value):
        with torch.no_grad():
            flat[i] = value
        return reference_loss(G, D, d_state, cfg_d, lr, record)

    for p, g in zip(G.parameters(), grads):
        flat, gflat = p.data.view(-1), g.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            fd = (at(flat, i, old + h) - at(flat, i, old - h)) / (2 * h)
            at(flat, i, old)
            worst = max(worst, abs(fd - gflat[i].item()))
    assert loss.item() == pytest.approx(reference_loss(G, D, d_state, cfg_d, lr, record),
                                        abs=1e-7)
    assert worst < 1e-4, f"largest |analytic - finite difference| = {worst:.2e}"
    # the unrolled copy's gradient differs from the plain (K = 0) one: the inner steps count
    plain = torch.autograd.grad(L.g_loss_nonsaturating(D(G(record["z"][INNER]))),
                                list(G.parameters()))
    assert max((a - b).abs().max().item() for a, b in zip(grads, plain)) > 1e-4


@pytest.mark.parametrize("inner,batches", [("fresh", 1 + INNER), ("step", 1)])
def test_unrolled_objective_trains_and_counts_extra_batches(tmp_path, inner, batches):
    trainer = unrolled_trainer(tmp_path, inner=inner)
    trainer.fit()
    # per step: one fresh batch for D and, with "fresh" inner batches, three extra real
    # batches drawn inside the G phase ("step": the inner steps reread the D step's batch)
    assert trainer.c.images_seen == 4 * batches * 16
    assert all(torch.isfinite(p).all() for p in trainer.nets.parameters())


# ------------------------------------------------------------------ real batches and scratch
class RecorderParams(ObjectiveParams):
    name: str = "recorder"


class Recorder(GANObjective):
    """Records what every phase saw (test objective; Goodfellow et al. 2014 losses).

        L_A = L_B = L_C = -E[log D(x)] - E[log(1 - D(G(z)))]   (A and C: D; B: G, no data)
    """

    Params = RecorderParams

    @classmethod
    def phases(cls, params, options):
        return (Phase("A", ("D",), repeats=2, real="shared"), Phase("B", ("G",), real="none"),
                Phase("C", ("D",), real="fresh"))

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.seen = []

    def _loss(self, ctx):
        self.seen.append((ctx.phase, ctx.batch.get("x"), dict(ctx.scratch)))
        ctx.scratch[ctx.phase] = ctx.scratch.get(ctx.phase, 0) + 1
        x = ctx.batch.get("x", torch.zeros(ctx.local_batch, 2))
        loss = self.nets["D"](x).mean() + self.nets["G"](self.sample_inputs(2, ctx.rng)["z"]).mean()
        return loss, {}

    loss_A = loss_B = loss_C = _loss

    def end_step(self, ctx):
        self.seen.append(("end", None, dict(ctx.scratch)))


def test_real_policies_scratch_and_end_step(tmp_path):
    OBJECTIVES.register("recorder", Recorder)
    try:
        cfg = validate({"data": {"name": "ring"}, "objective": {"name": "recorder"},
                        "model": {"name": "mlp", "g_hidden": 4, "d_hidden": 4},
                        "train": {"steps": 2, "batch_size": 8}, "log": {"progress": False}})
        trainer = Trainer(cfg, tmp_path)
        trainer.fit()
    finally:
        OBJECTIVES.unregister("recorder")
    seen = trainer.objective.seen
    assert [s[0] for s in seen] == ["A", "A", "B", "C", "end"] * 2
    a1, a2, b, c, end = seen[:5]
    assert a1[1] is a2[1]                              # "shared": one batch for both repeats
    assert b[1] is None and not torch.equal(c[1], a1[1])  # "none" and "fresh"
    assert a1[2] == {}
    assert end[2]["A"] == 2 and end[2]["B"] == 1 and end[2]["C"] == 1
    assert seen[5][2] == {}                            # scratch starts empty every step
    assert not torch.equal(seen[5][1], a1[1])          # and the next step shares a new batch
    assert trainer.c.images_seen == 2 * 2 * 8          # shared once + fresh once, per step


def test_translation_reads_one_real_batch_per_step(data_root, tmp_path):
    for preset in ("cyclegan-strokes", "pix2pix-edges"):
        cfg = build_config(preset, ["data.split=test", "data.n_examples=4", "model.ngf=4",
                                    "model.ndf=4", "train.batch_size=4", "train.steps=3"])
        trainer = Trainer(cfg, tmp_path / preset)
        trainer.fit()
        assert trainer.c.images_seen == 3 * 4, preset


def test_standalone_context_and_rank_mean():
    batch = {"x": torch.ones(5, 2)}
    ctx = StepContext.standalone(batch)
    assert ctx.local_batch == 5 and ctx.batch is not batch and ctx.batch["x"] is batch["x"]
    x = torch.tensor([1.0, 3.0])
    assert torch.equal(ctx.mean_over_ranks(x), x)        # one process: the value itself
    with pytest.raises(RuntimeError, match="no data source"):
        ctx.draw_real()
    assert F.copy_state({"step": 3, "exp_avg": torch.ones(2)}, torch.zeros(2))["step"].item() == 3


def test_adam_is_fused_where_it_can_be_and_equals_the_per_tensor_loop():
    """build_optimizer takes torch's fused Adam for floating CPU tensors; its steps equal the
    per-tensor (foreach-free) Adam's to rounding."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    ref = copy.deepcopy(net)
    cfg = OptimConfig(name="adam", lr=0.01, betas=(0.5, 0.9), weight_decay=0.01)
    opt = build_optimizer(cfg, net.parameters())
    assert opt.defaults["fused"] and fusable(list(net.parameters()))
    assert not fusable([nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2, device="meta"))])
    loop = torch.optim.Adam(ref.parameters(), lr=0.01, betas=(0.5, 0.9), weight_decay=0.01,
                            foreach=False)
    for _ in range(5):
        x = torch.randn(8, 3)
        for m, o in ((net, opt), (ref, loop)):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
    for p, q in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
