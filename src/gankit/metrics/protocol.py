"""The metric protocol: what every registered metric declares, and how metrics are run.

A metric is a class deriving from :class:`Metric`, registered by name in
``gankit.registry.METRICS`` (one line: ``"name": "module:Class"``). It declares

* ``name`` (its registry name, a class keyword) and ``summary`` (the first line of its
  docstring): one line saying what it measures;
* ``keys(facts) -> {key: direction}``: the values ``evaluate`` returns for a run with these
  facts, one it applies to (keys may depend on the data set: ``cfd_mnist`` or
  ``cfd_fashion_mnist``), each with ``"min"`` (lower is better), ``"max"`` (higher is better)
  or ``None`` (not a score: the spread of an estimate, a reference value); ``keys(None)``
  lists every key it can return, for any run;
* ``check(facts) -> str | None``: None when it applies to the run, else why not
  ("needs ...; this run ..."). The default reads ``kinds`` (data kinds) and ``needs``
  (capabilities of the objective, ``gankit.core.capabilities``);
* ``evaluate(trainer, n, seed=None, options=None) -> {key: float}``: exactly ``keys`` of the
  trainer's run, from ``n`` generated samples (``seed`` None: the metric's fixed seed, so that
  evaluations of one run, and of different runs, see the same noise);
* ``describe(trainer, n, seed, options) -> dict``: how the values were measured (the protocol
  recorded next to them by ``gankit eval``);
* ``measured_on(n, seed, options) -> str``: the same in words, from the settings alone (what
  a run's report says of the values logged during training): "1,000 generated samples (seed
  12345, fixed)" by default; metrics of held-out data say so;
* ``smoke_config``: config sections of a tiny run it applies to (for the contract test,
  ``tests/test_metric_protocol.py``).

Applicability is decided from the config alone (:class:`RunFacts`), so that
``eval.metrics`` is checked at config validation and ``gankit eval`` refuses a metric before
loading any weights. Nothing switches on objective names: metrics ask for capabilities.

A key belongs to one metric only and means the same thing (and direction) for every run; so
``declared_direction(key)`` can answer for any key, e.g. for ``eval.mode: auto``.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from torch import Tensor

from gankit.core import capabilities as caps
from gankit.errors import ConfigError, DataUnavailable, GankitError
from gankit.metrics.finite import check_finite, check_values
from gankit.registry import DATASETS, METRICS, OBJECTIVES

Direction = Literal["min", "max"]
DIRECTION_WORDS = {"min": "lower is better", "max": "higher is better", None: "not a score"}

# A tiny image run for ``Metric.smoke_config``: MNIST's 10k test images, tiny MLPs.
SMOKE_IMAGE_MODEL = {"name": "mlp", "z_dim": 8, "g_hidden": 16, "d_hidden": 16,
                     "out_activation": "tanh"}
SMOKE_MNIST = {"data": {"name": "mnist", "split": "test"}, "model": SMOKE_IMAGE_MODEL}


# ================================================================= facts of a run
@dataclass(frozen=True)
class RunFacts:
    """What decides whether a metric applies, known from the config alone.

    ``data``: the data set name (``cfg.data.name``); ``kind``: its kind
    (``"toy1d" | "toy2d" | "image" | "paired" | "unpaired" | "text"``); ``channels``: image
    channels when the config tells (``data.channels``, or a data set class attribute
    ``channels``), else None; ``content``: what the data set says it holds (its class
    attribute ``content``: "digits", "natural images", ...); ``capabilities``: what the
    objective offers
    (``gankit.core.capabilities``).
    """

    data: str
    kind: str
    channels: int | None
    capabilities: frozenset[str]
    content: str | None = None       # what the data set says it holds ("digits", ...)

    @classmethod
    def from_sections(cls, data: Any, objective: Any) -> "RunFacts":
        """From validated ``data`` and ``objective`` sections (their ``Params`` models).

        Raises ConfigError for an unknown data set or objective name."""
        data_cls = DATASETS.get(data.name)
        channels = getattr(data, "channels", None) or getattr(data_cls, "channels", None)
        offered = OBJECTIVES.get(objective.name).capabilities(objective)
        return cls(data.name, data_cls.kind, channels, frozenset(offered),
                   getattr(data_cls, "content", None))

    @classmethod
    def from_config(cls, cfg: Any) -> "RunFacts":
        """From a RunConfig (anything with validated ``data`` and ``objective`` sections)."""
        return cls.from_sections(cfg.data, cfg.objective)

    def trains_on(self) -> str:
        """'ring (toy2d data)', for reasons."""
        return f"{self.data} ({self.kind} data)"


def datasets_of_kind(kinds: frozenset[str]) -> list[str]:
    """Registered data set names whose kind is one of ``kinds`` (imports their modules)."""
    return [n for n in DATASETS.names() if DATASETS.get(n).kind in kinds]


def kind_reason(kinds: frozenset[str], facts: RunFacts) -> str | None:
    """None when the run's data kind is one of ``kinds``, else 'needs image data (mnist,
    ...); this run trains on ring (toy2d data)'."""
    if facts.kind in kinds:
        return None
    examples = ", ".join(datasets_of_kind(kinds))
    return (f"needs {' or '.join(sorted(kinds))} data ({examples}); "
            f"this run trains on {facts.trains_on()}")


