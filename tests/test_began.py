"""BEGAN (Berthelot, Schumm & Metz 2017): the losses against hand computations, the k_t
control (update, clipping, agreement over ranks, exact resume), its networks, the learning-rate
floor, and the figures it draws."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gankit import api
from gankit.config import build_config, validate
from gankit.core import roles as R
from gankit.core.step import Latent, StepContext
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.objectives.began import (
    BEGAN,
    L_FAKE,
    L_REAL,
    BEGANParams,
    convergence_measure,
    d_loss,
    k_update,
    reconstruction_error,
)
from gankit.registry import NETWORKS
from gankit.train.checkpoint import load_checkpoint, newest_intact
from gankit.train.optim import lr_factor
from gankit.train.trainer import Trainer

TOY = {"data": {"name": "ring"},
       "model": {"name": "mlp", "z_dim": 2, "g_hidden": 16, "d_hidden": 16, "g_depth": 2,
                 "d_depth": 2},
       "objective": {"name": "began", "code_dim": 2},
       "train": {"steps": 4, "batch_size": 8},
       "log": {"progress": False, "sample_at": [], "n_fixed": 4, "every": 1}}


def toy_config(**sections):
    """TOY with sections merged in (a section naming another variant replaces it)."""
    raw = {k: dict(v) for k, v in TOY.items()}
    for k, v in sections.items():
        raw[k] = v if v.get("name", raw.get(k, {}).get("name")) != raw.get(k, {}).get("name") \
            else raw.get(k, {}) | v
    return validate(raw)


# ----------------------------------------------------------------------------- the maths
REAL = torch.tensor([[1.0, -2.0], [3.0, 0.0]])          # mean |x| = 6 / 4 = 1.5
FAKE = torch.tensor([[0.4, 0.4], [-0.8, 0.0]])          # mean |G(z)| = 1.6 / 4 = 0.4


class HalfAE(nn.Module):
    """D(v) = s v with s = 0.5: L(v) = mean |s v - v| = 0.5 mean |v|."""

    def __init__(self):
        super().__init__()
        self.s = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        return self.s * x


class FixedG(nn.Module):
    """G(z) = w FAKE[:B] with w = 1: fixed samples whose gradient reaches w."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))

    def forward(self, z):
        return self.w * FAKE[:z.shape[0]]


def tiny_objective(k: float = 0.25, gamma: float = 0.5, lambda_k: float = 0.001) -> BEGAN:
    params = BEGANParams(gamma=gamma, lambda_k=lambda_k, code_dim=1)
    obj = BEGAN(params, {"G": FixedG(), "D": HalfAE()}, Latent(2), DataInfo("toy2d", (2,)))
    obj.k = torch.tensor(k)
    return obj


def test_reconstruction_error_is_the_per_sample_mean_absolute_error():
    x_hat = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    # sample 1: (|0 - 1| + |0 + 2|) / 2 = 1.5; sample 2: (|1 - 3| + |1 - 0|) / 2 = 1.5
    assert torch.equal(reconstruction_error(x_hat, REAL), torch.tensor([1.5, 1.5]))
    img = torch.zeros(3, 1, 2, 2)
    img[1] = 1.0
    assert torch.equal(reconstruction_error(torch.zeros_like(img), img), torch.tensor([0., 1., 0.]))


