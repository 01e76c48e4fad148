"""The improved techniques of Salimans et al. 2016, each an option of the sigmoid GANs, tested
against hand computations: feature matching (3.1), minibatch discrimination (3.2), historical
averaging (3.3), one-sided label smoothing and virtual batch normalisation (3.4)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from gankit.config import validate
from gankit.core.roles import CriticRole, GeneratorRole, build_nets
from gankit.core.step import StepContext
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.nn import dcgan, mlp
from gankit.nn.layers import MinibatchDiscrimination, VirtualBatchNorm
from gankit.objectives import functional as L
from gankit.objectives.base import Objective
from gankit.objectives.improved import HistoricalAverage, feature_matching_loss
from gankit.train.checkpoint import newest_intact
from gankit.train.trainer import Trainer


def test_one_sided_label_smoothing_matches_the_formula():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0])
    sig = lambda v: 1 / (1 + math.exp(-v))                                  # noqa: E731
    t = 0.9
    want = -sum(t * math.log(sig(r)) + (1 - t) * math.log(1 - sig(r)) for r in (0.0, 2.0)) / 2 \
        - math.log(1 - sig(-1.0))
    assert L.d_loss_bce(real, fake, real_label=t).item() == pytest.approx(want, rel=1e-6)
    # t = 1 is the plain loss, bit for bit
    assert torch.equal(L.d_loss_bce(real, fake, 1.0), L.d_loss_bce(real, fake))


def test_smoothed_optimal_discriminator_is_t_times_d_star():
    """With p_data = p_g the optimal D is t p_data / (p_data + p_g) = t / 2 (Salimans et al.
    2016, section 3.4: only the real side is smoothed, so no spurious fake target)."""
    x = torch.zeros(64)                            # the same points are real and generated
    logit = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([logit], lr=1.0)
    for _ in range(500):
        opt.zero_grad()
        L.d_loss_bce(x + logit, x + logit, real_label=0.8).backward()
        opt.step()
    assert torch.sigmoid(logit).item() == pytest.approx(0.4, abs=1e-4)


TOY = {"data": {"name": "ring"}, "model": {"name": "mlp", "g_hidden": 16, "d_hidden": 16},
       "train": {"steps": 2, "batch_size": 16}, "log": {"progress": False, "sample_at": []}}


@pytest.mark.parametrize("objective", ["nonsaturating", "minimax", "unrolled"])
def test_label_smoothing_is_an_option_of_the_sigmoid_games(objective, tmp_path):
    cfg = validate(TOY | {"objective": {"name": objective, "real_label": 0.9}})
    trainer = Trainer(cfg, tmp_path)
    trainer.train_step()
    assert trainer.objective.params.real_label == 0.9


def test_label_smoothing_is_refused_where_it_means_nothing():
    with pytest.raises((ConfigError, ValueError)):
        validate(TOY | {"objective": {"name": "wgan-gp", "real_label": 0.9}})
    with pytest.raises((ConfigError, ValueError)):
        validate(TOY | {"objective": {"name": "nonsaturating", "real_label": 0.4}})


def tiny(objective: dict, model: dict | None = None, **sections):
    """A 2-step ring run with 16-unit MLPs, batch 16, and the given options."""
    raw = copy.deepcopy(TOY)
    raw["objective"] = objective
    raw["model"] = raw["model"] | (model or {})
    return validate(raw | sections)


# ---------------------------------------------------------------- feature matching (3.1)
def test_feature_matching_is_the_squared_distance_of_the_feature_means():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])              # mean (2, 3)
    fake = torch.tensor([[0.0, 1.0], [0.0, -1.0], [0.0, 0.0]])  # mean (0, 0)
    assert feature_matching_loss(real, fake).item() == pytest.approx(2 ** 2 + 3 ** 2)
    assert feature_matching_loss(real, real[[1, 0]]).item() == 0.0


@pytest.mark.parametrize("objective", ["nonsaturating", "minimax", "unrolled"])
def test_feature_matching_g_loss_reads_d_features_of_a_real_batch(objective, tmp_path):
    cfg = tiny({"name": objective, "g_loss": "feature_matching", "unrolling_steps": 0}
               if objective == "unrolled" else {"name": objective, "g_loss": "feature_matching"})
    trainer = Trainer(cfg, tmp_path)
    assert trainer.roles["D"].features
    obj, D, G = trainer.objective, trainer.nets["D"], trainer.nets["G"]
    torch.manual_seed(3)
    real, z = torch.randn(16, 2), torch.randn(16, 2)
    ctx = StepContext.standalone({"x": real}, rng=torch.Generator().manual_seed(0))
    ctx.scratch["unrolled/step_batch"] = ({"x": real}, {"z": z})      # unrolled: the D step's
    obj.sample_inputs = lambda n, rng: {"z": z}                      # the G step's noise
    loss, _ = obj.loss_G(ctx)
    h = lambda x: D.net[:-1](x)                                       # noqa: E731 last hidden
    want = (h(real).mean(0) - h(G(z)).mean(0)).square().sum()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    if objective != "unrolled":        # G's own fresh real batch (unrolled: the step's)
        assert [p.real for p in trainer.phases] == ["fresh", "fresh"]


def test_feature_matching_on_conditional_and_auxiliary_games(tmp_path, data_root):
    for name in ("cgan", "acgan", "infogan"):
        cfg = validate({"data": {"name": "mnist", "split": "test", "labels": True},
                        "model": {"name": "dcgan", "z_dim": 4, "ngf": 4, "ndf": 4},
                        "objective": {"name": name, "g_loss": "feature_matching"},
                        "train": {"steps": 1, "batch_size": 8},
                        "log": {"progress": False, "sample_at": []}})
        trainer = Trainer(cfg, tmp_path / name)
        trainer.train_step()
        assert math.isfinite(trainer.pop_scalars()["loss/G"])


class NoFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, x):
        return self.lin(x).squeeze(1)


def test_a_critic_without_features_is_refused_in_one_line():
    family = type("Plain", (), {"builders": {CriticRole: lambda p, i, r: NoFeatures()}})
    params = type("P", (), {"name": "plain"})()
    info = DataInfo("toy2d", (2,))
    assert build_nets(family, params, info, {"D": CriticRole()})
    with pytest.raises(ConfigError, match="does not offer intermediate features"):
        build_nets(family, params, info, {"D": CriticRole(features=True)})


def test_feature_matching_is_refused_where_it_means_nothing():
    with pytest.raises((ConfigError, ValueError)):
        tiny({"name": "wgan-gp", "g_loss": "feature_matching"})
    with pytest.raises((ConfigError, ValueError)):
        tiny({"name": "minimax", "g_loss": "nonsaturating"})   # minimax's own is "minimax"


# ---------------------------------------------------------------- minibatch discrimination (3.2)
def o_by_hand(h: list[list[float]], T: list[list[list[float]]], bias: list[float]):
    """o(x_i)_b = sum_{j != i} exp(-sum_c |M_i[b][c] - M_j[b][c]|) + bias_b, M_i = h_i T."""
    A, B, C = len(T), len(T[0]), len(T[0][0])
    M = [[[sum(hi[a] * T[a][b][c] for a in range(A)) for c in range(C)] for b in range(B)]
         for hi in h]
    return [[sum(math.exp(-sum(abs(M[i][b][c] - M[j][b][c]) for c in range(C)))
                 for j in range(len(h)) if j != i) + bias[b] for b in range(B)]
            for i in range(len(h))]


@pytest.mark.parametrize("double_backward", [False, True])
def test_minibatch_discrimination_matches_a_hand_computation(double_backward):
    layer = MinibatchDiscrimination(2, kernels=2, dims=2, double_backward=double_backward)
    assert layer.bias.tolist() == [-1.0, -1.0]                       # the authors' init
    s = 2 ** -0.5
    with torch.no_grad():                           # unit columns, exp(log_scale) = 1, 2: T
        layer.theta.copy_(torch.tensor([[[1.0, 0.0], [s, 0.6]], [[0.0, 1.0], [s, 0.8]]]))
        layer.log_scale.copy_(torch.tensor([[0.0, 0.0], [math.log(2.0), 0.0]]))
    T = [[[1.0, 0.0], [2 * s, 0.6]], [[0.0, 1.0], [2 * s, 0.8]]]
    assert torch.allclose(layer.weight, torch.tensor(T))
    h = [[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]]
    out = layer(torch.tensor(h))
    assert out.shape == (3, 2 + 2)
    assert torch.equal(out[:, :2], torch.tensor(h))                  # features pass through
    assert torch.allclose(out[:, 2:], torch.tensor(o_by_hand(h, T, [-1.0, -1.0])), atol=1e-6)


def test_minibatch_discrimination_paths_agree_and_one_differentiates_twice():
    torch.manual_seed(0)
    h = torch.randn(6, 4, requires_grad=True)
    fast, slow = MinibatchDiscrimination(4, 3, 2), MinibatchDiscrimination(4, 3, 2, True)
    slow.load_state_dict(fast.state_dict())
    assert torch.allclose(fast(h), slow(h), atol=1e-5)
    (g,) = torch.autograd.grad(slow(h)[:, 4:].sum(), h, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), slow.theta)        # unrolled critics need it
    assert torch.isfinite(gg).all()


def test_minibatch_discrimination_in_the_mlp_and_dcgan_critics():
    role = CriticRole(features=True)
    net = mlp.build_critic(mlp.MLPParams(minibatch_kernels=100), DataInfo("toy2d", (2,)), role)
    out, f = net(torch.randn(5, 2), features=True)
    assert out.shape == (5,) and f.shape == (5, 128)
    assert net.net[-1].in_features == 128 + 100                     # o(x) joins the features
    params = dcgan.DCGANParams(ngf=4, ndf=4, minibatch_kernels=100)
    net = dcgan.build_critic(params, DataInfo("image", (1, 28, 28)), role)
    x = torch.randn(5, 1, 28, 28)
    out, f = net(x, features=True)
    assert out.shape == (5,) and f.shape == (5, 8 * 7 * 7)
    assert net.head.in_features == 8 * 7 * 7 + 100
    # a sample's output depends on the rest of its batch: the point of the layer
    assert not torch.allclose(net(x[:2]), out[:2])


def test_minibatch_discrimination_is_refused_for_per_sample_critics():
    with pytest.raises(ConfigError, match="minibatch"):
        Trainer(tiny({"name": "wgan-gp"}, {"minibatch_kernels": 4}))


# ---------------------------------------------------------------- historical averaging (3.3)
def test_historical_average_term_and_gradient_by_hand():
    avg = HistoricalAverage()
    theta = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(0.5)}
    avg.update(theta)
    theta = {"w": torch.tensor([3.0, 6.0], requires_grad=True),
             "b": torch.tensor(1.5, requires_grad=True)}
    avg.update(theta)                      # means: w (2, 4), b 1.0
    term = avg.penalty(theta)
    assert term.item() == pytest.approx(1 ** 2 + 2 ** 2 + 0.5 ** 2)
    term.backward()
    assert theta["w"].grad.tolist() == [2.0, 4.0] and theta["b"].grad.item() == 1.0


def test_historical_averaging_adds_the_weighted_term_to_each_player(tmp_path):
    w = 0.25
    trainer = Trainer(tiny({"name": "nonsaturating", "historical_averaging": w}), tmp_path)
    seen = {"D": [], "G": []}
    for _ in range(3):                        # every step: D's and G's loss see these
        for name in seen:
            seen[name].append({k: p.detach().clone()
                               for k, p in trainer.nets[name].named_parameters()})
        trainer.train_step()
    for name, snaps in seen.items():
        avg = trainer.objective.history[name]
        assert avg.count == 3
        for k, mean in avg.mean.items():
            assert torch.allclose(mean, torch.stack([s[k] for s in snaps]).mean(0), atol=1e-6)
    # the phase's loss is the game's plus w times the term at the current parameters
    ctx = trainer.step_context()
    ctx.batch = trainer.draw_real()
    noise = ctx.rng.get_state()
    plain, _ = Objective.loss(trainer.objective, "D", ctx)         # the game's loss alone
    ctx.rng.set_state(noise)                                          # the same fakes again
    with_term, scalars = trainer.objective.loss("D", ctx)
    term = trainer.objective.history["D"].penalty(dict(trainer.nets["D"].named_parameters()))
    assert scalars["hist/D"].item() == pytest.approx(term.item())
    assert with_term.item() == pytest.approx(plain.item() + w * term.item(), rel=1e-5)


def test_resume_keeps_the_running_means(tmp_path):
    cfg = tiny({"name": "unrolled", "unrolling_steps": 1, "historical_averaging": 0.5})
    a = Trainer(cfg, tmp_path / "a")
    a.fit(until=2)
    a.save()
    b = Trainer(cfg, tmp_path / "b")
    b.load(newest_intact(tmp_path / "a")[1])
    for name in ("D", "G"):
        ha, hb = a.objective.history[name], b.objective.history[name]
        assert ha.count == hb.count == 2 and ha.mean.keys() == hb.mean.keys()
        assert all(torch.equal(ha.mean[k], hb.mean[k]) for k in ha.mean)
    a.train_step()
    b.train_step()
    for k, p in a.nets["D"].state_dict().items():
        assert torch.equal(p, b.nets["D"].state_dict()[k]), k


def test_historical_averaging_is_refused_where_it_means_nothing():
    with pytest.raises((ConfigError, ValueError)):
        tiny({"name": "lsgan", "historical_averaging": 1.0})
    with pytest.raises((ConfigError, ValueError)):
        tiny({"name": "nonsaturating", "historical_averaging": -1.0})


# ---------------------------------------------------------------- virtual batch norm (3.4)
def test_virtual_batch_norm_matches_the_formula():
    vbn = VirtualBatchNorm(1, reference_rows=2)
    with torch.no_grad():
        vbn.weight.fill_(2.0)
        vbn.bias.fill_(0.5)
    x = torch.tensor([[1.0], [3.0], [6.0]])           # reference rows 1, 3; then the example 6
    out = vbn(x)
    mu_ref, nu_ref = 2.0, (1 + 9) / 2                  # the reference's mean and mean square
    ref = [(v - mu_ref) / math.sqrt(1e-5 + nu_ref - mu_ref ** 2) for v in (1.0, 3.0)]
    mu, nu = 6 / 3 + 2 / 3 * mu_ref, 36 / 3 + 2 / 3 * nu_ref      # 1/(N+1) x + N/(N+1) ref
    ex = (6.0 - mu) / math.sqrt(1e-5 + nu - mu ** 2)
    assert out.squeeze(1).tolist() == pytest.approx([2 * v + 0.5 for v in ref + [ex]], rel=1e-5)
    # images: statistics per channel over rows and positions; the example's own over positions
    img = torch.randn(3, 2, 4, 4)
    out = VirtualBatchNorm(2, 2)(img)
    assert out.shape == img.shape and torch.isfinite(out).all()


GENERATORS = {
    "mlp": (lambda rows: mlp.build_generator(
        mlp.MLPParams(g_norm="virtual", vbn_reference=rows), DataInfo("toy2d", (2,)),
        GeneratorRole(z_dim=2)), (2,)),
    "dcgan": (lambda rows: dcgan.build_generator(
        dcgan.DCGANParams(g_norm="virtual", vbn_reference=rows, ngf=4, z_dim=3),
        DataInfo("image", (1, 28, 28)), GeneratorRole(z_dim=3)), (3,)),
}


@pytest.mark.parametrize("family", sorted(GENERATORS))
def test_virtual_batch_norm_outputs_do_not_depend_on_the_batch(family):
    build, z_shape = GENERATORS[family]
    torch.manual_seed(0)
    G = build(8)
    G(torch.randn(8, *z_shape))                     # the first call fixes the reference
    z = torch.randn(5, *z_shape)
    alone = G(z[:1])
    for mode in (G.train, G.eval):
        mode()
        assert torch.allclose(G(z)[:1], alone, atol=1e-5)
        assert torch.allclose(G(torch.cat([z[:1], 10 * z[1:]]))[:1], alone, atol=1e-5)
    G2 = build(8)
    G2.load_state_dict(G.state_dict())              # the reference travels with the weights
    assert torch.allclose(G2(z), G(z), atol=1e-6)


def test_batch_norm_outputs_do_depend_on_the_batch():
    G = mlp.build_generator(mlp.MLPParams(g_norm="batch"), DataInfo("toy2d", (2,)),
                            GeneratorRole(z_dim=2))
    z = torch.randn(5, 2)
    assert not torch.allclose(G(z)[:1], G(torch.cat([z[:1], 10 * z[1:]]))[:1])


def test_the_objective_draws_the_reference_from_its_inputs(tmp_path):
    cfg = tiny({"name": "nonsaturating"}, {"g_norm": "virtual", "vbn_reference": 8})
    a, b = Trainer(cfg, tmp_path / "a"), Trainer(cfg, tmp_path / "b")
    ref = a.nets["G"].net.reference
    assert ref.shape == (8, 2) and bool(a.nets["G"].net.has_reference)
    assert torch.equal(ref, b.nets["G"].net.reference)    # the same seed, the same batch
    assert 0.3 < ref.std().item() < 3                      # N(0, I) noise, not zeros
    a.train_step()
    assert torch.equal(ref, a.nets["G"].net.reference)    # fixed for the whole run
