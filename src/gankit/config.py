"""Run configuration: typed, validated, saved with every run.

A config is plain data. Presets (``gankit/presets/*.yaml``) are small dicts that differ from the
defaults below; ``--set key=value`` overrides are applied to that dict; then the sections that
name a registered variant (``data``, ``model``, ``objective``) are validated by that variant's
own ``Params`` model, and the objective fills in what it recommends (k / n_critic, optimizers).
Unknown keys are errors everywhere (named with the closest known key of their section), and
values are what they say (``gankit.params``: strict types; YAML is read with YAML 1.2's
floats, so ``1e-4`` is a float and ``1e3`` is not an integer). What the objective requires
of the data (its data kinds and its optional ``check_data(params, data)``: the VAE's
Bernoulli decoder wants binarised images) and what the networks require of the data and the
batch (``check_networks``) are checked here too, before anything is built.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import os
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from gankit.errors import ConfigError, GankitError
from gankit.params import FloatPair, Params, PathStr
from gankit.registry import DATASETS, NETWORKS, OBJECTIVES, Registry

PRESET_DIR = Path(__file__).parent / "presets"
DEFAULT_PRESET = "ring"


class Strict(Params):
    model_config = ConfigDict(validate_assignment=True)     # and Params' strict rules


class OptimConfig(Strict):
    """One optimizer per training phase (``optim.D``, ``optim.G``, ...)."""

    name: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr: float = Field(2e-4, gt=0, le=10)
    betas: FloatPair = (0.5, 0.999)
    momentum: float = Field(0.0, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    decay_start: float = Field(0.0, ge=0, lt=1)   # fraction of the run before decay begins
    warmup_steps: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)               # floor of a decaying rate (linear, cosine)
    grad_clip: float | None = Field(None, gt=0)    # max global grad norm

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError("betas must lie in [0, 1)")
        return v


class TrainConfig(Strict):
    steps: int = Field(2000, gt=0)                  # generator updates
    # The step where learning-rate schedules end (decay_start is a fraction of it); null:
    # train.steps. Extending a finished run keeps it, so the rate stays where it ended.
    schedule_steps: int | None = Field(None, gt=0)
    batch_size: int = Field(256, gt=0, le=65536)
    d_steps: int = Field(1, gt=0, le=100)           # k of Algorithm 1 / n_critic
    ema_beta: float | None = Field(None, gt=0, lt=1)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    amp: Literal["off", "bf16", "fp16"] = "off"     # CUDA only; CPU runs stay fp32
    nan_policy: Literal["skip", "stop", "rollback"] = "stop"
    max_bad_steps: int = Field(10, gt=0)            # in a row, before stop/rollback
    rollback_lr_factor: float = Field(0.5, gt=0, le=1)
    # Speed (gankit.train.distributed has the data-parallel rules; batch_size is the global
    # batch, split evenly over the processes of `gankit train --nproc N` / torchrun):
    compile: bool = False                           # torch.compile G and D (not GP critics)
    channels_last: bool = False                     # NHWC conv layouts (helps CUDA tensor cores)
    # With one D step per G step, G's update reuses the fakes of the D step (graph kept), as
    # the PyTorch DCGAN example does: one G forward per step instead of two. Off by default:
    # Algorithm 1 of Goodfellow 2014 draws a fresh noise minibatch for the G step.
    reuse_fakes: bool = False
    sync_bn: bool = False                           # SyncBatchNorm across processes (CUDA only)
    # CPU threads for this process (0: torch's default). Small models run fastest on one:
    # extra OpenMP threads spin-wait whenever the machine is busy.
    threads: int = Field(0, ge=0, le=1024)
    # CPU only: during training steps, subnormal floats (fp32 |x| < 1.2e-38) are read and
    # written as zero (torch.set_flush_denormal; set back as it was after each step, so
    # evaluations and other runs in the process are untouched). A per-thread switch: needs
    # threads=1.
    # Long CPU runs slow down as weights and Adam moments pick up subnormals (8.5 against 7.2
    # ms per VAE step, benchmarks/RESULTS.md); off by default: it changes the arithmetic.
    flush_denormal: bool = False

    @model_validator(mode="after")
    def _flush_on_one_thread(self) -> "TrainConfig":
        if self.flush_denormal and self.threads != 1:
            raise ValueError("train.flush_denormal needs train.threads=1 (flush-to-zero is "
                             "set per thread; other threads would keep subnormals)")
        return self

    @property
    def schedule_end(self) -> int:
        """The step where the learning-rate schedules end (``schedule_steps`` or ``steps``)."""
        return self.schedule_steps or self.steps


class LogConfig(Strict):
    every: int = Field(50, gt=0)                    # metrics.jsonl line every N steps
    sample_at: list[int] = Field(default_factory=lambda: [1, 100, 1000, 2000, 5000, 10000])
    sample_every: int = Field(10000, gt=0)          # after the last of sample_at
    n_fixed: int = Field(64, gt=0, le=1024)         # fixed-noise samples in each grid
    ckpt_every: int = Field(1000, gt=0)
    keep_ckpts: int = Field(3, gt=0)
    progress: bool = True
    # without a terminal (a pipe, nohup, a notebook): one progress line every N seconds
    progress_seconds: float = Field(10.0, gt=0)
    # the final figures of the run's view; false for sweeps (``gankit plot RUN`` draws them later)
    figures: bool = True
    # TensorBoard event files in the run folder (``pip install gankit[tensorboard]``):
    # auto = when the package is installed; true without it is an error
    tensorboard: Literal["auto"] | bool = "auto"


class EvalConfig(Strict):
    """Evaluation during training (``gankit.train.evaluation``) with registered metrics."""

    metrics: list[str] = Field(default_factory=list)
    every: int = Field(500, gt=0)
    n: int = Field(2500, gt=0)
    best_metric: str | None = None          # a key the metrics return (fid, cfd_mnist, ...):
    mode: Literal["auto", "min", "max"] = "auto"     # keeps checkpoints/best.safetensors
    patience: int | None = Field(None, ge=1)         # evaluations without improvement -> stop
    min_delta: float = Field(0.0, ge=0)
    # FID Inception weights (fid, is, kid, pr); None: $GANKIT_INCEPTION_WEIGHTS, the cache,
    # or a checked download. "svd": the same FID as pytorch-fid's sqrtm in seconds, not minutes.
    inception_weights: PathStr | None = None
    fid_method: Literal["sqrtm", "svd"] = "sqrtm"
    # importance samples k of an estimated held-out likelihood (metric nll of a VAE; Burda
    # et al. 2016); None: the model's own default (the vae objective's iw_samples)
    iw_samples: int | None = Field(None, gt=0, le=1_000_000)

    @model_validator(mode="after")
    def _best(self) -> "EvalConfig":
        """What can be checked without the run (``RunConfig._metrics_apply`` checks the
        metrics against the run's data and objective)."""
        if self.patience is not None and self.best_metric is None:
            raise ValueError("eval.patience needs eval.best_metric")
        return self

    @field_validator("metrics")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        from gankit.registry import METRICS
        for name in v:
            METRICS.get(name)
        return v


def _section(registry: Registry, value: Any) -> BaseModel:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        raise ValueError(f"must be a mapping with a 'name' ({', '.join(registry.names())})")
    if value["name"] not in registry:
        raise ValueError(f"unknown {registry.kind} {value['name']!r}; "
                         f"choose one of: {', '.join(registry.names())}")
    return registry.get(value["name"]).Params.model_validate(value)


class RunConfig(Strict):
    seed: int = Field(0, ge=0, lt=2**63)
    data: Any = Field(default_factory=lambda: {"name": "ring"}, validate_default=True)
    model: Any = Field(default_factory=lambda: {"name": "mlp"}, validate_default=True)
    objective: Any = Field(default_factory=lambda: {"name": "nonsaturating"}, validate_default=True)
    optim: dict[str, OptimConfig] = Field(default_factory=dict)
    train: TrainConfig = Field(default_factory=TrainConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, v: Any) -> BaseModel:
        return _section(DATASETS, v)

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, v: Any) -> BaseModel:
        return _section(NETWORKS, v)

    @field_validator("objective", mode="before")
    @classmethod
    def _objective(cls, v: Any) -> BaseModel:
        return _section(OBJECTIVES, v)

    @model_validator(mode="after")
    def _metrics_apply(self) -> "RunConfig":
        """Each of ``eval.metrics`` applies to this data and objective; ``eval.best_metric``
        is a key they return, with a declared direction for ``eval.mode`` auto
        (``gankit.metrics.protocol``; imported here so config never imports the engine)."""
        from gankit.metrics import protocol
        ev = self.eval
        try:
            facts = protocol.RunFacts.from_sections(self.data, self.objective)
            protocol.check_eval(ev.metrics, ev.best_metric, ev.mode, facts)
        except GankitError as e:
            raise ValueError(f"eval: {e}") from None
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---------------------------------------------------------------- building a config
def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def describe_preset(name: str) -> str:
    """'<first comment line> [data: MNIST files (12 MB download); 3000 steps]' for
    ``gankit list``: what the preset is, what it needs, how long it trains."""
    path = PRESET_DIR / f"{name}.yaml"
    first = next((line[1:].strip() for line in path.read_text().splitlines()
                  if line.startswith("#") and line[1:].strip()), "")
    raw = load_yaml(path)
    section = raw.get("data") if isinstance(raw.get("data"), dict) else {"name": "ring"}
    data = section.get("name", "ring")
    source = data
    if data in DATASETS:        # the data set's ``source_of(params)``, else its ``source``
        data_cls = DATASETS.get(data)
        source_of = getattr(data_cls, "source_of", None)
        source = (source_of(data_cls.Params.model_validate(section)) if source_of else
                  getattr(data_cls, "source", data))
    steps = (raw.get("train") or {}).get("steps", TrainConfig().steps)
    return f"{first} [data: {source}; {steps} steps]"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading floats as YAML 1.2 does: ``1e-4`` and ``3E5`` are floats
    (YAML 1.1, PyYAML's default, wants a dot: ``1.0e-4``; ``1e-4`` would stay a string, which
    a strict float field refuses)."""


class _Dumper(yaml.SafeDumper):
    """The safe dumper with the same float rule, so that a string such as ``1e5`` (a folder
    name) is written quoted and reads back as a string."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """``text`` as YAML (safe: plain data only), floats as in YAML 1.2 (``_Loader``)."""
    return yaml.load(text, Loader=_Loader)     # noqa: S506 - a SafeLoader subclass


def dump_yaml(data: Any) -> str:
    """``data`` as YAML that ``parse_yaml`` reads back unchanged (keys in their order)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = parse_yaml(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read config {path}: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping, not {type(data).__name__}")
    return data


def preset_dict(name: str) -> dict[str, Any]:
    """A preset by name, or a YAML file by path. ConfigError (one line): "no such config
    file" for a path (a .yaml / .yml name, or one with a folder) that is not a file, and for
    an unknown preset name the nearest one ("did you mean ...?") or the list of them."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or "/" in name or os.sep in name:
        if not path.is_file():
            raise ConfigError(f"no such config file: {name}")
        if path.suffix not in (".yaml", ".yml"):
            raise ConfigError(f"config file {name} must end in .yaml or .yml")
        return load_yaml(path)
    path = PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        names = list_presets()
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        if close:
            raise ConfigError(f"unknown preset {name!r}; did you mean {close[0]}? "
                              f"(`gankit list` shows all {len(names)} presets)")
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(names)} "
                          "(or give a path to a .yaml file)")
    return load_yaml(path)


def parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part.strip() for part in key.split(".")):
        raise ConfigError(f"bad override {text!r}: expected key=value, e.g. train.steps=500")
    try:
        value = parse_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return [p.strip() for p in key.split(".")], value


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    for text in overrides:
        path, value = parse_override(text)
        node = cfg
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"bad override {text!r}: {part!r} is not a section")
            node = child
        leaf = path[-1]
        if leaf in ("data", "model", "objective") and node is cfg and isinstance(value, str):
            value = {"name": value}   # `--set objective=wgan` switches variant, dropping old params
        node[leaf] = value
    return cfg


def _format_error(err: ValidationError, raw: dict[str, Any] | None = None) -> str:
    """pydantic's errors as one line: the first three, each 'key: message'; an unknown key
    with the closest known one (``_unknown_key``), one value where a list belongs with how
    to write the list (``_list_hint``). ``raw``: the config dict that was validated (it
    names the data set, network and objective whose fields a key is looked up in)."""
    raw = raw or {}
    parts = []
    for e in err.errors()[:3]:
        path = tuple(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        if e["type"] == "extra_forbidden" and path:
            parts.append(_unknown_key(path, raw))
            continue
        msg = e["msg"].removeprefix("Value error, ") + _given(e) + _list_hint(e, path, raw)
        parts.append(f"{'.'.join(path)}: {msg}" if path else msg)
    more = len(err.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _unknown_key(path: tuple[str, ...], raw: dict[str, Any]) -> str:
    """'unknown key train.step (did you mean train.steps?)': the closest of the section's
    field names (difflib), or without a close one the section's keys."""
    model = _section_model(path[:-1], raw)
    fields = list(model.model_fields) if model is not None else []
    key = ".".join(path)
    prefix = key.removesuffix(path[-1])                    # 'train.' ('' at the top level)
    close = difflib.get_close_matches(path[-1], fields, n=1)
    if close:
        return f"unknown key {key} (did you mean {prefix}{close[0]}?)"
    if fields:
        return f"unknown key {key}; {prefix.rstrip('.') or 'the config'} has {', '.join(fields)}"
    return f"unknown key {key}"


def _list_hint(error: dict[str, Any], path: tuple[str, ...], raw: dict[str, Any]) -> str:
    """'; write a list, e.g. [nll]' for one value given to a list field (a pair such as
    ``betas``: its default as the example)."""
    value = error.get("input")
    if error["type"] not in ("list_type", "tuple_type") or isinstance(value, (list, dict)):
        return ""
    example = [value]
    model = _section_model(path[:-1], raw) if path else None
    field = model.model_fields.get(path[-1]) if model is not None else None
    if error["type"] == "tuple_type" and field is not None:
        default = field.get_default(call_default_factory=True)
        example = list(default) if isinstance(default, (tuple, list)) and default else example
    return f"; write a list, e.g. [{', '.join(_flow(v) for v in example)}]"


def _flow(value: Any) -> str:
    """A scalar as it is written in a YAML list: nll, 0.5, true."""
    return yaml.dump(value, Dumper=_Dumper).removesuffix("...\n").strip()


VARIANTS = {"data": DATASETS, "model": NETWORKS, "objective": OBJECTIVES}


def _section_model(section: tuple[str, ...], raw: dict[str, Any]) -> type[BaseModel] | None:
    """The pydantic model of the config section at ``section`` (() the top level, ('train',),
    ('optim', 'D'); ('data',): the ``Params`` of the data set ``raw`` names, or of the
    default one), or None when there is none."""
    model: type[BaseModel] | None = RunConfig
    parts = list(section)
    while parts and model is not None:
        part = parts.pop(0)
        if model is RunConfig and part in VARIANTS:
            value = raw.get(part) or RunConfig.model_fields[part].get_default(
                call_default_factory=True)
            name = value.get("name") if isinstance(value, dict) else value
            model = VARIANTS[part].get(name).Params if name in VARIANTS[part] else None
            continue
        field = model.model_fields.get(part)
        kind = field.annotation if field is not None else None
        if typing.get_origin(kind) is dict and parts:       # optim: {phase: OptimConfig}
            kind = typing.get_args(kind)[1]
            parts.pop(0)
        model = kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None
    return model


def _given(error: dict[str, Any]) -> str:
    """What a strict type check was given, for its message: ', not the boolean true';
    ', not 1000.0 (an integer is written without a dot or exponent: 1000)'."""
    if not error["type"].endswith("_type"):
        return ""
    value = error.get("input")
    if isinstance(value, bool):
        return f", not the boolean {str(value).lower()}"
    if isinstance(value, float) and error["type"] == "int_type" and value.is_integer():
        return f", not {value!r} (an integer is written without a dot or exponent: {int(value)})"
    if isinstance(value, (int, float, str)):
        return f", not {value!r}"
    return ""


def validate(raw: dict[str, Any], saved: bool = False) -> RunConfig:
    """Validate a raw dict and let the objective fill in its recommended settings. Raises
    ConfigError (one line) for an invalid value or key, or data the objective cannot train on
    (its ``data_kinds``; its ``check_data(objective params, data params)`` when it has one,
    unless ``saved``: a finished run's config, from a gankit that allowed it, stays readable)."""
    raw = copy.deepcopy(raw)
    try:
        probe = RunConfig.model_validate({k: v for k, v in raw.items() if k != "optim"} |
                                         {"optim": {}})
    except ValidationError as e:
        raise ConfigError(f"invalid config: {_format_error(e, raw)}") from None
    objective = OBJECTIVES.get(probe.objective.name)
    kind = DATASETS.get(probe.data.name).kind
    for what, name, kinds in (("objective", probe.objective.name, objective.data_kinds),
                              ("network", probe.model.name,
                               getattr(NETWORKS.get(probe.model.name), "data_kinds", (kind,)))):
        if kind not in kinds:
            raise ConfigError(f"invalid config: the {name} {what} "
                              f"{'trains on' if what == 'objective' else 'takes'} "
                              f"{' or '.join(kinds)} data; {probe.data.name} is {kind} data")
    check_data = getattr(objective, "check_data", None)    # what else it needs of the data
    if check_data is not None and not saved:
        try:
            check_data(probe.objective, probe.data)
        except ConfigError as e:
            raise ConfigError(f"invalid config: {e}") from None
    phases = objective.phase_names(probe.objective)
    user_optim = raw.get("optim") or {}
    if not isinstance(user_optim, dict):
        raise ConfigError("invalid config: optim must be a mapping of phase -> optimizer")
    unknown = set(user_optim) - set(phases)
    if unknown:
        raise ConfigError(f"invalid config: optim.{sorted(unknown)[0]}: the {probe.objective.name} "
                          f"objective has phases {', '.join(phases)}")
    optim = {}
    for ph in phases:
        given = user_optim.get(ph) or {}
        if not isinstance(given, dict):
            raise ConfigError(f"invalid config: optim.{ph} must be a mapping")
        optim[ph] = _default_optim(objective, probe.objective, ph) | given
    raw["optim"] = optim
    train = raw.setdefault("train", {})
    if isinstance(train, dict) and "d_steps" not in train:
        train["d_steps"] = objective.default_d_steps
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"invalid config: {_format_error(e, raw)}") from None
    if cfg.train.reuse_fakes and not objective.can_reuse_fakes:
        raise ConfigError(f"invalid config: train.reuse_fakes: the {cfg.objective.name} "
                          "objective does not reuse the D step's samples")
    check_schedules(cfg)
    check_networks(cfg, saved=saved)
    return cfg


