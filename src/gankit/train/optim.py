"""Optimizers, learning-rate schedules and the generator EMA."""

from __future__ import annotations

import copy
import math
from typing import Iterable

import torch
from torch import nn

from gankit.config import OptimConfig


def build_optimizer(cfg: OptimConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The torch optimizer ``cfg`` names, over ``params``, at the base learning rate.

    ``adam``: Adam (Kingma & Ba 2015) with ``betas``, ``eps``, L2 ``weight_decay``;
    ``rmsprop``: RMSprop (Tieleman & Hinton 2012; alpha 0.99) with ``momentum``;
    ``sgd``: SGD with heavy-ball ``momentum``. The trainer sets each step's learning rate
    (``lr_factor``); ``gankit.core.functional_optim`` holds the same rules as differentiable
    functions for unrolled updates. Adam runs torch's fused kernel where it can (:func:`fusable`).
    ``cfg`` is validated already, so nothing is raised here."""
    params = list(params)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                weight_decay=cfg.weight_decay, fused=fusable(params))
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, eps=cfg.eps, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


def fusable(params: list[nn.Parameter]) -> bool:
    """Whether torch's fused Adam kernel takes ``params``: floating tensors, all on CPU or
    all on CUDA. One kernel for every tensor instead of ~8 small ops each: for the small
    networks gankit trains on a CPU the per-tensor loop is a large part of a step (3,000
    steps of ``vae-mnist``: 0.89x the CPU time, benchmarks/RESULTS.md). The same update, to
    rounding."""
    devices = {p.device.type for p in params}
    return (len(devices) == 1 and devices <= {"cpu", "cuda"}
            and all(p.is_floating_point() for p in params))


def lr_factor(cfg: OptimConfig, step: int, total: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of a ``total``-step run.

    A pure function of the step, so resuming needs no scheduler object to restore.
    ``linear`` is CycleGAN's: constant for ``decay_start * total`` steps, then linear to 0.
    Past ``total`` (a finished run extended, ``train.schedule_steps``) the factor stays at
    its final value, the floor.
    A decay stops at ``min_lr`` (an absolute rate: users of the BEGAN reference code,
    carpedm20/BEGAN-tensorflow issue 19, report collapse once the rate has decayed too far).
    """
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    start = cfg.decay_start * total
    if cfg.schedule == "constant" or step < start:
        return warm
    frac = (step - start) / max(1.0, total - start)
    floor = min(1.0, cfg.min_lr / cfg.lr)
    if cfg.schedule == "linear":
        return warm * max(floor, 1.0 - frac)
    return warm * max(floor, 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac))))


class EMA:
    """Exponential moving average of a network's weights (buffers are copied)."""

    def __init__(self, net: nn.Module, beta: float):
        self.beta = beta
        self.net = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        ema_p = list(self.net.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in net.parameters()], 1.0 - self.beta)
        for b_ema, b in zip(self.net.buffers(), net.buffers()):
            b_ema.copy_(b)
