"""Metrics of a style-based generator (capability "styles"), in a shipped classifier's features.

* Perceptual path length (Karras et al. 2019, section 4.2): for random pairs and t ~ U[0, 1],
      l_Z = E[ d(G(slerp(z1, z2; t)), G(slerp(z1, z2; t + eps))) / eps^2 ]
      l_W = E[ d(g(lerp(f(z1), f(z2); t)), g(lerp(f(z1), f(z2); t + eps))) / eps^2 ]
  with eps = 1e-4, the per-pixel noise fixed along each path, and the mean taken after
  dropping the 1 % lowest and highest values (as NVlabs' stylegan2-ada
  ``perceptual_path_length``). Here d is the squared Euclidean distance between the shipped
  MNIST / Fashion-MNIST classifier's penultimate features, NOT the paper's LPIPS (VGG)
  distance: the values compare Z with W, and runs with each other, only under this
  classifier; they are not comparable with the paper's figures.
* Precision and recall against the truncation psi (Kynkäänniemi et al. 2019, k = 3, the
  ``mnist-pr`` protocol): truncation trades recall (diversity) for precision (fidelity).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from gankit.core import capabilities as caps
from gankit.data.base import make_generator
from gankit.metrics.classifier import load_classifier
from gankit.metrics.offline import (ClassifierMetric, ClassifierMetrics, _tag, predict,
                                    real_statistics, shipped_classifier, SHIPPED)
from gankit.metrics.prdc import precision_recall
from gankit.metrics.protocol import Direction, EvalOptions, RunFacts

EPS = 1e-4
SPACES = ("z", "w")
PSIS = (0.7, 0.5)                   # psi 1 is metric mnist-pr's value
SMOKE = {"data": {"name": "mnist", "split": "test", "size": 32},
         "model": {"name": "stylegan", "z_dim": 8, "w_dim": 8, "mapping_layers": 2,
                   "ngf": 4, "ndf": 4, "max_channels": 8},
         "objective": {"name": "stylegan"}}


def slerp_rows(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation of unit-normalised rows a, b (B, D) at per-row t (B,) -> (B, D)
    on the unit sphere (the PPL paper's slerp; the mapping normalises z anyway)."""
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    d = (a * b).sum(1, keepdim=True).clamp(-1, 1)
    p = t[:, None] * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=1, keepdim=True).clamp_min(1e-12)
    out = a * torch.cos(p) + c * torch.sin(p)
    return out / out.norm(dim=1, keepdim=True)


def trimmed_mean(x: np.ndarray, lo: float = 1, hi: float = 99) -> float:
    """The mean of the values between the lo-th and hi-th percentiles (inclusive)."""
    a, b = np.percentile(x, lo), np.percentile(x, hi)
    return float(x[(x >= a) & (x <= b)].mean())


@torch.no_grad()
def path_lengths(model, space: str, n: int, seed: int, classifier: str,
                 batch: int = 250, eps: float = EPS) -> np.ndarray:
    """n per-path values d(x(t), x(t + eps)) / eps^2 (see the module) for ``space`` "z" or
    "w", from the run's sampler (``model``: a trainer or a loaded model)."""
    obj, feats = model.objective, load_classifier(classifier, model.device)
    gen = make_generator(seed, model.device)
    out = []
    for i in range(0, n, batch):
        m = min(batch, n - i)
        a, b = obj.sample_inputs(m, gen), obj.sample_inputs(m, gen)
        t = torch.rand(m, generator=gen, device=model.device)
        ends = []
        for tt in (t, t + eps):
            if space == "z":
                ends.append({**a, "z": slerp_rows(a["z"], b["z"], tt)})
            else:
                wa, wb = model.styles(a)[:, 0], model.styles(b)[:, 0]
                ends.append({**{k: v for k, v in a.items() if k != "z"},
                             "w": torch.lerp(wa, wb, tt[:, None])})
        f0, f1 = (feats.features(model.generate(e).float()) for e in ends)
        out.append(((f0 - f1).square().sum(1) / eps ** 2).double().cpu())
    return torch.cat(out).numpy()


def truncated_precision_recall(model, psi: float, n: int, seed: int, classifier: str,
                               real: np.ndarray, k: int = 3) -> dict[str, float]:
    """Precision and recall (k-NN balls) of n samples at truncation ``psi`` against the real
    classifier features ``real`` (N, D)."""
    with model.styled(psi=psi):
        x = model.sample(n, seed=seed)
    fake, _ = predict(classifier, x, model.device)
    return precision_recall(real, fake, k=k)


class PerceptualPathLength(ClassifierMetric, name="ppl"):
    """Perceptual path length in Z and in W (Karras et al. 2019), classifier features.

    The shipped classifier's features, not LPIPS: not comparable with the paper's values;
    n paths, eps 1e-4."""

    needs: ClassVar[frozenset[str]] = frozenset({caps.SAMPLES, caps.STYLES})
    smoke_config: ClassVar[dict[str, Any]] = SMOKE

    @classmethod
    def keys(cls, facts: RunFacts | None = None) -> dict[str, Direction | None]:
        names = [shipped_classifier(facts.data)] if facts else SHIPPED
        return {f"ppl_{s}_{_tag(name)}": "min" for name in names for s in SPACES}

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        name = cls.classifier(trainer)
        return {f"ppl_{s}_{_tag(name)}": trimmed_mean(
            path_lengths(trainer, s, n, cls.seed(seed), name)) for s in SPACES}

    @classmethod
    def describe(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, Any]:
        return {**super().describe(trainer, n, seed, options), "epsilon": EPS,
                "distance": "squared L2 of classifier features (not LPIPS)",
                "z_path": "slerp", "w_path": "lerp", "mean": "1-99 percentile trimmed"}


class TruncationPrecisionRecall(ClassifierMetric, name="truncation-pr"):
    """Precision and recall of samples truncated at psi 0.7 and 0.5 (Karras et al. 2019).

    k = 3 in the shipped classifier's features; psi 1 is metric mnist-pr."""

    needs: ClassVar[frozenset[str]] = frozenset({caps.SAMPLES, caps.STYLES})
    smoke_config: ClassVar[dict[str, Any]] = SMOKE

    @staticmethod
    def key(what: str, psi: float, name: str) -> str:
        return f"{what}_{_tag(name)}_psi{psi:g}".replace(".", "")

    @classmethod
    def keys(cls, facts: RunFacts | None = None) -> dict[str, Direction | None]:
        names = [shipped_classifier(facts.data)] if facts else SHIPPED
        return {cls.key(w, p, name): "max" for name in names for p in PSIS
                for w in ("precision", "recall")}

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        name = cls.classifier(trainer)
        real = real_statistics(trainer.data, name, n, ClassifierMetrics.REAL_SEED,
                               trainer.device)["features"]
        out = {}
        for psi in PSIS:
            pr = truncated_precision_recall(trainer, psi, n, cls.seed(seed), name, real)
            out |= {cls.key(w, psi, name): pr[w] for w in ("precision", "recall")}
        return out
