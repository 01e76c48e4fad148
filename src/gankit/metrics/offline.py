"""Offline metrics for small images, computed with the shipped classifiers (no downloads).

Pure functions (numpy in, floats out):

* ``classifier_frechet_distance``: the Fréchet distance between Gaussian fits of a classifier's
  penultimate features of real and generated images. It is *not* FID: the feature space is a
  28x28 digit (or clothes) classifier, not Inception, so its values are only comparable with
  other values computed with the same shipped classifier and the same sample sizes (like FID, it
  is biased upwards for small n). Reported as ``cfd_mnist`` / ``cfd_fashion_mnist``.
* ``conditional_accuracy``: fraction of generated samples classified as the label they were
  conditioned on (cGAN, AC-GAN).
* ``class_agreement``: InfoGAN's categorical code is unsupervised, so code k need not mean digit
  k; codes are matched one-to-one to predicted classes by the Hungarian algorithm (maximum total
  agreement) and the fraction of samples agreeing under that matching is reported.
* Stacked-MNIST (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018): three MNIST digits
  stacked as RGB channels give 1000 modes; each channel is classified by the MNIST classifier,
  a mode is *covered* when at least one sample falls in it, and ``kl`` is KL(p_hat || uniform)
  of the mode histogram. The papers use 26,000 samples; with n samples even a perfect generator
  covers only 1000 (1 - (1 - 1/1000)^n) modes on average (918 for n = 2500), reported as
  ``stacked_modes_ideal``.

Wrappers (registered in ``gankit.registry.METRICS``) follow the metric protocol
(``gankit.metrics.protocol``): each declares its keys and when it applies (a data set with a
shipped classifier; labels or codes offered by the objective), and ``evaluate(trainer, n,
seed)`` returns exactly its keys.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from gankit.core import capabilities as caps
from gankit.data.base import make_generator
from gankit.errors import GankitError
from gankit.metrics.classifier import classify, load_classifier
from gankit.metrics.fid import feature_statistics, frechet_distance
from gankit.metrics.prdc import precision_recall
from gankit.metrics.protocol import (SMOKE_IMAGE_MODEL, SMOKE_MNIST, Direction, EvalOptions,
                                     Metric, RunFacts, generated_samples, not_applicable,
                                     per_source, shared, timed_samples)
from gankit.registry import DATASETS

STACKED_MODES = 1000


# ================================================================= pure functions
def classifier_frechet_distance(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (N, D) (float64)."""
    mu1, s1 = feature_statistics(real_features, "real classifier features")
    mu2, s2 = feature_statistics(fake_features, "generated classifier features")
    return frechet_distance(mu1, s1, mu2, s2, names=("the real images", "the generated images"))


