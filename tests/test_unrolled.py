"""Unrolled GAN (Metz et al. 2017): G's gradient through K = 2 unrolled D updates equals a
reference written out by hand (explicit Adam / SGD-momentum steps, torch.autograd.grad with
create_graph), K = 0 is the non-saturating GAN, the settings validate, the presets hold the
authors' notebook settings."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from cli_runner import run_cli

from gankit.config import OptimConfig, build_config
from gankit.core.roles import build_nets
from gankit.core.step import FunctionalNet, Latent, StepContext
from gankit.data.base import DataInfo
from gankit.errors import ConfigError
from gankit.nn.mlp import MLPFamily, MLPParams
from gankit.objectives.classic import NonSaturating, NonSaturatingParams
from gankit.objectives.unrolled import STEP_BATCH, Unrolled, UnrolledParams
from gankit.train.optim import build_optimizer

B = 6                                                   # batch rows
ADAM = OptimConfig(name="adam", lr=0.05, betas=(0.5, 0.9))
SGD = OptimConfig(name="sgd", lr=0.5, momentum=0.5)


@pytest.fixture(autouse=True)
def float64():
    """Nets, noise and data in float64, so rounding is far below the 1e-4 tolerance."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


class Setup:
    """A tiny G (2 -> 3 tanh -> 2) and D (2 -> 4 tanh -> 1), D's optimizer after two real
    steps (so Adam has moments and a step count to copy), and a step context whose real
    batches and noise are recorded."""

    def __init__(self, K: int, inner: str = "step", g_loss: str = "nonsaturating",
                 optim: OptimConfig = ADAM, seed: int = 0):
        torch.manual_seed(seed)
        self.params = UnrolledParams(unrolling_steps=K, inner_batches=inner, g_loss=g_loss)
        self.latent, info = Latent(2), DataInfo("toy2d", (2,))
        model = MLPParams(z_dim=2, g_hidden=3, d_hidden=4, g_depth=1, d_depth=1,
                          activation="tanh", d_activation="tanh")
        self.nets = build_nets(MLPFamily, model, info,
                               Unrolled.roles(self.params, info, self.latent))
        self.G, self.D = self.nets["G"], self.nets["D"]
        self.obj = Unrolled(self.params, self.nets, self.latent, info)
        self.optim = optim
        self.opt = build_optimizer(optim, self.D.parameters())
        for _ in range(2):                               # real steps build the state
            self.opt.zero_grad()
            with torch.no_grad():
                fake = self.G(torch.randn(B, 2))
            bce(self.d_params(), torch.randn(B, 2), fake).backward()
            self.opt.step()
        self.reals: list[torch.Tensor] = []
        self.data_gen = torch.Generator().manual_seed(seed + 10)

    def d_params(self) -> list[torch.Tensor]:
        return list(self.D.parameters())                 # W1 (4, 2), b1 (4,), W2 (1, 4), b2 (1,)

    def draw_real(self) -> dict[str, torch.Tensor]:
        x = torch.randn(B, 2, generator=self.data_gen) + 1.0
        self.reals.append(x)
        return {"x": x}

    def context(self, rng_seed: int = 5) -> StepContext:
        return StepContext(step=0, local_batch=B, rng=torch.Generator().manual_seed(rng_seed),
                           device=torch.device("cpu"), _draw_real=self.draw_real,
                           _functional=lambda name: FunctionalNet(self.nets[name], self.opt,
                                                                  self.optim, self.optim.lr))

    def g_gradient(self, ctx: StepContext, obj=None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the D phase's loss (which keeps the step's batch and noise), then G's loss as
        the trainer would (D frozen), and G's gradient."""
        ctx.batch = self.draw_real()
        (obj or self.obj).loss("D", ctx)
        ctx.batch = {}
        self.D.requires_grad_(False)
        loss, _ = (obj or self.obj).loss("G", ctx)
        self.D.requires_grad_(True)
        return loss, list(torch.autograd.grad(loss, list(self.G.parameters())))


