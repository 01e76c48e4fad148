"""Layers of the improved techniques of Salimans et al. 2016 ("Improved Techniques for Training
GANs", arXiv:1606.03498) that network families share: minibatch discrimination (section 3.2)
for critics and virtual batch normalisation (section 3.4) for generators.

Both follow the authors' code (github.com/openai/improved-gan): ``MinibatchLayer`` of
``mnist_svhn_cifar10/nn.py`` and ``VBN`` of ``imagenet/model.py``. They know nothing about
losses; a family builds them when its config asks (``model.minibatch_kernels``,
``model.g_norm=virtual``).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.params import Params


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination, Salimans et al. 2016, section 3.2: (N, A) -> (N, A + B).

    Features f(x_i) in R^A are multiplied by a tensor T in R^{A x B x C}, giving a matrix
    M_i in R^{B x C} (B ``kernels`` rows of C ``dims``); for each row b,
        c_b(x_i, x_j) = exp(-||M_{i,b} - M_{j,b}||_L1),   o(x_i)_b = sum_{j != i} c_b(x_i, x_j) + bias_b
    and o(x_i) in R^B is concatenated to f(x_i), so the layer after it (D's output) can tell
    a batch of near-identical samples (a collapsed G) from a varied one.

    As the authors' ``MinibatchLayer`` (B = 100 kernels of C = 5 dims on CIFAR-10): the sum
    leaves out j = i (the code masks the diagonal with +1e6 before the exp; the paper's sum
    over all j adds c_b(x_i, x_i) = 1, a constant the bias absorbs), the bias starts at -1,
    and T is weight-normalised per (kernel, dim) column: T = theta exp(s) / ||theta||_2
    (norm over the A inputs), theta ~ N(0, 0.05^2), s = 0. Not copied: the data-dependent
    initialisation of s and the bias from a first batch.

    ``double_backward``: compute the L1 distances with broadcast differences, which can be
    differentiated twice (unrolled critics), instead of ``torch.cdist`` (about 5x faster,
    once differentiable). Memory and time grow with N^2 B (C): at N = 512 and B = 100 a
    forward and backward take ~1 s on one CPU core.
    """

    def __init__(self, in_features: int, kernels: int = 100, dims: int = 5,
                 double_backward: bool = False):
        super().__init__()
        self.kernels, self.dims, self.double_backward = kernels, dims, double_backward
        self.theta = nn.Parameter(torch.randn(in_features, kernels, dims) * 0.05)
        self.log_scale = nn.Parameter(torch.zeros(kernels, dims))
        self.bias = nn.Parameter(torch.full((kernels,), -1.0))

    @property
    def weight(self) -> Tensor:
        """T (A, B, C): theta with unit-norm columns times exp(log_scale)."""
        return self.theta * (self.log_scale.exp() / self.theta.norm(dim=0))

    def forward(self, h: Tensor) -> Tensor:
        """h (N, A) -> (N, A + B): the features and o(x_i)."""
        m = torch.einsum("na,abc->bnc", h, self.weight)               # (B, N, C): rows M_{i,b}
        if self.double_backward:
            dist = (m[:, :, None, :] - m[:, None, :, :]).abs().sum(-1)   # (B, N, N)
        else:
            dist = torch.cdist(m, m, p=1)                             # (B, N, N)
        c = torch.exp(-dist) * (1 - torch.eye(h.shape[0], device=h.device, dtype=h.dtype))
        o = c.sum(-1).t() + self.bias                                 # (N, B)
        return torch.cat([h, o], 1)