# ================================================================= options of an evaluation
@dataclass(frozen=True)
class EvalOptions:
    """Settings some metrics read: the FID Inception weights file (None: from
    ``$GANKIT_INCEPTION_WEIGHTS``, the cache, or a checked download; see
    ``gankit.eval.inception.resolve_weights``) and the FID matrix square root
    (``"sqrtm"``: pytorch-fid's; ``"svd"``: exact and faster, see ``gankit.metrics.fid``),
    and the importance samples k of an estimated likelihood (None: the model's default; the
    held-out NLL of a VAE, Burda et al. 2016)."""

    inception_weights: str | None = None
    fid_method: Literal["sqrtm", "svd"] = "sqrtm"
    iw_samples: int | None = None

    @classmethod
    def from_config(cls, ev: Any) -> "EvalOptions":
        """From an ``eval`` config section (fields it lacks take their defaults)."""
        return cls(inception_weights=getattr(ev, "inception_weights", None),
                   fid_method=getattr(ev, "fid_method", "sqrtm"),
                   iw_samples=getattr(ev, "iw_samples", None))


# ================================================================= the protocol
class Metric:
    """Base class of registered metrics; see the module notes. A subclass names itself
    (``class FID(InceptionMetric, name="fid")``), says what it measures in the first line of
    its docstring (its ``summary``), and sets ``values`` or ``keys``, ``evaluate`` and, when
    it is not "any data with samples", ``kinds`` / ``needs`` or ``check``. Everything is a
    class method: a metric holds no state."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""          # the first line of the class docstring

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
        doc = cls.__dict__.get("__doc__")
        if doc:
            cls.summary = doc.strip().splitlines()[0].rstrip(".")
    kinds: ClassVar[frozenset[str] | None] = None            # data kinds (None: any)
    needs: ClassVar[frozenset[str]] = frozenset({caps.SAMPLES})
    default_seed: ClassVar[int] = 12345                     # generated samples
    # False: needs files gankit does not ship (e.g. the Inception weights), which may mean a
    # download; ``prepare`` finds them or fails
    offline: ClassVar[bool] = True
    smoke_config: ClassVar[dict[str, Any]] = {}             # default: the ring / MLP demo

    # the keys ``evaluate`` returns with their directions, when they do not depend on the run
    values: ClassVar[dict[str, Direction | None]] = {}

    @classmethod
    def keys(cls, facts: RunFacts | None = None) -> dict[str, Direction | None]:
        """The values ``evaluate`` returns for a run with ``facts`` (one it applies to), with
        their directions; with None, every key it can return for any run. Default:
        ``values``; metrics whose keys depend on the data override this."""
        return dict(cls.values)

    @classmethod
    def check(cls, facts: RunFacts) -> str | None:
        """None when the metric applies to a run with ``facts``; else the reason, as a phrase
        starting with 'needs' (shown after "it")."""
        if cls.kinds is not None:
            reason = kind_reason(cls.kinds, facts)
            if reason:
                return reason
        return caps.missing_message(cls.needs, facts.capabilities)

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        """The metric's values on ``n`` samples of ``trainer``'s generator (see ``keys``).
        Raises GankitError when the run turns out not to fit (e.g. no categorical code)."""
        raise NotImplementedError

    @classmethod
    def describe(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, Any]:
        """How ``evaluate`` measures (sample counts, seeds, feature network, ...), JSON-able."""
        return {"n_generated": n, "seed_generated": cls.seed(seed)}

    @classmethod
    def measured_on(cls, n: int, seed: int | None = None,
                    options: EvalOptions | None = None) -> str:
        """What ``evaluate(trainer, n, seed, options)`` reads, in words, known without a run
        (for pages): '1,000 generated samples (seed 12345, fixed)'. Metrics that read
        something else (held-out data) override it, as they do ``describe``."""
        return f"{n:,} generated samples (seed {cls.seed(seed)}, fixed)"

    @classmethod
    def prepare(cls, options: EvalOptions | None = None) -> None:
        """Check, before any work, what evaluation needs beyond the run (e.g. weights files);
        raises GankitError (one line) when it is missing."""

    @classmethod
    def seed(cls, seed: int | None) -> int:
        return cls.default_seed if seed is None else int(seed)


def not_applicable(name: str, reason: str) -> str:
    return f"metric {name!r} does not apply to this run: it {reason}"


def metric(name: str) -> type[Metric]:
    """The registered metric class; ConfigError (one line) for an unknown name."""
    return METRICS.get(name)


# ================================================================= what a config may ask for
def check_applicable(names: Sequence[str], facts: RunFacts) -> None:
    """Raise ConfigError (one line) for the first unknown or inapplicable metric."""
    for name in names:
        reason = metric(name).check(facts)
        if reason:
            raise ConfigError(not_applicable(name, reason))


def returned_keys(names: Sequence[str], facts: RunFacts) -> dict[str, Direction | None]:
    """Every key the metrics ``names`` return for a run with ``facts``, with its direction."""
    out: dict[str, Direction | None] = {}
    for name in names:
        out |= metric(name).keys(facts)
    return out


def check_eval(names: Sequence[str], best_metric: str | None, mode: str,
               facts: RunFacts) -> None:
    """What config validation checks of the ``eval`` section for a run with ``facts``:
    every metric applies; ``best_metric`` is a key they return; with ``mode`` "auto" that key
    declares a direction. Raises ConfigError (one line)."""
    check_applicable(names, facts)
    if best_metric is None:
        return
    available = returned_keys(names, facts)
    if best_metric not in available:
        listed = ", ".join(sorted(available)) or "none (eval.metrics is empty)"
        raise ConfigError(f"eval.best_metric {best_metric!r} is not a value of eval.metrics "
                          f"[{', '.join(names)}] for this run; they return: {listed}")
    if mode == "auto" and available[best_metric] is None:
        raise ConfigError(_no_direction(best_metric))


def catalog() -> dict[str, tuple[str, Direction | None]]:
    """key -> (metric name, direction) over every registered metric (not cached: tests and
    plug-ins may register metrics at any time); reports read a logged key's meaning here."""
    out: dict[str, tuple[str, Direction | None]] = {}
    for name in METRICS.names():
        for key, direction in metric(name).keys(None).items():
            out.setdefault(key, (name, direction))
    return out


