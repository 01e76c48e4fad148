"""A trained model as inference sees it: built from a run folder alone.

``gankit sample``, ``plot`` and ``eval`` (and ``gankit.api.sample`` / ``plot`` /
``evaluate``) need the networks, the objective's way of sampling, the EMA weights and the
step counters, never the optimizers or the training stream. :class:`Model` builds just that
from the run's config and the description of its data kept in the run folder
(``data-info.safetensors``: kind, shape, classes and their names, a translation run's fixed
examples; written when training starts), then loads a checkpoint's tensors onto any device.
So a run samples and plots wherever its folder now lives, on a machine without the device
it trained on, and after its training data moved, changed or were deleted.

The data themselves (:class:`RunData`) are built on first use, from the config, only by
what needs real data: metrics comparing with real images (FID, KID, precision/recall, the
classifier's real-data floors, held-out likelihoods) and the figures that show real data
(nearest training images, BEGAN's reconstructions of real images). When they cannot be
read, a metric stops with a one-line ``DataUnavailable`` and a figure is skipped with a
one-line note. Toy distributions are built in, so they are always there.

A run folder from before ``data-info.safetensors`` is described by building its data once
(as every command did before); the description is then written into the folder.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gankit.config import RunConfig
from gankit.core import capabilities as caps
from gankit.core.modes import eval_mode
from gankit.core.roles import build_nets
from gankit.core.step import Latent, PhaseOptions
from gankit.data.base import DataInfo, make_generator
from gankit.errors import CheckpointError, ConfigError, DataError, DataUnavailable, GankitError
from gankit.registry import DATASETS, NETWORKS, OBJECTIVES
from gankit.train import checkpoint as ckpt
from gankit.train import distributed
from gankit.train.optim import EMA

DATA_INFO = "data-info.safetensors"      # run folder: the DataInfo the run trained with


def resolve_device(name: str, what: str = "train.device") -> torch.device:
    """The torch device ``name`` names ("auto": CUDA, else MPS, else the CPU); GankitError
    (one line, naming the setting ``what``) for CUDA or MPS on a machine without it."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GankitError(f"{what}=cuda but no CUDA device is available")
    if name == "mps" and not mps_ok:
        raise GankitError(f"{what}=mps but no MPS (Apple GPU) device is available")
    return torch.device(name)


@dataclass
class Counters:
    step: int = 0                 # generator updates done
    images_seen: int = 0          # real images shown to the discriminator(s)
    bad_in_row: int = 0           # consecutive skipped updates (NaN/Inf)
    bad_total: int = 0
    lr_scale: float = 1.0         # reduced by divergence roll-backs
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StyleOptions:
    """How ``Sampling.sample`` draws from a style-based generator (``Sampling.styled``)."""

    psi: float | None = None           # truncation psi (None: none)
    mix_seed: int | None = None        # seed of the sources B of style mixing (None: none)
    mix_layers: str = "coarse"         # the styles taken from B