def _default_optim(objective: type, params: BaseModel, phase: str) -> dict[str, Any]:
    """``objective.default_optim(params, phase)``; ConfigError (one line) when a plug-in's
    method takes other arguments (it once took the phase alone)."""
    try:
        inspect.signature(objective.default_optim).bind(params, phase)
    except ValueError:              # no signature to read (a built-in): let the call tell
        pass
    except TypeError:
        raise ConfigError(f"invalid config: the {params.name} objective's default_optim must "
                          "take (params, phase); one written for default_optim(phase) needs "
                          "the params argument") from None
    return objective.default_optim(params, phase)


def check_schedules(cfg: RunConfig) -> None:
    """ConfigError (one line) when training goes past the end of a schedule that decays to
    learning rate 0 (``min_lr`` 0): those steps would not change the phase's networks."""
    end, steps = cfg.train.schedule_end, cfg.train.steps
    if steps <= end:
        return
    flat = [f"optim.{ph}" for ph, o in cfg.optim.items()
            if o.schedule != "constant" and o.min_lr == 0]
    if flat:
        raise ConfigError(
            f"invalid config: train.steps={steps} runs past train.schedule_steps={end}, where "
            f"the {' and '.join(flat)} schedules have decayed to learning rate 0: the last "
            f"{steps - end} steps would train nothing there; give the schedules a later end "
            f"(train.schedule_steps={steps} re-spreads the decay over all {steps} steps)")


