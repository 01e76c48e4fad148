"""Optimizer steps as pure, differentiable functions (for unrolled inner updates).

Each rule maps (params, grads, state) to (new params, new state) without touching its inputs,
so gradients can flow through the update (Metz et al. 2017, unrolled GANs, differentiate the
generator's loss through K critic updates). The arithmetic follows ``torch.optim``'s
single-tensor implementations of Adam, RMSprop and SGD (the options ``gankit.train.optim``
builds), so one functional step equals one real step to rounding (tests/test_step_context.py).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

State = dict[str, Tensor]
Rule = Callable[[Tensor, Tensor, State, Any, float], tuple[Tensor, State]]

# sqrt has an infinite derivative at 0; a zero second moment (a gradient that is exactly 0,
# e.g. a dead unit) would turn the second-order terms into NaN. Below this the value changes
# by less than 1e-15, far under Adam's eps.
_TINY = 1e-30


def _safe_sqrt(v: Tensor) -> Tensor:
    return v.clamp_min(_TINY).sqrt()


def adam(p: Tensor, g: Tensor, s: State, cfg: Any, lr: float) -> tuple[Tensor, State]:
    """Adam (Kingma & Ba 2015), torch's form: p - lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps)."""
    b1, b2 = cfg.betas
    if cfg.weight_decay:
        g = g + cfg.weight_decay * p
    t = s.get("step", torch.zeros((), dtype=torch.float32)) + 1
    m = s.get("exp_avg", torch.zeros_like(p)) * b1 + (1 - b1) * g
    v = s.get("exp_avg_sq", torch.zeros_like(p)) * b2 + (1 - b2) * g * g
    # bias corrections in Python floats, as torch.optim computes them (not float32 tensors)
    bias1, bias2 = 1 - b1 ** float(t), 1 - b2 ** float(t)
    denom = _safe_sqrt(v) / bias2 ** 0.5 + cfg.eps
    return p - (lr / bias1) * m / denom, {"step": t, "exp_avg": m, "exp_avg_sq": v}


def rmsprop(p: Tensor, g: Tensor, s: State, cfg: Any, lr: float) -> tuple[Tensor, State]:
    """RMSprop (Tieleman & Hinton 2012), torch's form with alpha = 0.99 and eps after sqrt."""
    alpha = 0.99
    if cfg.weight_decay:
        g = g + cfg.weight_decay * p
    sq = s.get("square_avg", torch.zeros_like(p)) * alpha + (1 - alpha) * g * g
    step = s.get("step", torch.zeros((), dtype=torch.float32)) + 1
    scaled = g / (_safe_sqrt(sq) + cfg.eps)
    new = {"step": step, "square_avg": sq}
    if cfg.momentum:
        buf = s.get("momentum_buffer", torch.zeros_like(p)) * cfg.momentum + scaled
        new["momentum_buffer"] = buf
        return p - lr * buf, new
    return p - lr * scaled, new


def sgd(p: Tensor, g: Tensor, s: State, cfg: Any, lr: float) -> tuple[Tensor, State]:
    """SGD with optional (heavy-ball, no dampening) momentum, torch's form."""
    if cfg.weight_decay:
        g = g + cfg.weight_decay * p
    if not cfg.momentum:
        return p - lr * g, {}
    buf = s["momentum_buffer"] * cfg.momentum + g if "momentum_buffer" in s else g
    return p - lr * buf, {"momentum_buffer": buf}


RULES: dict[str, Rule] = {"adam": adam, "rmsprop": rmsprop, "sgd": sgd}


def copy_state(state: dict[str, Any], like: Tensor) -> State:
    """A detached copy of one parameter's torch.optim state (tensors only, floats for ``step``)."""
    out: State = {}
    for k, v in state.items():
        if isinstance(v, Tensor):
            out[k] = v.detach().clone().to(torch.float32 if k == "step" else like.dtype)
        elif isinstance(v, (int, float)):
            out[k] = torch.tensor(float(v))
    return out