class Sampling:
    """Sampling and model state, shared by the trainer and a loaded :class:`Model`. Uses
    ``cfg``, ``nets``, ``ema``, ``objective``, ``device``, ``dist``, ``data.info``, ``c``,
    ``fixed_inputs``, ``_label`` and ``_sharded`` of the object it is mixed into."""

    _caption: Tensor | None = None        # token ids (length,) held fixed by fixed_caption
    _styles: StyleOptions | None = None          # set inside ``styled``

    def averages(self) -> dict[str, EMA]:
        """New EMA copies of the objective's ``ema_nets`` under ``train.ema_beta``, else none."""
        beta = self.cfg.train.ema_beta
        return {n: EMA(self.nets[n], beta) for n in self.objective.ema_nets()} if beta else {}

    def sampler(self, name: str | None = None) -> nn.Module:
        """The net that makes samples: its EMA copy when ``train.ema_beta`` keeps one."""
        name = name or self.objective.sample_nets[0]
        return self.ema[name].net if name in self.ema else self.nets[name]

    @contextlib.contextmanager
    def sampling_net(self, name: str | None = None):
        """The sampler net (``sampler``) in eval mode inside, without gradients (running
        statistics and tracked averages such as StyleGAN's w_avg stay as they are). When it
        is an EMA copy, the objective reads the other averaged nets' copies too (an averaged
        G's averaged caption encoder)."""
        name = name or self.objective.sample_nets[0]
        G = self.sampler(name)
        averaged = ({n: e.net for n, e in self.ema.items() if n != name}
                    if name in self.ema else {})
        with eval_mode(G), torch.no_grad(), self.objective.reading(averaged):
            yield G

    def generate(self, inputs: dict[str, Tensor], name: str | None = None) -> Tensor:
        """Samples (n, *data shape) on the device from ``inputs`` of
        ``objective.sample_inputs`` (noise, labels, codes), in eval mode, without gradients."""
        with self.sampling_net(name) as G:
            return self.objective.generate(inputs, G)

    def styles(self, inputs: dict[str, Tensor]) -> Tensor:
        """The styles w (n, num_ws, w_dim) the sampler gives ``inputs`` (capability
        "styles": ``objective.to_w``), in eval mode, without gradients."""
        with self.sampling_net() as G:
            return self.objective.to_w(inputs, G)

    def inputs(self, n: int, gen: torch.Generator,
               gen_b: torch.Generator | None = None) -> dict[str, Tensor]:
        """``objective.sample_inputs`` with what ``sample`` was asked to hold fixed, and the
        style options of ``styled`` (``gen_b``: the stream of the mixing sources B)."""
        inputs = self.objective.sample_inputs(n, gen)
        if self._label is not None:
            inputs["y"] = torch.full_like(inputs["y"], self._label)
        if self._caption is not None:
            inputs["tokens"] = self._caption.to(inputs["tokens"]).expand(n, -1).clone()
        st = self._styles
        if st is not None and st.mix_seed is not None:
            b = self.objective.sample_inputs(n, gen_b)
            inputs = self.objective.mixed(inputs, b, st.mix_layers)
        if st is not None and st.psi is not None:
            inputs = self.objective.truncated(inputs, st.psi)
        return inputs

    @contextlib.contextmanager
    def fixed_caption(self, caption: str | None):
        """Inside, ``sample`` draws images of ``caption`` only (capability "captions"; None:
        random captions). ConfigError (one line) when the model takes no captions, or for a
        word outside its vocabulary (the vocabulary is listed)."""
        if caption is not None:
            if caps.CAPTIONS not in self.objective.offers:
                raise ConfigError(f"--caption: the {self.cfg.objective.name} model does not "
                                  "draw images from captions")
            self._caption = self.data.info.encode(caption)
            warning = self.data.info.unlike_training(caption)
            if warning:
                from gankit.log import note
                note(warning)
        try:
            yield
        finally:
            self._caption = None

    @contextlib.contextmanager
    def styled(self, psi: float | None = None, mix_seed: int | None = None,
               mix_layers: str | None = None):
        """Inside, ``sample`` draws from a style-based generator (capability "styles") with
        the truncation trick w_avg + psi (w - w_avg) (Karras et al. 2019, section 4.1) and/or
        with the styles of ``mix_layers`` ("coarse", "middle", "fine" or "i-j"; None:
        "coarse") taken from the samples of seed ``mix_seed`` (style mixing, section 3.1).
        Nothing set: plain sampling. ConfigError (one line) when the model has no styles,
        ``psi`` is not a finite number, ``mix_layers`` comes without ``mix_seed``, or the
        layers are not valid."""
        if psi is None and mix_seed is None and mix_layers is None:
            yield
            return
        if caps.STYLES not in self.objective.offers:
            what = ("--truncation" if psi is not None
                    else "--mix-seed" if mix_seed is not None else "--mix-layers")
            raise ConfigError(f"{what}: the {self.cfg.objective.name} model has no style-based "
                              "generator (truncation and style mixing need objective stylegan)")
        if psi is not None and not math.isfinite(psi):
            raise ConfigError(f"--truncation must be a finite number, not {psi}")
        if mix_layers is not None and mix_seed is None:
            raise ConfigError(f"--mix-layers {mix_layers} chooses the styles taken from the "
                              "samples of --mix-seed; give --mix-seed too")
        mix_layers = "coarse" if mix_layers is None else mix_layers
        if mix_seed is not None:
            self.objective.style_layers(mix_layers)
        self._styles = StyleOptions(psi, mix_seed, mix_layers)
        try:
            yield
        finally:
            self._styles = None

    @contextlib.contextmanager
    def fixed_label(self, label: int | None):
        """Inside, ``sample`` draws class ``label`` only (capability "labels"; None: any).
        ConfigError (one line) when the model has no labels or ``label`` is out of range."""
        if label is not None:
            if caps.LABELS not in self.objective.offers:
                raise ConfigError(f"--label: the {self.cfg.objective.name} model does not draw "
                                  "class-conditional samples")
            k = self.data.info.num_classes
            if not 0 <= label < k:
                raise ConfigError(f"--label must be a class of 0..{k - 1}, not {label}")
        self._label = label
        try:
            yield
        finally:
            self._label = None

    @torch.no_grad()
    def sample(self, n: int, seed: int, batch: int = 1024) -> Tensor:
        """n samples (n, *data shape), float32 on the CPU (images in [-1, 1]), from a separate
        noise stream seeded by ``seed`` (the training stream is untouched).

        Inside ``sharded_sampling`` each rank generates its rows of every chunk and the chunks
        are gathered: the same samples as one process makes, in 1/W of the time."""
        gen = make_generator(seed, self.device)
        mixing = self._styles is not None and self._styles.mix_seed is not None
        gen_b = make_generator(self._styles.mix_seed, self.device) if mixing else None
        if self._sharded and self.dist.enabled:
            chunks = []
            for i in range(0, n, batch):
                m = min(batch, n - i)
                rows = self.dist.rows(m)
                inputs = self.inputs(m, gen, gen_b)                    # the same on every rank
                part = self.generate({k: v[rows] for k, v in inputs.items()})
                chunks.append(self.dist.gather_rows(part, m))
            return torch.cat(chunks).float().cpu()
        chunks = [self.generate(self.inputs(min(batch, n - i), gen, gen_b))
                  for i in range(0, n, batch)]
        return torch.cat(chunks).float().cpu()

    @contextlib.contextmanager
    def sharded_sampling(self):
        """Let ``sample`` split its work over the ranks (a collective: every rank must enter,
        as the evaluation callbacks do). Rank 0's batch-norm statistics go to every rank first,
        so that all ranks sample the same model."""
        if self.dist.enabled:
            self.dist.broadcast_module(self.nets, buffers_only=True)
            for e in self.ema.values():
                self.dist.broadcast_module(e.net, buffers_only=True)
        self._sharded = True
        try:
            yield
        finally:
            self._sharded = False

    def fingerprint(self) -> dict[str, Any]:
        return {"objective": self.cfg.objective.name,
                "nets": {n: [[k, list(v.shape)] for k, v in net.state_dict().items()]
                         for n, net in self.nets.items()}}

    def load_model_state(self, state: dict[str, Any], use: str = "used") -> None:
        """Restore what sampling needs from a checkpoint's ``state``: networks, EMA copies,
        the objective's state, the fixed sample inputs and the counters, onto this model's
        device (checkpoint tensors live on the CPU: they load on any device).
        CheckpointError when it was made by another objective or network architecture."""
        if state["fingerprint"] != self.fingerprint():
            theirs = state["fingerprint"]
            what = ("objective" if theirs["objective"] != self.cfg.objective.name
                    else "network architecture")
            raise CheckpointError(f"checkpoint was made with a different {what}; "
                                  f"it cannot be {use} with this config")
        for n, net in self.nets.items():
            net.load_state_dict(state["nets"][n])
        for n, e in self.ema.items():
            if n in state["ema"]:
                e.net.load_state_dict(state["ema"][n])
            else:   # averaged since (an older gankit, or train.ema_beta set on resume)
                from gankit.log import note
                e.net.load_state_dict(self.nets[n].state_dict())
                note(f"the checkpoint has no average of {n}: it starts from the trained {n}")
        self.objective.load_state_dict(state["objective"])
        self.fixed_inputs = {k: v.to(self.device) for k, v in state["fixed"].items()}
        self.c = Counters(**state["counters"])