def declared_direction(key: str) -> Direction:
    """The direction a registered metric declares for ``key``; GankitError when none does
    (or the key is not a score), asking for ``eval.mode``."""
    entry = catalog().get(key)
    if entry is None:
        raise GankitError(f"cannot tell whether lower or higher {key!r} is better: no "
                          "registered metric returns it; set eval.mode to min or max")
    if entry[1] is None:
        raise GankitError(_no_direction(key))
    return entry[1]


def _no_direction(key: str) -> str:
    return (f"eval.best_metric {key!r} is not a score (no declared direction); choose another "
            "key or set eval.mode to min or max")


def describe_keys(keys: dict[str, Direction | None]) -> str:
    """'modes, hq_fraction: higher is better; kl: lower is better' (for ``gankit list``)."""
    groups: dict[Direction | None, list[str]] = {}
    for key, direction in keys.items():
        groups.setdefault(direction, []).append(key)
    return "; ".join(f"{', '.join(ks)}: {DIRECTION_WORDS[d]}" for d, ks in groups.items())


# ================================================================= running metrics
def run_metric(m: type[Metric], trainer, n: int, seed: int | None = None,
               options: EvalOptions | None = None) -> dict[str, float]:
    """``m.evaluate`` after checking that it applies, and that it returned exactly its
    declared keys (a mismatch is a bug in the metric: RuntimeError), each a finite number
    (NonFiniteError, ``gankit.metrics.finite``, otherwise)."""
    facts = RunFacts.from_config(trainer.cfg)
    reason = m.check(facts)
    if reason:
        raise GankitError(not_applicable(m.name, reason))
    values = m.evaluate(trainer, n, seed, options)
    declared = m.keys(facts)
    if set(values) != set(declared):
        raise RuntimeError(f"metric {m.name!r} returned {sorted(values)} but declares "
                           f"{sorted(declared)}")
    return check_values(m.name, values)