def test_loss_formulas_against_a_hand_computation():
    # L(x) = 0.5 * 1.5 = 0.75, L(G(z)) = 0.5 * 0.4 = 0.2, k = 0.25, gamma = 0.5
    assert d_loss(torch.tensor(0.75), torch.tensor(0.2), 0.25).item() == pytest.approx(0.7)
    assert convergence_measure(torch.tensor(0.75), torch.tensor(0.2), 0.5).item() == \
        pytest.approx(0.75 + abs(0.5 * 0.75 - 0.2))                      # 0.925
    obj = tiny_objective()
    ctx = StepContext.standalone({"x": REAL}, rng=torch.Generator().manual_seed(0))
    ctx.phase = "D"
    loss_d, logs_d = obj.loss_D(ctx)
    assert loss_d.item() == pytest.approx(0.75 - 0.25 * 0.2)                # L_D = 0.7
    assert logs_d["L(x)"].item() == pytest.approx(0.75)
    assert logs_d["k_t"].item() == 0.25
    loss_d.backward()                # G(z_D) is detached: only D's parameter gets a gradient
    assert obj.nets["G"].w.grad is None
    # dL_D/ds = d/ds [mean|s x - x| - k mean|s G - G|] = -mean|x| + k mean|G| at s = 0.5
    assert obj.nets["D"].s.grad.item() == pytest.approx(-1.5 + 0.25 * 0.4)
    ctx.phase, ctx.batch = "G", {}
    loss_g, logs_g = obj.loss_G(ctx)
    assert loss_g.item() == pytest.approx(0.2)                              # L_G = L(G(z))
    assert logs_g["M_global"].item() == pytest.approx(0.925)
    loss_g.backward()
    assert obj.nets["G"].w.grad.item() == pytest.approx(0.2)   # L_G = 0.5 mean|w FAKE|: 0.2 at w=1
    obj.end_step(ctx)
    assert obj.k.item() == pytest.approx(0.25 + 0.001 * (0.5 * 0.75 - 0.2))   # 0.250175


def test_k_update_is_proportional_and_clipped_to_the_unit_interval():
    k = torch.tensor(0.3)
    assert k_update(k, torch.tensor(0.4), torch.tensor(0.1), 0.5, 0.001).item() == \
        pytest.approx(0.3 + 0.001 * 0.1)
    assert k_update(torch.tensor(0.0), torch.tensor(0.1), torch.tensor(0.9), 0.5, 0.001).item() == 0.0
    assert k_update(torch.tensor(0.9995), torch.tensor(2.0), torch.tensor(0.0), 1.0, 0.001).item() == 1.0
    assert k_update(torch.tensor(0.7), torch.tensor(1.0), torch.tensor(0.0), 1.0, 1.0).item() == 1.0
    nan = torch.tensor(float("nan"))
    assert k_update(k, nan, torch.tensor(0.1), 0.5, 0.001).item() == pytest.approx(0.3)  # kept
    # the optional floor (not in the paper): clipped to [k_min, 1], and the objective starts there
    assert k_update(torch.tensor(0.05), torch.tensor(0.1), torch.tensor(0.9), 0.5, 0.001,
                    k_min=0.05).item() == pytest.approx(0.05)
    floored = BEGAN(BEGANParams(code_dim=1, k_min=0.05), tiny_objective().nets, Latent(2),
                    DataInfo("toy2d", (2,)))
    assert floored.k.item() == pytest.approx(0.05) and floored.k.dtype == torch.float32


def test_k_starts_at_zero_and_uses_the_mean_of_repeated_d_steps():
    obj = tiny_objective()
    fresh = BEGAN(BEGANParams(code_dim=1), obj.nets, Latent(2), DataInfo("toy2d", (2,)))
    assert fresh.k.item() == 0.0 and fresh.k.dtype == torch.float32
    ctx = StepContext.standalone({"x": REAL})
    ctx.scratch[L_REAL] = [torch.tensor(0.5), torch.tensor(0.7)]        # two D repeats: 0.6
    ctx.scratch[L_FAKE] = torch.tensor(0.1)
    obj.end_step(ctx)
    assert obj.k.item() == pytest.approx(0.25 + 0.001 * (0.5 * 0.6 - 0.1))
    before = obj.k.clone()
    obj.end_step(StepContext.standalone({"x": REAL}))                    # no phase ran: no update
    assert torch.equal(obj.k, before)