class Model(Sampling):
    """A run's networks and objective for inference, on ``device``: no optimizers, no
    training stream; ``data`` holds ``info`` (and builds the real data when asked, see
    :class:`RunData`). Views and metrics take it where they take a trainer.

    Raises ConfigError when the network family cannot build a role the objective asks for."""

    def __init__(self, cfg: RunConfig, data: "RunData", device: torch.device):
        self.cfg, self.data, self.device = cfg, data, device
        self.dist = distributed.SINGLE
        info = data.info
        obj_cls = OBJECTIVES.get(cfg.objective.name)
        latent = Latent.of_model(cfg.model)
        roles = obj_cls.roles(cfg.objective, info, latent)
        self.nets = nn.ModuleDict(build_nets(NETWORKS.get(cfg.model.name), cfg.model, info,
                                             roles)).to(device)
        options = PhaseOptions(d_steps=cfg.train.d_steps, reuse_fakes=cfg.train.reuse_fakes)
        self.objective = obj_cls(cfg.objective, dict(self.nets.items()), latent, info, options)
        self.ema = self.averages()
        self.fixed_inputs: dict[str, Tensor] = {}
        self.c = Counters()
        self._label: int | None = None
        self._sharded = False


class RunData:
    """A run's data as inference sees them: ``info`` kept with the run; anything else
    (``sample``, ``heldout``, a toy's ``bounds`` or ``pdf``, ``len``) builds the data source
    from the run's config on first use. DataUnavailable (a DataError, one line) when it
    cannot be read, saying that real data were needed; ``source`` hands over an already
    built one."""

    def __init__(self, cfg: RunConfig, info: DataInfo, device: torch.device,
                 source: Any = None) -> None:
        self.cfg, self.info, self.device = cfg, info, device
        self._built = source

    def source(self) -> Any:
        """The data source, built on the first call (DataUnavailable when it cannot be)."""
        if self._built is None:
            self._built = build_source(self.cfg, self.device, "needs the run's training data")
        return self._built

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.source(), name)

    def __len__(self) -> int:
        return len(self.source())


