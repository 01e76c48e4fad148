"""The VAE (Kingma & Welling 2014) and its importance-weighted likelihood (Burda et al. 2016).

The IW estimate is checked against the exact log-likelihood of a linear-Gaussian model,
p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), whose marginal is N(b, W W^T + s^2 I): with the
exact posterior as proposal every importance weight equals p(x), so one sample is exact;
with a poor proposal the bound rises towards log p(x) as k grows. The analytic KL term is
checked against a Monte Carlo estimate; the Bernoulli likelihood against torch.distributions.
Dynamic binarisation: fresh draws per use, resumable, a fixed held-out draw.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gankit.core.step import Latent, StepContext
from gankit.data.base import DataInfo
from gankit.objectives.vae import VAE, VAEParams, gaussian_kl
from gankit.registry import DATASETS

D, d, S = 4, 2, 0.5                    # data dims, latent dims, the decoder's std


class Decoder(nn.Module):
    """z (B, d) -> means W z + b as images (B, 1, 2, 2)."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.lin = nn.Linear(d, D)
        with torch.no_grad():
            self.lin.weight.copy_(W)
            self.lin.bias.copy_(b)

    def forward(self, z):
        return self.lin(z).view(-1, 1, 2, 2)


class Encoder(nn.Module):
    """x (B, 1, 2, 2) -> [mu, log sigma^2] (B, 2d): mu = A (x - b), a constant log-variance."""

    def __init__(self, A: torch.Tensor, b: torch.Tensor, logvar: torch.Tensor):
        super().__init__()
        self.A, self.b, self.logvar = A, b, logvar

    def forward(self, x):
        mu = (x.flatten(1) - self.b) @ self.A.T
        return torch.cat([mu, self.logvar.expand(len(x), d)], 1)


def linear_gaussian(exact_posterior: bool):
    """A VAE objective over the linear-Gaussian model, its data and exact log p(x) (n,)."""
    torch.manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(D, d))          # orthonormal columns: W^T W diagonal
    s = torch.tensor([2.0, 0.7])
    W, b = Q * s, torch.randn(D)
    if exact_posterior:                                # N(M^-1 W^T (x - b), S^2 M^-1)
        M = s.square() + S ** 2
        enc = Encoder(W.T / M[:, None], b, torch.log(S ** 2 / M))
    else:                                              # a poor, wide, biased proposal
        enc = Encoder(0.5 * W.T, b + 0.3, torch.zeros(d))
    nets = {"encoder": enc, "decoder": Decoder(W, b)}
    obj = VAE(VAEParams(decoder="gaussian", sigma=S), nets, Latent(d),
              DataInfo("image", (1, 2, 2)))
    marginal = torch.distributions.MultivariateNormal(b, W @ W.T + S ** 2 * torch.eye(D))
    x = marginal.sample((16,))
    return obj, x.view(-1, 1, 2, 2), marginal.log_prob(x)


def test_iw_estimate_is_exact_with_the_exact_posterior(monkeypatch):
    obj, x, exact = linear_gaussian(exact_posterior=True)
    for k in (1, 7):
        assert torch.allclose(obj.log_likelihood(x, samples=k), exact, atol=1e-4)
    import gankit.objectives.vae as vae                 # samples split over many chunks
    monkeypatch.setattr(vae, "IW_BUDGET", 5)
    assert torch.allclose(obj.log_likelihood(x, samples=13), exact, atol=1e-4)


def test_iw_bound_rises_to_the_exact_likelihood():
    obj, x, exact = linear_gaussian(exact_posterior=False)
    gaps = {k: (exact - obj.log_likelihood(x, samples=k)).mean().item() for k in (1, 50, 5000)}
    assert gaps[1] > gaps[50] > gaps[5000] > -0.01        # a lower bound, tightening
    assert gaps[1] > 0.3 and gaps[5000] < 0.02
    assert torch.equal(obj.log_likelihood(x, samples=50), obj.log_likelihood(x, samples=50))


def test_the_iwae_training_loss_is_minus_the_exact_likelihood_with_the_exact_posterior():
    obj, x, exact = linear_gaussian(exact_posterior=True)
    obj.params = VAEParams(decoder="gaussian", sigma=S, train_samples=5)
    ctx = StepContext.standalone({"x": x}, rng=torch.Generator().manual_seed(0))
    loss, logs = obj.loss_vae(ctx)                     # every weight w_i equals p(x)
    assert loss.item() == pytest.approx(-exact.mean().item(), abs=1e-4)
    assert set(logs) == {"loss/vae", "loss/recon", "loss/kl", "elbo"}
    poor, x, exact = linear_gaussian(exact_posterior=False)
    bounds = {}
    for k in (1, 50):                                  # a lower bound that tightens with k
        poor.params = VAEParams(decoder="gaussian", sigma=S, train_samples=k)
        ctx = StepContext.standalone({"x": x.repeat(200, 1, 1, 1)},
                                     rng=torch.Generator().manual_seed(0))
        bounds[k] = -poor.loss_vae(ctx)[0].item()
    assert bounds[1] < bounds[50] < exact.mean().item()
    with pytest.raises(ValueError, match="beta weighs the ELBO's KL term"):
        VAEParams(beta=2, train_samples=5)