def test_k_is_the_same_on_every_rank():
    """Two ranks with different local losses: end_step averages [L(x), L(G(z))] over the
    ranks (``ctx.mean_over_ranks``) before the update, so both compute the same k."""
    local = {0: (0.8, 0.1), 1: (0.4, 0.5)}
    stacked = {r: torch.tensor(v) for r, v in local.items()}
    seen = []

    def all_reduce_mean(x):
        seen.append(x.clone())
        return (stacked[0] + stacked[1]) / 2

    ks = []
    for lx, lg in local.values():
        obj = tiny_objective(k=0.5)
        ctx = StepContext.standalone({"x": REAL})
        ctx._mean = all_reduce_mean
        ctx.scratch[L_REAL], ctx.scratch[L_FAKE] = [torch.tensor(lx)], torch.tensor(lg)
        obj.end_step(ctx)
        ks.append(obj.k)
    assert [s.tolist() for s in seen] == [pytest.approx([0.8, 0.1]), pytest.approx([0.4, 0.5])]
    assert torch.equal(ks[0], ks[1])
    assert ks[0].item() == pytest.approx(0.5 + 0.001 * (0.5 * 0.6 - 0.3))


# ----------------------------------------------------------------------------- engine
def test_k_is_checkpointed_and_resumes_bit_exactly(tmp_path):
    cfg = toy_config(objective={"lambda_k": 0.05, "gamma": 1.0})
    a = Trainer(cfg, tmp_path / "a")
    a.objective.k = torch.tensor(0.4)                  # start inside (0, 1): k moves both ways
    a.fit(until=2)
    a.save()
    k_saved = a.objective.k.clone()
    assert 0.0 < k_saved.item() < 1.0 and k_saved.item() != 0.4
    state = load_checkpoint(newest_intact(tmp_path / "a")[0])
    assert torch.equal(state["objective"]["k"], k_saved)
    b = Trainer(cfg, tmp_path / "b")
    b.load(newest_intact(tmp_path / "a")[1])
    assert torch.equal(b.objective.k, k_saved)
    for _ in range(2):
        a.train_step()
        b.train_step()
    assert torch.equal(a.objective.k, b.objective.k)
    for net in a.nets:
        for key, p in a.nets[net].state_dict().items():
            assert torch.equal(p, b.nets[net].state_dict()[key]), f"{net}.{key}"


def test_logs_k_m_global_and_both_reconstruction_errors(tmp_path):
    run = api.train(toy_config(log=dict(TOY["log"], figures=False)), tmp_path / "run")
    rows = run.read_metrics()
    keys = set().union(*rows)
    assert {"loss/D", "loss/G", "L(x)", "L(G(z))", "k_t", "M_global"} <= keys
    for r in rows:
        if "M_global" in r:
            assert 0.0 <= r["k_t"] <= 1.0 and r["M_global"] >= r["L(x)"]


def test_config_checks_are_one_line_errors():
    with pytest.raises(ConfigError, match="gamma"):
        toy_config(objective={"gamma": 1.5})
    with pytest.raises(ConfigError, match="toy2d or image"):
        validate({"data": {"name": "gaussian1d"}, "objective": {"name": "began"}})
    with pytest.raises(ConfigError, match="began network takes image"):
        validate({"data": {"name": "ring"}, "model": {"name": "began"},
                  "objective": {"name": "began"}})
    with pytest.raises(ConfigError, match="cannot build a critic"):
        R.build_nets(NETWORKS.get("began"), NETWORKS.get("began").Params(),
                     DataInfo("image", (1, 28, 28)), {"D": R.CriticRole()})
    with pytest.raises(ConfigError, match="supports 1- or 3-channel images"):
        R.build_nets(NETWORKS.get("began"), NETWORKS.get("began").Params(),
                     DataInfo("image", (1, 20, 20)), {"D": R.AutoencoderRole(code_dim=8)})