def build_source(cfg: RunConfig, device: torch.device, why: str) -> Any:
    """The run's data source, built from its config (warnings about skipped files were
    shown when it trained); DataUnavailable '{why}: ...' when it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return DATASETS.get(cfg.data.name).build(cfg.data, seed=cfg.seed, device=device)
    except (GankitError, OSError) as e:
        detail = " ".join(str(e).split())
        raise DataUnavailable(f"{why} ({cfg.data.name}), which cannot be read: {detail}") \
            from None


def load_run_model(run_path: Path | str, device: str = "auto",
                   state: dict[str, Any] | None = None) -> tuple[Any, Model]:
    """(RunDir, Model) of the run in ``run_path`` on ``device`` ("auto": CUDA, else MPS,
    else CPU), from ``state`` (a checkpoint's contents) or its newest intact checkpoint.
    GankitError when the folder is not a run or the device is missing; CheckpointError
    when it has no (fitting) checkpoint (``gankit.api.load_model`` is the public face)."""
    from gankit.log import note
    from gankit.run import RunDir

    run = RunDir.open(run_path)
    cfg = run.read_config()
    where = resolve_device(device, "--device")
    if state is None:
        if not ckpt.list_checkpoints(run.checkpoints):
            raise CheckpointError(f"{run_path} has no checkpoint in {run.checkpoints}: it "
                                  "stopped before its first, or they were removed")
        _, state, skipped = ckpt.newest_intact(run.checkpoints)
        for msg in skipped:
            note(f"skipped {msg}")
    model = Model(cfg, run_data(run.path, cfg, where), where)
    model.load_model_state(state)
    return run, model


# ---------------------------------------------------------------- the data's description
def save_data_info(run_path: Path, info: DataInfo) -> None:
    """Keep ``info`` in the run folder (``DATA_INFO``: safetensors, no pickle)."""
    ckpt.save_checkpoint(Path(run_path) / DATA_INFO, {"data_info": info.to_state()})


def load_data_info(run_path: Path) -> DataInfo | None:
    """The DataInfo kept in the run folder; None when it has none (an older run).
    CheckpointError when the file is damaged."""
    path = Path(run_path) / DATA_INFO
    if not path.exists():
        return None
    try:
        return DataInfo.from_state(ckpt.load_checkpoint(path)["data_info"])
    except (KeyError, TypeError, DataError) as e:
        raise CheckpointError(f"{path} does not describe the run's data ({e})") from None


def run_data(run_path: Path, cfg: RunConfig, device: torch.device) -> RunData:
    """The data of the run in ``run_path`` for inference: its kept description, or for an
    older run folder the data built once (DataUnavailable when they cannot be) and their
    description written into the folder (skipped if it is read-only)."""
    DATASETS.get(cfg.data.name)                   # imports its DataInfo subclass, if any
    info = load_data_info(run_path)
    if info is not None:
        return RunData(cfg, info, device)
    source = build_source(cfg, device, f"{run_path} has no {DATA_INFO} (it was trained by an "
                          "older gankit), so its data are needed once to describe them")
    with contextlib.suppress(GankitError):
        save_data_info(run_path, source.info)
    return RunData(cfg, source.info, device, source)