def evaluate_metrics(trainer, names: Sequence[str], n: int, seed: int | None = None,
                     options: EvalOptions | None = None
                     ) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Run the metrics ``names`` on one set of samples: ``(values, {name: protocol})``."""
    values: dict[str, float] = {}
    described: dict[str, dict[str, Any]] = {}
    with shared_samples():
        for name in names:
            m = metric(name)
            try:
                values |= run_metric(m, trainer, n, seed, options)
            except DataUnavailable as e:          # say which metric needed the data
                raise DataUnavailable(f"metric {name} {e}") from e
            described[name] = {"metric": name, **m.describe(trainer, n, seed, options)}
    return values, described


# ================================================================= sharing work
# Inside one evaluation (``shared_samples``), metrics that draw the same samples or features
# (same trainer, n, seed) compute them once: fid, kid and pr read the same generated
# features. Outside one, nothing is kept, since the generator changes between evaluations.
_SHARED: contextvars.ContextVar[dict | None] = contextvars.ContextVar("gankit_eval_shared",
                                                                      default=None)


@contextlib.contextmanager
def shared_samples() -> Iterator[None]:
    """Let the metrics evaluated inside share generated samples and features (nests)."""
    if _SHARED.get() is not None:
        yield
        return
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def shared(key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``, or its result for ``key`` earlier in the current evaluation."""
    store = _SHARED.get()
    if store is None:
        return compute()
    if key not in store:
        store[key] = compute()
    return store[key]


def timed_samples(trainer, n: int, seed: int, batch: int = 1024) -> tuple[Tensor, float]:
    """``trainer.sample(n, seed, batch)`` (n, *shape) on the CPU and the wall-clock seconds
    it took, shared within an evaluation (so a speed is read off the samples the other
    metrics use, not drawn again); NonFiniteError when the generator gave NaN or infinite
    values (no metric can use them)."""
    def draw() -> tuple[Tensor, float]:
        start = time.perf_counter()
        x = trainer.sample(n, seed=seed, batch=batch)
        seconds = time.perf_counter() - start
        check_finite(f"the generator's samples (n={n}, seed={seed})", x)
        return x, seconds
    return shared(("samples", id(trainer), n, seed, batch), draw)


def generated_samples(trainer, n: int, seed: int, batch: int = 1024) -> Tensor:
    """The samples of ``timed_samples`` (n, *shape) on the CPU."""
    return timed_samples(trainer, n, seed, batch)[0]


# Statistics of real data depend only on the data source and how they are computed (feature
# network, n, seed): computed once per process, forgotten with the source.
_REAL: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def per_source(data: Any, key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per (data source, key) in this process."""
    store = _REAL.setdefault(data, {})
    if key not in store:
        store[key] = compute()
    return store[key]