def check_networks(cfg: RunConfig, world: int = 1, saved: bool = False) -> None:
    """What the network family declares about a config, checked before anything is built:
    the image shapes it supports (``check(params, info)``), the per-process batch its
    batch-norm nets need (``min_batch``; ``gankit.core.roles.check_batch``) with
    ``train.batch_size`` split over ``world`` processes, and, unless ``saved`` (a finished
    run stays readable), what it cannot train for the objective's roles
    (``check_roles(params, info, roles)``). The data as the config describes
    them (the data set's ``describe(params)``); a data set that cannot describe itself, or
    whose roles depend on what only its files tell (the classes of an image folder), is
    checked when the trainer builds the networks. Raises ConfigError (one line)."""
    from gankit.core.roles import check_batch
    from gankit.core.step import Latent

    describe = getattr(DATASETS.get(cfg.data.name), "describe", None)
    if describe is None:
        return
    info = describe(cfg.data)
    family = NETWORKS.get(cfg.model.name)
    if getattr(family, "check", None) is not None:
        family.check(cfg.model, info)
    try:
        roles = OBJECTIVES.get(cfg.objective.name).roles(cfg.objective, info,
                                                         Latent.of_model(cfg.model))
    except ConfigError:
        return
    if getattr(family, "check_roles", None) is not None and not saved:
        family.check_roles(cfg.model, info, roles)
    batch = cfg.train.batch_size
    where = (f"train.batch_size={batch}" if world == 1 else
             f"train.batch_size={batch} over {world} processes is {batch // world} per process")
    check_batch(family, cfg.model, info, roles, batch // world, where)


# Keys added after runs were saved without them, whose new default would change what such a
# run trains on: a saved config that lacks them gets the old behaviour back.
LEGACY_DEFAULTS = {("data", "holdout"): 0.0}      # folders trained on every file before


def from_saved(raw: dict[str, Any]) -> RunConfig:
    """Validate a config saved with a run or checkpoint (possibly by an older gankit)."""
    raw = copy.deepcopy(raw)
    for (section, key), old in LEGACY_DEFAULTS.items():
        node = raw.get(section)
        if isinstance(node, dict) and key not in node and "name" in node:
            registry = VARIANTS[section]
            if node["name"] in registry and key in registry.get(node["name"]).Params.model_fields:
                node[key] = old
    return validate(raw, saved=True)


def build_config(preset: str | None, overrides: list[str] = ()) -> RunConfig:
    """The validated config of a preset (name or .yaml path) with ``key=value`` overrides.

    Optimizer settings (``optim.*``, ``train.d_steps``) in a preset belong to the preset's
    objective: when an override switches the objective, the new objective's paper defaults
    apply unless the overrides themselves set them (``resolve`` also says so in words).
    Raises ConfigError (one line) for any invalid value, key or combination."""
    return resolve(preset, overrides)[0]


def resolve(preset: str | None, overrides: list[str] = ()) -> tuple[RunConfig, str]:
    """``build_config`` plus one line saying which optimizer settings the run takes and from
    where (the objective's paper defaults, the preset, the command line)."""
    name = preset or DEFAULT_PRESET
    raw = preset_dict(name)
    overrides = list(overrides)
    given = {tuple(parse_override(o)[0]) for o in overrides}
    old = _objective_name(raw)
    new = _objective_name(apply_overrides(raw, overrides))
    dropped = []
    if new != old:                  # the preset's optimizer settings were tuned for `old`
        raw = copy.deepcopy(raw)
        if raw.pop("optim", None):
            dropped.append("optim")
        if isinstance(raw.get("train"), dict) and raw["train"].pop("d_steps", None) is not None:
            dropped.append("train.d_steps")
    cfg = validate(apply_overrides(raw, overrides))
    return cfg, _optim_note(cfg, Path(name).stem, raw, given, old, dropped)


def _objective_name(raw: dict[str, Any]) -> str:
    obj = raw.get("objective", RunConfig.model_fields["objective"].default_factory())
    return obj if isinstance(obj, str) else (obj.get("name") if isinstance(obj, dict) else "")


def _optim_note(cfg: RunConfig, preset: str, raw: dict[str, Any], given: set[tuple[str, ...]],
                old: str, dropped: list[str]) -> str:
    """'optimizer: D rmsprop lr 5e-05, G rmsprop lr 5e-05, n_critic 5 (wgan defaults; ...)'."""
    def source(*path: str) -> str:
        if any(g[:len(path)] == path or path[:len(g)] == g for g in given):
            return "command line"
        node: Any = raw
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return f"preset {preset}" if node is not None else f"{cfg.objective.name} defaults"

    parts = []
    for phase, o in cfg.optim.items():
        text = f"{phase} {o.name} lr {o.lr:g}"
        if o.name == "adam":
            text += f" betas ({o.betas[0]:g}, {o.betas[1]:g})"
        if o.schedule != "constant":
            text += f" {o.schedule} decay"
        parts.append(f"{text} [{source('optim', phase)}]")
    parts.append(f"k/n_critic {cfg.train.d_steps} [{source('train', 'd_steps')}]")
    line = "optimizer: " + ", ".join(parts)
    if dropped:
        line += (f"; the {preset} preset's {' and '.join(dropped)} (set for {old}) not used "
                 f"with {cfg.objective.name}")
    return line


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= flatten(v, key + ".")
        else:
            out[key] = v
    return out


# Keys that may differ when a run is resumed: its length (and the end of its schedules), where
# and how fast it runs, what it logs, and where its files are, not what they hold (a project
# moved to another folder resumes with --set data.path=...; objective.gan_run is read at the
# first step only).
RESUMABLE_CHANGES = ("train.steps", "train.schedule_steps", "train.device", "train.threads",
                     "train.flush_denormal", "log.", "eval.", "data.path", "data.root",
                     "objective.gan_run")


def incompatible_keys(old: RunConfig, new: RunConfig) -> list[str]:
    a, b = flatten(old.to_dict()), flatten(new.to_dict())
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return [k for k in diff if not _resumable(k)]


def _resumable(key: str) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in RESUMABLE_CHANGES)
