"""FID, Inception Score, KID and precision/recall/density/coverage as registered metrics.

Each class computes its values from two sets of Inception features (``from_features``: the
maths is in ``gankit.metrics``), and from a trainer through the metric protocol
(``gankit.metrics.protocol``): n real images of the run's data source (``data.sample(n,
seed)``) against n generated ones (``trainer.sample(n, seed + 1)``), both quantized to uint8
as a PNG save would (the same route as ``gankit fid`` on saved folders). The default seed is 0,
the seed ``gankit eval`` has always used.

Work is shared: the feature network is loaded once per process (``eval.api.get_extractor``);
real features once per process per (data source, network, n, seed); generated features once
per evaluation, for all the Inception metrics of that evaluation.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gankit.eval.features import Features
from gankit.metrics import fid as fidmath
from gankit.metrics.inception_score import inception_score
from gankit.metrics.kid import kernel_inception_distance
from gankit.metrics.prdc import prdc
from gankit.metrics.protocol import (SMOKE_MNIST, EvalOptions, Metric, generated_samples,
                                     per_source, shared)

BATCH = 50          # images per Inception forward (pytorch-fid's default)


class InceptionMetric(Metric):
    """Base of the metrics computed on FID Inception features of real and generated images."""

    kinds = frozenset({"image"})
    default_seed = 0              # real images: seed; generated: seed + 1
    offline = False               # the FID Inception weights are not shipped with gankit
    smoke_config: ClassVar[dict[str, Any]] = SMOKE_MNIST      # grey images are fed as RGB
    clipped_to_n: ClassVar[tuple[str, ...]] = ()              # settings that cannot exceed n
    # compares with real images (then read from the run's data); the Inception Score does not,
    # so it needs only the run folder
    reads_real: ClassVar[bool] = True

    @classmethod
    def settings(cls, options: EvalOptions) -> dict[str, Any]:
        """The keyword arguments of ``from_features`` (recorded in ``describe``)."""
        return {}

    @classmethod
    def from_features(cls, real: Features, generated: Features,
                      **settings: Any) -> tuple[dict[str, float], dict[str, Any]]:
        """(values, protocol of the computation) from real and generated features."""
        raise NotImplementedError

    # ---- from a trainer ---------------------------------------------------------------
    @classmethod
    def prepare(cls, options: EvalOptions | None = None) -> None:
        """Find the Inception weights now (GankitError, one line, when there are none), not
        after the first stretch of training."""
        from gankit.eval.inception import resolve_weights

        resolve_weights((options or EvalOptions()).inception_weights)

    @classmethod
    def extractor(cls, trainer, options: EvalOptions):
        # eval.api imports this module (evaluate_features), hence the late import
        from gankit.eval.api import get_extractor

        return get_extractor(options.inception_weights, device=str(trainer.device))

    @classmethod
    def features(cls, trainer, n: int, seed: int | None,
                 options: EvalOptions) -> tuple[Features, Features]:
        """Inception features of n real images (seed; None unless ``reads_real``) and n
        generated ones (seed + 1)."""
        from gankit.eval.api import feature_stats_for_generator, slices_of

        extractor = cls.extractor(trainer, options)
        s = cls.seed(seed)
        net = (tuple(sorted(extractor.protocol().items())), str(extractor.device))

        def features_of(images):                                       # (n, C, H, W) in [-1, 1]
            return feature_stats_for_generator(slices_of(images), n, batch_size=BATCH,
                                               extractor=extractor)

        real = per_source(trainer.data, ("inception", net, n, s),
                          lambda: features_of(trainer.data.sample(n, s))) \
            if cls.reads_real else None
        fake = shared(("inception", id(trainer), net, n, s + 1),
                      lambda: features_of(generated_samples(trainer, n, s + 1)))
        return real, fake

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        options = options or EvalOptions()
        real, fake = cls.features(trainer, n, seed, options)
        return cls.from_features(real, fake, **cls.settings(options))[0]

    @classmethod
    def describe(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, Any]:
        options = options or EvalOptions()
        s = cls.seed(seed)
        settings = cls.settings(options)
        # what the computation really used: splits / subset sizes are clipped to n
        settings |= {k: min(settings[k], n) for k in cls.clipped_to_n}
        real = ({"n_real": n, "seed_real": s,
                 "reference_split": getattr(trainer.cfg.data, "split", None)}
                if cls.reads_real else {})
        return {**cls.extractor(trainer, options).protocol(), **real, "n_generated": n,
                "seed_generated": s + 1, **settings}


class FID(InceptionMetric, name="fid"):
    """Fréchet Inception distance (Heusel et al. 2017; pytorch-fid's network)."""

    values = {"fid": "min"}

    @classmethod
    def settings(cls, options: EvalOptions) -> dict[str, Any]:
        return {"fid_method": options.fid_method}

    @classmethod
    def from_features(cls, real, generated, fid_method: str = "sqrtm"):
        res = fidmath.fid_from_features(real.pool3, generated.pool3, method=fid_method)
        return {"fid": res["fid"]}, res["protocol"]


class InceptionScore(InceptionMetric, name="is"):
    """Inception Score, mean and spread over 10 splits (Salimans et al. 2016)."""

    values = {"is_mean": "max", "is_std": None}     # the std is the estimate's spread
    clipped_to_n = ("splits",)
    reads_real = False                               # generated images only

    @classmethod
    def settings(cls, options: EvalOptions) -> dict[str, Any]:
        return {"splits": 10}

    @classmethod
    def from_features(cls, real, generated, splits: int = 10):
        # Fewer samples than splits only happens in smoke runs; keep at least one per split.
        res = inception_score(generated.logits, splits=min(splits, len(generated)))
        return {"is_mean": res["is_mean"], "is_std": res["is_std"]}, res["protocol"]


class KID(InceptionMetric, name="kid"):
    """Kernel Inception distance, unbiased cubic-kernel MMD^2 (Bińkowski et al. 2018)."""

    values = {"kid_mean": "min", "kid_std": None}   # the std is the estimate's spread
    clipped_to_n = ("subset_size",)

    @classmethod
    def settings(cls, options: EvalOptions) -> dict[str, Any]:
        return {"subsets": 100, "subset_size": 1000}  # the subset size is clipped to n

    @classmethod
    def from_features(cls, real, generated, subsets: int = 100, subset_size: int = 1000):
        res = kernel_inception_distance(real.pool3, generated.pool3, subsets=subsets,
                                        subset_size=subset_size)
        return {"kid_mean": res["kid_mean"], "kid_std": res["kid_std"]}, res["protocol"]


class PrecisionRecall(InceptionMetric, name="pr"):
    """Precision, recall, density, coverage of Inception features (k-NN manifolds).

    Precision/recall (Kynkäänniemi et al. 2019), density/coverage (Naeem et al. 2020)."""

    values = {"precision": "max", "recall": "max", "density": "max", "coverage": "max"}

    @classmethod
    def settings(cls, options: EvalOptions) -> dict[str, Any]:
        return {"pr_k": 3, "dc_k": 5}

    @classmethod
    def from_features(cls, real, generated, pr_k: int = 3, dc_k: int = 5):
        res = prdc(real.pool3, generated.pool3, pr_k=pr_k, dc_k=dc_k)
        return {k: res[k] for k in ("precision", "recall", "density", "coverage")}, \
            res["protocol"]


# By the names ``eval.api.evaluate_features`` takes ("prdc" for the registered "pr").
BY_PART = {"fid": FID, "is": InceptionScore, "kid": KID, "prdc": PrecisionRecall}