def test_analytic_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    z = mu + (0.5 * logvar).exp() * torch.randn(200_000, 3, 5, generator=g)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(0.0, 1.0)
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)                     # (3,)
    assert torch.allclose(gaussian_kl(mu, logvar), mc, atol=0.05)


def test_bernoulli_likelihood_and_the_training_loss():
    torch.manual_seed(2)
    obj = VAE(VAEParams(), {"encoder": nn.Linear(4, 2 * d), "decoder": nn.Linear(d, 4)},
              Latent(d), DataInfo("image", (4,)))
    logits, x01 = torch.randn(6, 4), torch.randint(0, 2, (6, 4)).float()
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(x01).sum(1)
    assert torch.allclose(obj.log_px(logits, x01 * 2 - 1), ref, atol=1e-5)
    ctx = StepContext.standalone({"x": x01 * 2 - 1}, rng=torch.Generator().manual_seed(0))
    loss, logs = obj.loss_vae(ctx)
    assert loss.item() == pytest.approx(-logs["elbo"].item(), rel=1e-6)   # beta = 1
    assert logs["loss/kl"].item() >= 0


def mnist(**params):
    cls = DATASETS.get("mnist")
    params = {"binarize": "dynamic", "split": "test"} | params
    return cls.build(cls.Params(name="mnist", **params), seed=0, device="cpu")


def test_dynamic_binarisation(data_root):
    src = mnist()
    first = src.next_batch(256)["x"]
    assert set(first.unique().tolist()) == {-1.0, 1.0}
    state = src.state_dict()
    again = src.next_batch(8)["x"]
    src.load_state_dict(state)
    assert torch.equal(src.next_batch(8)["x"], again)        # resumable
    # a fresh draw per use: the same image twice differs in some pixels
    grey = mnist(binarize="none")
    img = grey.images[:1]
    from gankit.data.images import binarize_images
    g = torch.Generator().manual_seed(0)
    a, b = binarize_images(img, g), binarize_images(img, g)
    assert not torch.equal(a, b)
    # the held-out set (here the 10k test images) is drawn once, identically for every build
    h1, h2 = (mnist(split="train").heldout() for _ in range(2))
    assert torch.equal(h1.sample(100, 0), h2.sample(100, 0))
    assert set(h1.sample(100, 0).unique().tolist()) == {-1.0, 1.0}
    assert "binarised once" in h1.description
    # mean grey level is preserved in expectation
    p = (grey.sample(500, 3) + 1) / 2
    draws = (mnist().sample(500, 3) + 1) / 2
    assert abs(p.mean().item() - draws.mean().item()) < 0.01
    assert math.isfinite(first.sum().item())


# ---------------------------------------------------------------- what the decoder can model
def test_a_bernoulli_decoder_on_grey_levels_is_refused():
    """Once accepted, with an elbo and an nll reported of a 'likelihood' that is no density.
    A folder of images has no binarize option and may hold binary images: it passes."""
    from gankit.config import build_config
    from gankit.errors import ConfigError

    with pytest.raises(ConfigError, match="Bernoulli decoder") as err:
        build_config("vae-mnist", ["data.binarize=none"])
    assert str(err.value).endswith(
        "mnist serves grey levels (data.binarize=none): set data.binarize=dynamic, or set "
        "objective.decoder=gaussian") and "\n" not in str(err.value)
    grey = build_config("vae-mnist", ["data.binarize=none", "objective.decoder=gaussian"])
    assert grey.objective.decoder == "gaussian"
    assert build_config("vae-mnist", ["data=folder", "data.path=."]).data.name == "folder"


def test_a_saved_run_of_that_kind_stays_readable():
    """A run a gankit that allowed it trained (its saved config) still loads and resumes."""
    from gankit.config import build_config, from_saved

    from gankit.api import resume_config

    raw = build_config("vae-mnist").to_dict()
    raw["data"]["binarize"] = "none"
    saved = from_saved(raw)
    assert saved.data.binarize == "none"
    assert resume_config(saved, done=10, steps=5).train.steps == 15     # and it resumes


def test_the_cli_refuses_it_on_one_line_before_any_folder(tmp_path):
    from cli_runner import run_cli

    out = tmp_path / "run"
    code, _, err = run_cli(["train", "dcgan-mnist", "--set", "objective=vae", "--out", str(out)])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "Bernoulli decoder (objective.decoder=bernoulli) models binary pixels" in err
    assert not out.exists()