class VirtualBatchNorm(nn.Module):
    """Virtual batch normalisation, Salimans et al. 2016, section 3.4, for a batch whose first
    ``reference_rows`` rows are the reference batch (``ReferenceBatch`` puts them there).

    The reference rows are normalised with their own statistics; every other example x with
    the statistics of the reference batch *and x itself*, as the authors' ``VBN``: per channel,
        mu  = 1/(N+1) mean(x) + N/(N+1) mu_ref,   nu = 1/(N+1) mean(x^2) + N/(N+1) nu_ref
        y   = gamma (x - mu) / sqrt(eps + nu - mu^2) + beta
    with N the reference rows, mean(.) over x's own spatial positions (the value itself for
    vectors) and mu_ref, nu_ref the mean and mean square of the reference activations over
    rows and positions. So an example's output never depends on the other examples of its
    batch. eps = 1e-5, gamma ~ N(1, 0.02^2), beta = 0 (the authors' initialisers). The
    reference statistics are recomputed at every call with the current weights (gradients
    flow through them), as in the authors' graph; there are no running statistics, and
    evaluation computes the same function as training.
    """

    def __init__(self, channels: int, reference_rows: int, eps: float = 1e-5):
        super().__init__()
        self.reference_rows, self.eps = reference_rows, eps
        self.weight = nn.Parameter(torch.randn(channels) * 0.02 + 1.0)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """x (N + B, C, *spatial) -> the same shape."""
        n = self.reference_rows
        spatial = tuple(range(2, x.dim()))
        view = (1, -1) + (1,) * len(spatial)
        ref, ex = x[:n], x[n:]
        mu_ref = ref.mean((0,) + spatial).view(view)                   # (1, C, 1..)
        nu_ref = ref.square().mean((0,) + spatial).view(view)
        own_mu = ex.mean(spatial, keepdim=True) if spatial else ex     # (B, C, 1..)
        own_nu = ex.square().mean(spatial, keepdim=True) if spatial else ex.square()
        new = 1.0 / (n + 1.0)
        mu = new * own_mu + (1 - new) * mu_ref
        nu = new * own_nu + (1 - new) * nu_ref
        out = torch.cat([self._normalize(ref, mu_ref, nu_ref), self._normalize(ex, mu, nu)])
        return out * self.weight.view(view) + self.bias.view(view)

    def _normalize(self, x: Tensor, mu: Tensor, nu: Tensor) -> Tensor:
        return (x - mu) / (self.eps + (nu - mu.square()).clamp_min(0)).sqrt()


class ReferenceBatch(nn.Module):
    """Runs ``body`` on the fixed reference batch followed by the inputs, and returns the
    inputs' rows: the wrapper a generator with virtual batch norm puts around its layers.

    The reference batch is ``reference_rows`` inputs of ``body`` (e.g. noise z with its
    labels), a buffer saved with the network (checkpoints: exact resume, the same samples
    after loading). It is chosen once, at the start of training: the first call while
    ``has_reference`` is false records its first ``reference_rows`` rows. Objectives make
    that first call from their own input distribution when they are built
    (``gankit.core.roles.reference_rows``), as the authors' code draws a fixed z batch from
    the training noise. Costs a forward (and backward) of ``reference_rows`` more rows.
    """

    def __init__(self, body: nn.Module, reference_rows: int, in_shape: tuple[int, ...]):
        super().__init__()
        self.body, self.reference_rows = body, reference_rows
        self.register_buffer("reference", torch.zeros(reference_rows, *in_shape))
        self.register_buffer("has_reference", torch.zeros((), dtype=torch.bool))

    def forward(self, x: Tensor) -> Tensor:
        """x (B, *in_shape) -> body's output for x's rows (B, ...)."""
        n = self.reference_rows
        if not bool(self.has_reference):
            if x.shape[0] < n:
                raise ValueError(f"the first batch fixes the virtual-batch-norm reference: "
                                 f"it needs at least {n} rows, got {x.shape[0]}")
            self.reference.copy_(x[:n].detach())
            self.has_reference.fill_(True)
        out = self.body(torch.cat([self.reference.to(x.dtype), x]))
        return out[n:]


class ImprovedTechniqueParams(Params):
    """Network options of Salimans et al. 2016 that the mlp and dcgan families share."""

    # minibatch discrimination in D (section 3.2): B kernels (0: off; the paper's code 100)
    # of C dims each (5), on D's last hidden features, before its output layer
    minibatch_kernels: int = Field(0, ge=0, le=1024)
    minibatch_dims: int = Field(5, gt=0, le=256)
    # rows of the fixed reference batch of virtual batch norm (g_norm=virtual, section 3.4)
    vbn_reference: int = Field(64, ge=2, le=4096)


def minibatch_layer(p: ImprovedTechniqueParams, features: int, role) -> nn.Module | None:
    """The critic's minibatch-discrimination layer over ``features`` inputs, or None when
    ``model.minibatch_kernels`` is 0. ConfigError for a per-sample critic (a gradient penalty
    needs D to judge each sample alone; the layer compares it with the rest of its batch)."""
    if not p.minibatch_kernels:
        return None
    if role.per_sample:
        raise ConfigError("model.minibatch_kernels: minibatch discrimination compares each "
                          "sample with its batch, but this objective's critic must judge every "
                          "sample alone (gradient penalty); set model.minibatch_kernels=0")
    return MinibatchDiscrimination(features, p.minibatch_kernels, p.minibatch_dims,
                                   double_backward=role.double_backward)