def class_histogram(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Normalised histogram (num_classes,) of integer labels."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    counts = np.bincount(labels, minlength=num_classes)[:num_classes].astype(np.float64)
    return counts / max(1, len(labels))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats; 0 log 0 = 0; infinite if p puts mass where q has none."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    nz = p > 0
    if np.any(q[nz] <= 0):
        return math.inf
    return float((p[nz] * np.log(p[nz] / q[nz])).sum())


def kl_to_uniform(hist: np.ndarray) -> float:
    hist = np.asarray(hist, np.float64)
    return kl_divergence(hist, np.full(hist.shape, 1.0 / hist.size))


def entropy(hist: np.ndarray) -> float:
    """Shannon entropy in nats (log K for a uniform histogram over K classes)."""
    p = np.asarray(hist, np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum()) + 0.0      # + 0.0: no "-0.0" in the logs


def conditional_accuracy(predicted: np.ndarray, conditioned: np.ndarray) -> float:
    predicted, conditioned = np.asarray(predicted).reshape(-1), np.asarray(conditioned).reshape(-1)
    if predicted.shape != conditioned.shape or predicted.size == 0:
        raise ValueError(f"need equally many predictions and labels, got {predicted.shape} "
                         f"and {conditioned.shape}")
    return float((predicted == conditioned).mean())


def code_counts(codes: np.ndarray, predicted: np.ndarray, num_codes: int | None = None,
                num_classes: int | None = None) -> np.ndarray:
    """counts[code, class]: how many samples of each code were predicted as each class."""
    codes = np.asarray(codes, np.int64).reshape(-1)
    predicted = np.asarray(predicted, np.int64).reshape(-1)
    counts = np.zeros((num_codes or int(codes.max()) + 1,
                       num_classes or int(predicted.max()) + 1), np.int64)
    np.add.at(counts, (codes, predicted), 1)
    return counts


def class_agreement(codes: np.ndarray, predicted: np.ndarray, num_codes: int | None = None,
                    num_classes: int | None = None) -> tuple[float, dict[int, int]]:
    """Best one-to-one matching of codes to predicted classes (Hungarian algorithm).

    Returns the fraction of samples whose predicted class is the one matched to their code,
    and the matching ``{code: class}``. With more codes than classes, the extra codes stay
    unmatched and their samples count as disagreeing.
    """
    codes = np.asarray(codes, np.int64).reshape(-1)
    predicted = np.asarray(predicted, np.int64).reshape(-1)
    if codes.shape != predicted.shape or codes.size == 0:
        raise ValueError(f"need equally many codes and predictions, got {codes.shape} "
                         f"and {predicted.shape}")
    counts = code_counts(codes, predicted, num_codes, num_classes)   # counts[code, class]
    rows, cols = linear_sum_assignment(counts, maximize=True)
    agreement = counts[rows, cols].sum() / codes.size
    return float(agreement), {int(r): int(c) for r, c in zip(rows, cols)}


def stacked_mode_ids(digits: np.ndarray) -> np.ndarray:
    """(N, 3) digits of the R, G, B channels -> mode ids 100 R + 10 G + B in [0, 1000)."""
    digits = np.asarray(digits, np.int64)
    if digits.ndim != 2 or digits.shape[1] != 3:
        raise ValueError(f"need (N, 3) digits, got {digits.shape}")
    return digits @ np.array([100, 10, 1])


def expected_modes_covered(n: int, modes: int = STACKED_MODES) -> float:
    """Mean number of modes hit by n samples from a perfect (uniform) generator."""
    return modes * (1 - (1 - 1 / modes) ** n)


def mode_coverage(mode_ids: np.ndarray, num_modes: int = STACKED_MODES,
                  min_count: int = 1) -> dict[str, float]:
    """Modes with at least ``min_count`` samples, and KL(mode histogram || uniform)."""
    hist = np.bincount(np.asarray(mode_ids, np.int64), minlength=num_modes)
    p = hist / max(1, hist.sum())
    return {"modes": int((hist >= min_count).sum()), "kl": kl_to_uniform(p)}


def make_stacked_mnist(images: Tensor, labels: Tensor, n: int,
                       seed: int = 0) -> tuple[Tensor, Tensor]:
    """n Stacked-MNIST samples: three independently drawn MNIST digits as R, G, B channels.

    ``images`` uint8 (N, 1, H, W) with ``labels`` (N,) -> uint8 (n, 3, H, W) and the modes
    (n,) = 100 label_R + 10 label_G + label_B.
    """
    gen = torch.Generator().manual_seed(int(seed))
    idx = torch.randint(len(images), (n, 3), generator=gen)               # (n, 3)
    stacked = images[idx.reshape(-1), 0].reshape(n, 3, *images.shape[-2:])
    modes = labels[idx] @ torch.tensor([100, 10, 1])
    return stacked, modes


# ================================================================= plumbing
# The shipped classifiers (weights/*.safetensors) and what they read, for reasons. A data set
# says which one reads it (its class attribute ``classifier``); others get no classifier
# metrics. (Stacked-MNIST's 3 channels are separate digits, read one by one: stacked_metrics.)
SHIPPED = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
# Keys under which InfoGAN-style objectives return their categorical code from
# ``sample_inputs`` (gankit's InfoGAN: ``c_cat``): int64 (N,) or one-hot float (N, K).
CODE_KEYS = ("c_cat", "c", "code")


def shipped_classifier(data: str) -> str | None:
    """The shipped classifier that reads data set ``data`` (its ``classifier``), or None."""
    return getattr(DATASETS.get(data), "classifier", None) if data in DATASETS else None


def classifier_for(trainer) -> str | None:
    return shipped_classifier(getattr(trainer.cfg.data, "name", ""))


def _tag(name: str) -> str:
    return name.replace("-", "_")


def classifier_reason(data: str) -> str | None:
    """None when a shipped classifier reads data set ``data``, else why not (a phrase)."""
    if shipped_classifier(data):
        return None
    return f"needs {' or '.join(SHIPPED.values())} data; this run trains on {data}"


@torch.no_grad()
def generate_with_inputs(trainer, n: int, seed: int,
                         batch: int = 1024) -> tuple[Tensor, dict[str, Tensor]]:
    """n samples and the inputs that made them (labels, codes), from a separate noise stream.

    The samples come from ``trainer.sample`` (sharded over the ranks when several processes
    evaluate; shared with the other metrics of one evaluation); the inputs are replayed from
    the same seed in the same chunks, which draws exactly what ``sample`` fed the generator.
    """
    x = generated_samples(trainer, n, seed, batch)
    gen = make_generator(seed, trainer.device)
    chunks = [trainer.objective.sample_inputs(min(batch, n - i), gen) for i in range(0, n, batch)]
    inputs = {k: torch.cat([c[k].cpu() for c in chunks]) for k, v in chunks[0].items()
              if isinstance(v, Tensor)}
    return x, inputs


def probe_inputs(trainer) -> dict[str, Tensor]:
    """What the objective feeds its generator (checked before generating n samples)."""
    return trainer.objective.sample_inputs(2, make_generator(0, trainer.device))


def predict(name: str, images: Tensor, device: str | torch.device = "cpu",
            ) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), predicted classes (N,)) of a shipped classifier, as numpy."""
    feats, logits = classify(load_classifier(name, device), images)
    return feats.numpy(), logits.argmax(1).numpy()


def generated_predictions(trainer, name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, D), predicted classes (n,)) of the shipped classifier ``name`` on n
    generated samples (seed), computed once per evaluation for every classifier metric."""
    return shared(("classifier", id(trainer), name, n, seed), lambda: predict(
        name, generated_samples(trainer, n, seed), trainer.device))