@pytest.mark.parametrize("side,stages", [(28, 3), (32, 3), (64, 4)])
def test_began_networks_follow_the_paper_layout(side, stages):
    fam, params = NETWORKS.get("began"), NETWORKS.get("began").Params(ngf=4, ndf=4)
    info = DataInfo("image", (1, side, side))
    nets = R.build_nets(fam, params, info, {"G": R.GeneratorRole(z_dim=8),
                                            "D": R.AutoencoderRole(code_dim=5)})
    x = torch.randn(2, 1, side, side)
    assert nets["D"].encode(x).shape == (2, 5)
    assert nets["D"](x).shape == x.shape and nets["G"](torch.rand(2, 8)).shape == x.shape
    convs = [m for m in nets["G"].modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 * stages + 1 and all(c.kernel_size == (3, 3) for c in convs)
    ups = [m for m in nets["G"].modules() if isinstance(m, nn.Upsample)]
    assert len(ups) == stages - 1 and all(u.mode == "nearest" for u in ups)
    assert any(isinstance(m, nn.ELU) for m in nets["D"].modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in nets["D"].modules())
    widths = [m.out_channels for m in nets["D"].encoder.modules() if isinstance(m, nn.Conv2d)]
    assert max(widths) == 4 * stages                    # n, 2n, 3n, ...: linear growth


def test_mlp_autoencoder_has_a_code_bottleneck():
    fam = NETWORKS.get("mlp")
    net = R.build_nets(fam, fam.Params(d_hidden=8), DataInfo("toy2d", (2,)),
                       {"D": R.AutoencoderRole(code_dim=1)})["D"]
    x = torch.randn(5, 2)
    assert net.encode(x).shape == (5, 1) and net(x).shape == (5, 2)


def test_learning_rate_floor():
    cfg = build_config("began-mnist").optim["D"]
    assert cfg.min_lr == pytest.approx(2.5e-5) and cfg.schedule == "cosine"
    total = 1000
    assert lr_factor(cfg, 0, total) == 1.0
    assert lr_factor(cfg, total - 1, total) == pytest.approx(cfg.min_lr / cfg.lr)
    mid = lr_factor(cfg, 750, total)                     # half-way through the decay: 1/2
    assert mid == pytest.approx(0.5 * (1 + math.cos(math.pi * 250 / 500)))
    linear = cfg.model_copy(update={"schedule": "linear"})
    assert lr_factor(linear, total - 1, total) == pytest.approx(0.25)
    no_floor = cfg.model_copy(update={"min_lr": 0.0})
    assert lr_factor(no_floor, total - 1, total) < 1e-4
    higher = cfg.model_copy(update={"min_lr": 1.0})     # a floor above the rate: no decay
    assert lr_factor(higher, total - 1, total) == 1.0


# ----------------------------------------------------------------------------- figures
@pytest.mark.parametrize("kind", ["toy2d", "image"])
def test_reconstruction_figure_and_curves_are_drawn(kind, data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_STRICT_FIGURES", "1")
    from gankit.plots import common
    titles = []
    real_save = common.save

    def spy(fig, path):
        titles.extend(a.get_title() for a in fig.axes)
        return real_save(fig, path)
    monkeypatch.setattr(common, "save", spy)
    if kind == "image":
        cfg = toy_config(data={"name": "mnist", "split": "test"},
                         model={"name": "began", "z_dim": 4, "ngf": 2, "ndf": 2, "repeats": 1})
    else:
        cfg = toy_config()
    run = api.train(cfg, tmp_path / "run")
    assert (run.path / "plots" / "reconstruction.png").stat().st_size > 0
    assert (run.path / "plots" / "losses.png").exists()
    assert {common.TITLES["M_global"], common.TITLES["k_t"], common.TITLES["L("]} <= set(titles)


def test_critic_map_says_it_shows_the_reconstruction_error(tmp_path):
    from gankit.plots.toy import critic_label
    trainer = Trainer(toy_config(), tmp_path)
    assert critic_label(trainer) == "reconstruction error L(x)"