# ------------------------------------------------------------------ the reference, by hand
def d_forward(p: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """D(x) = W2 tanh(W1 x + b1) + b2, logits (B,)."""
    h = torch.tanh(x @ p[0].T + p[1])                   # (B, 4)
    return (h @ p[2].T + p[3]).squeeze(1)                # (B,)


def bce(p, real, fake) -> torch.Tensor:
    """L_D = -E[log sigmoid D(x)] - E[log(1 - sigmoid D(G(z)))]."""
    return F.softplus(-d_forward(p, real)).mean() + F.softplus(d_forward(p, fake)).mean()


def adam_step(p, g, s, cfg):
    """Kingma & Ba 2015, Algorithm 1, textbook form (bias-corrected moments)."""
    b1, b2 = cfg.betas
    t = s["step"] + 1
    m = b1 * s["exp_avg"] + (1 - b1) * g
    v = b2 * s["exp_avg_sq"] + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    return p - cfg.lr * m_hat / (v_hat.sqrt() + cfg.eps), {"step": t, "exp_avg": m,
                                                           "exp_avg_sq": v}


def sgd_step(p, g, s, cfg):
    """Heavy-ball momentum: buf = mu buf + g, p - lr buf."""
    buf = cfg.momentum * s["momentum_buffer"] + g
    return p - cfg.lr * buf, {"momentum_buffer": buf}


def hand_unrolled_gradient(s: Setup, batches, final_z, final_real, g_loss: str):
    """G's gradient after K = len(batches) explicit D updates from D's real state:
    each (real x, noise z) updates D on L_D; L_G is taken at theta_D^K, differentiated
    through the updates."""
    step = adam_step if s.optim.name == "adam" else sgd_step
    params = [q.detach().clone().requires_grad_(True) for q in s.d_params()]
    states = []
    for q in s.d_params():
        st = s.opt.state[q]
        states.append({"step": float(st["step"]), "exp_avg": st["exp_avg"].clone(),
                       "exp_avg_sq": st["exp_avg_sq"].clone()} if s.optim.name == "adam"
                      else {"momentum_buffer": st["momentum_buffer"].clone()})
    for x, z in batches:
        grads = torch.autograd.grad(bce(params, x, s.G(z)), params, create_graph=True)
        new = [step(p, g, st, s.optim) for p, g, st in zip(params, grads, states)]
        params, states = [n[0] for n in new], [n[1] for n in new]
    fake_logits = d_forward(params, s.G(final_z))
    if g_loss == "minimax":        # E[log D_K(x)] + E[log(1 - D_K(G(z)))]
        loss = -F.softplus(-d_forward(params, final_real)).mean() - F.softplus(fake_logits).mean()
    else:                          # -E[log D_K(G(z))]
        loss = F.softplus(-fake_logits).mean()
    shortcut = torch.autograd.grad(            # theta_D^K held constant: first order only
        F.softplus(-d_forward([p.detach() for p in params], s.G(final_z))).mean()
        if g_loss != "minimax" else
        -F.softplus(d_forward([p.detach() for p in params], s.G(final_z))).mean(),
        list(s.G.parameters()))
    return loss, list(torch.autograd.grad(loss, list(s.G.parameters()))), list(shortcut)


CASES = [("step", "nonsaturating", ADAM), ("fresh", "nonsaturating", ADAM),
         ("step", "minimax", ADAM), ("fresh", "minimax", SGD), ("step", "nonsaturating", SGD)]


@pytest.mark.parametrize("inner,g_loss,optim", CASES,
                         ids=[f"{i}-{g}-{o.name}" for i, g, o in CASES])
def test_k2_gradient_equals_hand_written_unrolling(inner, g_loss, optim):
    s = Setup(2, inner, g_loss, optim)
    ctx = s.context()
    before = copy.deepcopy(s.opt.state_dict())
    d_before = [p.detach().clone() for p in s.d_params()]
    loss, grads = s.g_gradient(ctx)
    assert str(s.opt.state_dict()) == str(before)             # inner steps: copies only
    assert all(torch.equal(a, b) for a, b in zip(d_before, s.d_params()))
    if inner == "step":     # the D step's batch and noise, for both inner steps and L_G
        batch, inputs = ctx.scratch[STEP_BATCH]
        x, z = batch["x"], inputs["z"]
        assert torch.equal(x, s.reals[0]) and len(s.reals) == 1
        batches, final_z, final_real = [(x, z), (x, z)], z, x
    else:                   # each inner step draws; L_G gets new noise (and a real batch)
        rng = torch.Generator().manual_seed(5)
        d_step_z = torch.randn(B, 2, generator=rng)          # the D phase's noise
        assert d_step_z.shape == (B, 2)
        zs = [torch.randn(B, 2, generator=rng) for _ in range(3)]
        batches = list(zip(s.reals[1:3], zs[:2]))
        final_z = zs[2]
        final_real = s.reals[3] if g_loss == "minimax" else None
        assert len(s.reals) == (4 if g_loss == "minimax" else 3)
    ref_loss, ref, shortcut = hand_unrolled_gradient(s, batches, final_z, final_real, g_loss)
    assert loss.item() == pytest.approx(ref_loss.item(), abs=1e-10)
    worst = max((a - b).abs().max().item() for a, b in zip(grads, ref))
    assert worst < 1e-4, f"largest |gankit - by hand| = {worst:.2e}"
    # the second-order terms matter here: the first-order shortcut is a different gradient
    gap = max((a - b).abs().max().item() for a, b in zip(ref, shortcut))
    assert gap > 1e-3, f"shortcut differs by only {gap:.2e}"


@pytest.mark.parametrize("inner", ["step", "fresh"])
def test_k0_is_the_nonsaturating_gan(inner):
    s = Setup(0, inner)
    ns = NonSaturating(NonSaturatingParams(), s.nets, s.latent, s.obj.info)
    loss, grads = s.g_gradient(ctx := s.context())
    if inner == "fresh":    # the same noise stream: NS draws G's noise as K = 0 does
        ns_loss, ns_grads = s.g_gradient(s.context(), ns)
    else:                   # G's loss reads the D step's noise
        z = ctx.scratch[STEP_BATCH][1]["z"]
        ns_loss = ns.g_term(s.D(s.G(z)))
        ns_grads = torch.autograd.grad(ns_loss, list(s.G.parameters()))
    assert torch.equal(loss, ns_loss)
    assert all(torch.equal(a, b) for a, b in zip(grads, ns_grads))
    assert len(s.reals) == (2 if inner == "fresh" else 1)   # K = 0 reads no extra batch


def test_unrolled_loss_changes_with_k():
    """Same nets and data: K = 2 moves L_G away from the K = 0 value."""
    losses = []
    for K in (0, 2):
        s = Setup(K)
        losses.append(s.g_gradient(s.context())[0].item())
    assert abs(losses[0] - losses[1]) > 1e-4


@pytest.mark.parametrize("value", ["-1", "11", "2.5"])
def test_unrolling_steps_is_validated(value, tmp_path):
    with pytest.raises(ConfigError, match="unrolling_steps"):
        build_config("unrolled-ring", [f"objective.unrolling_steps={value}"])
    code, _, err = run_cli(["train", "unrolled-ring", "--set",
                            f"objective.unrolling_steps={value}", "--out", str(tmp_path / "r")])
    assert code == 2 and err.count("\n") == 1 and "unrolling_steps" in err
    assert not (tmp_path / "r").exists()


def test_unknown_keys_and_reuse_fakes_are_refused():
    with pytest.raises(ConfigError):
        build_config("unrolled-ring", ["objective.unroll=3"])
    with pytest.raises(ConfigError, match="reuse_fakes"):
        build_config("unrolled-ring", ["train.reuse_fakes=true"])


@pytest.mark.parametrize("preset,data", [("unrolled-ring", "ring"), ("unrolled-grid", "grid")])
def test_presets_hold_the_notebook_settings(preset, data):
    cfg = build_config(preset)
    m, o = cfg.model, cfg.optim
    assert cfg.data.name == data and cfg.objective.name == "unrolled"
    assert cfg.objective.unrolling_steps == 5 and cfg.objective.inner_batches == "step"
    assert (m.z_dim, m.z_dist, m.g_hidden, m.d_hidden, m.g_depth, m.d_depth) == \
        (256, "normal", 128, 128, 2, 2)
    assert (m.activation, m.d_activation, m.out_activation) == ("tanh", "tanh", "none")
    assert (o["D"].name, o["D"].lr, o["G"].lr) == ("adam", 1e-4, 1e-3)
    assert o["D"].betas == o["G"].betas == (0.5, 0.999) and o["D"].eps == 1e-8
    assert (cfg.train.batch_size, cfg.train.steps, cfg.train.d_steps) == (512, 25000, 1)
    if data == "ring":
        assert (cfg.data.n_modes, cfg.data.radius, cfg.data.std) == (8, 1.0, 0.01)
    else:     # VEEGAN / PacGAN grid: {-4, -2, 0, 2, 4}^2, std 0.05
        assert (cfg.data.side, cfg.data.spacing, cfg.data.std) == (5, 2.0, 0.05)


def test_orthogonal_init_is_the_notebooks(monkeypatch):
    """``model.init=orthogonal``: every linear layer orthogonal with gain ``init_gain`` (the
    notebook's tf.orthogonal_initializer(gain=1.4)) and zero biases; "default" leaves torch's
    initialisation and random stream exactly as they were without the option."""
    import gankit.nn.mlp as mlp_module
    info = DataInfo("toy2d", (2,))

    def build(init):
        torch.manual_seed(0)
        p = MLPParams(z_dim=256, g_hidden=128, d_hidden=128, g_depth=2, d_depth=2, init=init)
        nets = build_nets(MLPFamily, p, info, Unrolled.roles(UnrolledParams(), info,
                                                             Latent(256)))
        return nets, torch.get_rng_state()

    nets, _ = build("orthogonal")
    layers = [m for n in ("G", "D") for m in nets[n].modules() if isinstance(m, torch.nn.Linear)]
    assert len(layers) == 6
    for m in layers:
        w = m.weight if m.weight.shape[0] <= m.weight.shape[1] else m.weight.T
        torch.testing.assert_close(w @ w.T, 1.96 * torch.eye(min(m.weight.shape)))
        assert torch.equal(m.bias, torch.zeros_like(m.bias))
    default, rng = build("default")
    monkeypatch.setattr(mlp_module, "initialised", lambda net, p: net)   # the code before
    before, rng_before = build("default")
    assert torch.equal(rng, rng_before)
    for n in ("G", "D"):
        for a, b in zip(default[n].state_dict().values(), before[n].state_dict().values()):
            assert torch.equal(a, b)