def real_statistics(data, name: str, n: int, seed: int,
                    device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Classifier features (n, D) and predicted-class histogram (K,) of n real images of a
    data source (``data.sample(n, seed)``), computed once per process and source."""
    def compute() -> dict[str, np.ndarray]:
        feats, pred = predict(name, data.sample(n, seed=seed), device)
        return {"features": feats,
                "hist": class_histogram(pred, load_classifier(name).head.out_features)}
    return per_source(data, ("classifier", name, n, seed, str(device)), compute)


class ClassifierMetric(Metric):
    """Metrics read by the shipped classifier of the run's data set (MNIST, Fashion-MNIST)."""

    smoke_config: ClassVar[dict[str, Any]] = SMOKE_MNIST

    @classmethod
    def check(cls, facts: RunFacts) -> str | None:
        return classifier_reason(facts.data) or super().check(facts)

    @classmethod
    def classifier(cls, trainer) -> str:
        """The shipped classifier of the trainer's data; GankitError when there is none."""
        name = classifier_for(trainer)
        if name is None:
            raise GankitError(not_applicable(cls.name, classifier_reason(
                getattr(trainer.cfg.data, "name", "?"))))
        return name

    @classmethod
    def describe(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, Any]:
        return {**super().describe(trainer, n, seed, options),
                "classifier": cls.classifier(trainer)}


class ClassifierMetrics(ClassifierMetric, name="mnist"):
    """Fréchet distance (cfd, not FID), class KL and entropy in a shipped classifier.

    The MNIST or Fashion-MNIST classifier, by data set. Real statistics come from n images of
    the run's own data source (its split and size), so generated and real images reach the
    classifier through the same resizing."""

    REAL_SEED = 54321          # real samples (generated: default_seed 12345, or the seed asked)

    @classmethod
    def keys(cls, facts: RunFacts | None = None) -> dict[str, Direction | None]:
        names = [shipped_classifier(facts.data)] if facts else SHIPPED
        out: dict[str, Direction | None] = {}
        for tag in map(_tag, names):
            # Entropy: higher means more classes drawn (log 10 when all 10 are equally often).
            out |= {f"cfd_{tag}": "min", f"class_kl_{tag}": "min", f"class_entropy_{tag}": "max"}
        return out

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        name = cls.classifier(trainer)
        real = real_statistics(trainer.data, name, n, cls.REAL_SEED, trainer.device)
        feats, pred = generated_predictions(trainer, name, n, cls.seed(seed))
        hist = class_histogram(pred, real["hist"].size)
        tag = _tag(name)
        # KL to the real data's predicted histogram, not to uniform: MNIST's classes are not
        # exactly balanced (ones are 11 %), and a perfect generator should score 0.
        return {f"cfd_{tag}": classifier_frechet_distance(real["features"], feats),
                f"class_kl_{tag}": kl_divergence(hist, np.maximum(real["hist"], 1e-12)),
                f"class_entropy_{tag}": entropy(hist)}

    @classmethod
    def describe(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, Any]:
        return {**super().describe(trainer, n, seed, options), "n_real": n,
                "seed_real": cls.REAL_SEED, "reference_split": getattr(trainer.cfg.data,
                                                                       "split", None)}


class ClassifierPrecisionRecall(ClassifierMetric, name="mnist-pr"):
    """Improved precision and recall (Kynkäänniemi et al. 2019) in a shipped classifier.

    k = 3 nearest-neighbour balls around n real and n generated images' penultimate features
    of the MNIST or Fashion-MNIST classifier (not Inception, so not comparable with ``pr``):
    precision is the fraction of generated samples inside the real manifold (fidelity),
    recall the fraction of real images inside the generated one (diversity). The same real
    and generated images as metric ``mnist``."""

    K = 3

    @classmethod
    def keys(cls, facts: RunFacts | None = None) -> dict[str, Direction | None]:
        names = [shipped_classifier(facts.data)] if facts else SHIPPED
        return {f"{k}_{_tag(name)}": "max" for name in names for k in ("precision", "recall")}

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        name = cls.classifier(trainer)
        real = real_statistics(trainer.data, name, n, ClassifierMetrics.REAL_SEED,
                               trainer.device)
        feats, _ = generated_predictions(trainer, name, n, cls.seed(seed))
        pr = precision_recall(real["features"], feats, k=cls.K)
        tag = _tag(name)
        return {f"precision_{tag}": pr["precision"], f"recall_{tag}": pr["recall"]}

    @classmethod
    def describe(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, Any]:
        return {**super().describe(trainer, n, seed, options), "n_real": n, "k": cls.K,
                "seed_real": ClassifierMetrics.REAL_SEED}


class SamplingSpeed(Metric, name="speed"):
    """Sampling speed: generated samples per second of wall-clock time (this machine).

    The time ``trainer.sample`` took to draw the n samples of the evaluation (in chunks of
    1024, on the run's device), shared with the other metrics of the same evaluation; so it
    depends on the machine, its load and n (a PixelCNN draws pixel by pixel). Image runs."""

    values = {"samples_per_s": "max"}
    kinds = frozenset({"image"})
    smoke_config: ClassVar[dict[str, Any]] = SMOKE_MNIST

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        _, seconds = timed_samples(trainer, n, cls.seed(seed))
        return {"samples_per_s": n / max(seconds, 1e-9)}

    @classmethod
    def describe(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, Any]:
        return {**super().describe(trainer, n, seed, options),
                "device": str(trainer.device), "threads": torch.get_num_threads(),
                "timing": "wall clock of trainer.sample(n), chunks of 1024"}


class GivenVsPredicted(ClassifierMetric):
    """Base of the metrics that compare what the generator was given (labels, a code) with
    the class the shipped classifier reads in its samples."""

    @classmethod
    def given(cls, inputs: dict[str, Tensor]) -> np.ndarray | None:
        """The per-sample classes the generator was given (n,), or None when it has none."""
        raise NotImplementedError

    @classmethod
    def score(cls, given: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        name = cls.classifier(trainer)
        wanted = caps.describe(cls.needs - {caps.SAMPLES})
        missing = not_applicable(cls.name, f"needs {wanted} in the generator's inputs; "
                                           "this model draws none")
        if cls.given(probe_inputs(trainer)) is None:          # before generating n samples
            raise GankitError(missing)
        x, inputs = generate_with_inputs(trainer, n, cls.seed(seed))
        given = cls.given(inputs)
        if given is None:
            raise GankitError(missing)
        _, pred = predict(name, x, trainer.device)
        return cls.score(given, pred)


class ConditionalAccuracy(GivenVsPredicted, name="conditional-accuracy"):
    """Share of labelled samples the classifier reads as their label (cGAN, AC-GAN)."""

    needs = frozenset({caps.SAMPLES, caps.LABELS})
    values = {"conditional_accuracy": "max"}

    @classmethod
    def given(cls, inputs):
        return inputs["y"].numpy() if "y" in inputs else None

    @classmethod
    def score(cls, given, predicted):
        return {"conditional_accuracy": conditional_accuracy(predicted, given)}


def categorical_code(inputs: dict[str, Tensor]) -> np.ndarray | None:
    for key in CODE_KEYS:
        code = inputs.get(key)
        if code is None:
            continue
        if code.ndim == 1 and not code.is_floating_point():
            return code.numpy()
        if code.ndim == 2 and code.is_floating_point() and bool(((code == 0) | (code == 1)).all()) \
                and bool((code.sum(1) == 1).all()):
            return code.argmax(1).numpy()          # one-hot
    return None


class ClassAgreement(GivenVsPredicted, name="class-agreement"):
    """InfoGAN: categorical code vs the classifier's class, after best (Hungarian) matching."""

    needs = frozenset({caps.SAMPLES, caps.CATEGORICAL})
    values = {"class_agreement": "max"}

    @classmethod
    def given(cls, inputs):
        return categorical_code(inputs)

    @classmethod
    def score(cls, given, predicted):
        return {"class_agreement": class_agreement(given, predicted, num_classes=10)[0]}


class StackedMNISTMetrics(Metric, name="stacked-mnist"):
    """Stacked-MNIST modes covered of 1000 and KL to uniform (VEEGAN / PacGAN protocol)."""

    kinds = frozenset({"image"})
    # three-channel images (random pixels: the test only checks the plumbing); the contract
    # test fills in the folder's path
    smoke_config: ClassVar[dict[str, Any]] = {
        "data": {"name": "folder", "size": 28, "channels": 3}, "model": SMOKE_IMAGE_MODEL}

    @classmethod
    def check(cls, facts: RunFacts) -> str | None:
        # Only data that says it has 3 channels (data.channels, or a data set declaring them)
        # and does not say it holds something else than digits (CIFAR-10 is RGB too).
        reason = super().check(facts)
        wanted = "needs RGB images, one MNIST digit per channel (data.channels: 3)"
        if reason is None and facts.content not in (None, "digits"):
            reason = f"{wanted}; {facts.data} holds {facts.content}"
        if reason is None and facts.channels != 3:
            c = facts.channels
            has = "does not declare its channels" if c is None else \
                f"has {c} channel{'' if c == 1 else 's'}"
            reason = f"{wanted}; this run's data {has}"
        return reason

    # the ideal is a reference (what n perfect samples cover), not a score
    values = {"stacked_modes": "max", "stacked_kl": "min", "stacked_modes_ideal": None}

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        x = generated_samples(trainer, n, cls.seed(seed))
        if x.ndim != 4 or x.shape[1] != 3:      # the config said 3 channels: a network bug
            raise GankitError(not_applicable(cls.name, f"needs RGB images (N, 3, H, W); this "
                                             f"model makes {tuple(x.shape[1:])}"))
        return stacked_metrics(x, trainer.device)


def stacked_metrics(x: Tensor, device: str | torch.device = "cpu") -> dict[str, float]:
    """Metrics of (N, 3, H, W) images in [-1, 1], each channel read by the MNIST classifier."""
    n = x.shape[0]
    _, digits = predict("mnist", x.reshape(n * 3, 1, *x.shape[-2:]), device)   # R, G, B each
    cov = mode_coverage(stacked_mode_ids(digits.reshape(n, 3)))
    return {"stacked_modes": cov["modes"], "stacked_kl": cov["kl"],
            "stacked_modes_ideal": expected_modes_covered(n)}
