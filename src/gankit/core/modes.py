"""Training / evaluation mode of networks, set for a block and restored after."""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(*nets: nn.Module) -> Iterator[None]:
    """The nets in eval mode inside (batch-norm running statistics, no dropout or noise
    layers), restored after."""
    was = [n.training for n in nets]
    for n in nets:
        n.eval()
    try:
        yield
    finally:
        for n, w in zip(nets, was):
            n.train(w)
