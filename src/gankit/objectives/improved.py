"""The loss terms of the improved techniques of Salimans et al. 2016 ("Improved Techniques for
Training GANs", arXiv:1606.03498) that objectives add: feature matching (section 3.1) and
historical averaging (section 3.3). One-sided label smoothing (section 3.4) lives in
``functional.d_loss_bce``; minibatch discrimination and virtual batch norm are network layers
(``gankit.nn.layers``).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """|| E_x f(x) - E_z f(G(z)) ||_2^2 (Salimans et al. 2016, section 3.1) over the batch
    means of D's intermediate features f.

    real_features (B, F), fake_features (B', F) -> a scalar (the squared Euclidean distance of
    the two means, summed over the F features; computed in float32). G descends it: it matches
    the statistics D finds discriminative instead of maximising D's output. The authors' code
    uses the mean over features (MNIST) or the mean absolute difference (CIFAR-10) instead of
    the sum of squares: a different scale, the same minimum."""
    diff = real_features.float().mean(0) - fake_features.float().mean(0)     # (F,)
    return diff.square().sum()


class HistoricalAverage:
    """A player's running mean of its past parameters and the penalty
    || theta - (1/t) sum_{i=1}^t theta[i] ||^2 (Salimans et al. 2016, section 3.3).

    ``update(params)`` adds the current parameters theta[t] to the mean (t = updates so far,
    the current one included, so the penalty is 0 at the first step); ``penalty(params)`` is
    the squared Euclidean distance of ``params`` (differentiable) from the mean (a constant),
    summed over every parameter tensor; its gradient is 2 (theta - mean). The mean is kept in
    float32 and is state (``state_dict``): a resumed run continues the same average. It is a
    function of the parameters only, which are equal on every data-parallel rank, so it is
    too."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: dict[str, Tensor] = {}

    def update(self, params: Mapping[str, Tensor]) -> None:
        """theta[t] (named tensors) into the running mean: mean += (theta - mean) / t."""
        self.count += 1
        for name, p in params.items():
            p = p.detach().float()
            if name not in self.mean:
                self.mean[name] = p.clone()
            else:
                self.mean[name] += (p - self.mean[name]) / self.count

    def penalty(self, params: Mapping[str, Tensor]) -> Tensor:
        """sum over tensors of ||theta - mean||^2 (a scalar, differentiable in ``params``).
        KeyError for a parameter never seen by ``update``."""
        terms = [(p.float() - self.mean[name]).square().sum() for name, p in params.items()]
        return torch.stack(terms).sum()

    def state_dict(self, prefix: str) -> dict[str, Tensor]:
        """{prefix + "count": t, prefix + "mean/" + name: mean} (tensors, for checkpoints)."""
        out = {f"{prefix}count": torch.tensor(self.count, dtype=torch.int64)}
        return out | {f"{prefix}mean/{k}": v for k, v in self.mean.items()}

    def load_state_dict(self, state: Mapping[str, Tensor], prefix: str, device) -> None:
        """Restore what ``state_dict(prefix)`` wrote (other keys are ignored)."""
        self.count = int(state[f"{prefix}count"])
        start = f"{prefix}mean/"
        self.mean = {k[len(start):]: v.to(device) for k, v in state.items()
                     if k.startswith(start)}
