"""Likelihood and classification metrics, on held-out data only (``DataSource.heldout()``).

A model that offers a likelihood (capability "likelihood": ``objective.log_likelihood(x,
net) -> (n,)`` nats) is scored by the mean negative log-likelihood of examples it never saw
in training; on the training data the same number rewards memorisation. A model that offers
a classifier (capability "classifier": a semi-supervised GAN's critic) is scored by its error
rate on the labelled held-out set.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from gankit.core import capabilities as caps
from gankit.core.modes import eval_mode
from gankit.errors import GankitError
from gankit.metrics.finite import check_finite
from gankit.metrics.protocol import SMOKE_IMAGE_MODEL, EvalOptions, Metric

BATCH = 1024


def mean_nll(log_likelihoods: torch.Tensor) -> float:
    """-mean of per-example log-likelihoods (n,) in nats, in float64."""
    check_finite("log-likelihoods of held-out examples", log_likelihoods)
    return float(-log_likelihoods.double().mean())


def bits_per_dim(nll: float, dims: int) -> float:
    """Nats per example -> bits per dimension: nll / (dims ln 2)."""
    return nll / (dims * math.log(2))


def likelihood_kwargs(options: EvalOptions | None) -> dict[str, Any]:
    """What ``log_likelihood`` is given beyond (x, net): ``samples`` when the evaluation
    sets ``iw_samples`` (models without an estimate ignore it)."""
    k = (options or EvalOptions()).iw_samples
    return {} if k is None else {"samples": k}


def importance_sampled(objective) -> bool:
    """Whether ``objective``'s likelihood is an importance-sampled estimate (a VAE's IWAE
    bound), so that a number of importance samples k changes it: its ``likelihood_protocol``
    records ``iw_samples``. False for an exact likelihood (a PixelCNN's) or none."""
    protocol = getattr(objective, "likelihood_protocol", None)
    return protocol is not None and "iw_samples" in protocol(None)


class HeldOutNLL(Metric, name="nll"):
    """Mean negative log-likelihood of held-out data, in nats per example and bits/dim.

    ``nll``: nats per example; ``bpd``: the same in bits per dimension (pixel or
    coordinate), nll / (D ln 2). Estimated likelihoods (a VAE's importance-weighted bound)
    take ``EvalOptions.iw_samples`` samples; the protocol records the estimator."""

    needs = frozenset({caps.LIKELIHOOD})
    values = {"nll": "min", "bpd": "min"}
    default_seed = 0                  # which held-out examples, when n is below their count

    @classmethod
    @torch.no_grad()
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        """On min(n, held-out size) held-out examples, with the sampling weights (EMA)."""
        held = trainer.data.heldout()
        x = held.sample(min(n, len(held)), cls.seed(seed))                # (m, *shape)
        net, kwargs = trainer.sampler(), likelihood_kwargs(options)
        logp = torch.cat([trainer.objective.log_likelihood(x[i:i + BATCH].to(trainer.device),
                                                           net, **kwargs).float().cpu()
                          for i in range(0, len(x), BATCH)])              # (m,)
        nll = mean_nll(logp)
        return {"nll": nll, "bpd": bits_per_dim(nll, math.prod(x.shape[1:]))}

    @classmethod
    def describe(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, Any]:
        held = trainer.data.heldout()
        k = likelihood_kwargs(options).get("samples")
        return {"n_heldout": min(n, len(held)), "seed_heldout": cls.seed(seed),
                "heldout": held.description, "units": "nll: nats per example; bpd: bits/dim",
                **trainer.objective.likelihood_protocol(k)}

    @classmethod
    def measured_on(cls, n: int, seed: int | None = None,
                    options: EvalOptions | None = None) -> str:
        """'up to 1,000 held-out examples (seed 0); an estimated likelihood (a VAE's) with
        k=100 importance samples' (k: ``options.iw_samples``, else the model's default; an
        exact likelihood, a PixelCNN's, uses none)."""
        k = likelihood_kwargs(options).get("samples")
        iw = f"k={k:,}" if k else "the model's default number of"
        return (f"up to {n:,} held-out examples (seed {cls.seed(seed)}); an estimated "
                f"likelihood (a VAE's) with {iw} importance samples")


def count_errors(logits: torch.Tensor, labels: torch.Tensor) -> int:
    """How many rows of ``logits`` (n, K) do not have their largest value at ``labels`` (n,)."""
    return int((logits.argmax(1) != labels).sum())


class HeldOutError(Metric, name="test-error"):
    """Classification error of the model's classifier on labelled held-out data.

    ``test_error``: the fraction misclassified; ``test_errors``: their number (Salimans et
    al. 2016, Table 1, report errors out of the 10,000 MNIST test digits). With the averaged
    weights when ``train.ema_beta`` keeps them (Polyak averaging)."""

    needs = frozenset({caps.CLASSIFIER})
    values = {"test_error": "min", "test_errors": "min"}
    smoke_config: ClassVar[dict[str, Any]] = {
        "data": {"name": "mnist", "split": "test", "labelled_per_class": 1},
        "model": SMOKE_IMAGE_MODEL, "objective": {"name": "ssgan"}}

    @classmethod
    @torch.no_grad()
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        """On the first min(n, size) held-out examples in their stored order (all 10,000
        MNIST test digits by default). GankitError when the held-out set has no labels."""
        objective = trainer.objective
        net = trainer.sampler(objective.classifier_net)
        errors = seen = 0
        with eval_mode(net):
            for batch in trainer.data.heldout().batches(BATCH):
                if "y" not in batch:
                    raise GankitError("the held-out set has no labels (data.labels=false)")
                x, y = batch["x"][:n - seen], batch["y"][:n - seen]
                errors += count_errors(objective.classify(x.to(trainer.device), net).cpu(), y)
                seen += len(y)
                if seen >= n:
                    break
        return {"test_error": errors / seen, "test_errors": float(errors)}

    @classmethod
    def describe(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, Any]:
        held = trainer.data.heldout()
        averaged = trainer.objective.classifier_net in trainer.ema
        return {"n_heldout": min(n, len(held)), "heldout": held.description,
                "order": "stored order (the first n)",
                "weights": "averaged (train.ema_beta)" if averaged else "trained"}

    @classmethod
    def measured_on(cls, n: int, seed: int | None = None,
                    options: EvalOptions | None = None) -> str:
        """'the first 10,000 held-out examples in stored order (all, when fewer)'."""
        return f"the first {n:,} held-out examples in stored order (all, when fewer)"
