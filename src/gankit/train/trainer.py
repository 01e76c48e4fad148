"""The trainer: owns optimizers, schedules, AMP, EMA, NaN guard and checkpoints for every
objective. Objectives only return losses (see ``gankit.objectives.base``)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from gankit.config import RunConfig, incompatible_keys
from gankit.core.roles import Role, build_nets, check_batch
from gankit.core.step import FunctionalNet, Latent, Phase, PhaseOptions, StepContext
from gankit.data.base import make_generator
from gankit.errors import ConfigError, GankitError
from gankit.registry import DATASETS, NETWORKS, OBJECTIVES
from gankit.train import checkpoint as ckpt
from gankit.train import distributed
from gankit.train.model import Counters, Sampling, resolve_device
from gankit.train.optim import build_optimizer, lr_factor


class TrainingDiverged(GankitError):
    """Losses or gradients kept being NaN/Inf."""


def channels_last(x: Any) -> Any:
    """Image batches (4-D tensors) in the NHWC layout ``train.channels_last`` asks for."""
    if isinstance(x, Tensor) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def flushing_denormals() -> bool:
    """Whether this thread now reads and writes subnormal floats as zero (torch has a setter
    for the switch, ``torch.set_flush_denormal``, but no getter: a subnormal times one tells).
    The setter is on / off only: a thread that flushed outputs but not inputs comes back
    flushing both."""
    tiny = torch.tensor([1e-40], dtype=torch.float32, device="cpu")  # subnormal in fp32
    return (tiny * 1.0).item() == 0.0


@contextlib.contextmanager
def flush_to_zero():
    """Subnormal floats read and written as zero on this thread inside the block, and the
    switch as it was after it (``torch.set_flush_denormal`` is a per-thread switch that
    otherwise outlives the block; a caller that had turned it on keeps it on)."""
    before = flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


class Trainer(Sampling):
    """Trains one run: builds data, networks (from the objective's roles) and optimizers (one
    per phase), then runs steps; owns backward, AMP, gradient averaging, clipping, the NaN
    guard, EMA and checkpoints for every objective.

    ``cfg`` is a validated ``RunConfig``; ``ckpt_dir`` the folder for checkpoints (None: no
    ``save``). Raises ConfigError when the network family cannot build a role the objective
    asks for, DataError when the data cannot be read, GankitError for a missing device.
    """

    def __init__(self, cfg: RunConfig, ckpt_dir: Path | None = None):
        self.cfg = cfg
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir else None
        # Data parallel (torchrun): this rank's device; batch_size is global, split over ranks.
        self.dist, self.device = distributed.setup(resolve_device(cfg.train.device))
        self.local_batch = distributed.local_batch_size(cfg.train.batch_size, self.dist.world)
        if cfg.train.threads and self.device.type == "cpu":
            torch.set_num_threads(cfg.train.threads)
        self.flush_denormal = cfg.train.flush_denormal and self.device.type == "cpu"
        torch.manual_seed(cfg.seed)                       # network initialisation
        self.data = DATASETS.get(cfg.data.name).build(cfg.data, seed=cfg.seed, device=self.device)
        info = self.data.info
        obj_cls = OBJECTIVES.get(cfg.objective.name)
        latent = Latent.of_model(cfg.model)
        self.roles: dict[str, Role] = obj_cls.roles(cfg.objective, info, latent)
        family = NETWORKS.get(cfg.model.name)
        check_batch(family, cfg.model, info, self.roles, self.local_batch,
                    f"train.batch_size={cfg.train.batch_size} ({self.local_batch} per process)")
        nets = build_nets(family, cfg.model, info, self.roles)
        self.nets = nn.ModuleDict(nets).to(self.device)
        self._prepare_nets(self.roles)
        self.amp_on = cfg.train.amp != "off" and self.device.type == "cuda"
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.train.amp)
        self.optims: dict[str, torch.optim.Optimizer] = {}
        self._set_game(cfg, fresh_optimizers=True)    # objective, phases, optimizers, scalers
        self.ema = self.averages()
        self.rng = make_generator(cfg.seed + 1, self.device)          # noise for training
        # (ranks > 0 reseed it every step: see _seed_rank)
        self.fixed_inputs = self.objective.sample_inputs(             # noise for sample grids
            cfg.log.n_fixed, make_generator(cfg.seed + 2, self.device))
        self.c = Counters()
        self.stop_reason: str | None = None
        self.early_stop: str | None = None
        self._step_bad: str | None = None       # what went bad in the current step
        self._sums: dict[str, list] = {}
        self._sharded = False
        self._label: int | None = None             # fixed_label
        # Polled between steps when set (``poll(trainer)``): pauses, single phases and live
        # changes of the game (gankit.live). None costs one comparison a step.
        self.control: Any = None

    def _set_game(self, cfg: RunConfig, fresh_optimizers: bool) -> None:
        """The objective of ``cfg`` over the built networks, its phases, and one optimizer
        (and AMP scaler) per phase: new ones when ``fresh_optimizers``, else the kept ones
        (their state and parameters), which then read the learning rate from ``cfg``."""
        obj_cls = OBJECTIVES.get(cfg.objective.name)
        options = PhaseOptions(d_steps=cfg.train.d_steps, reuse_fakes=cfg.train.reuse_fakes)
        self.objective = obj_cls(cfg.objective, self.train_nets, Latent.of_model(cfg.model),
                                 self.data.info, options)
        self.phases: tuple[Phase, ...] = obj_cls.phases(cfg.objective, options)
        self._trains = {n: ph.name for ph in self.phases for n in ph.players}   # net -> phase
        if fresh_optimizers:
            self.optims = {ph.name: build_optimizer(cfg.optim[ph.name], self._params(ph.players))
                           for ph in self.phases}
            fp16 = self.amp_on and cfg.train.amp == "fp16"
            self.scalers = {ph.name: torch.amp.GradScaler(self.device.type, enabled=fp16)
                            for ph in self.phases}
        self.cfg = cfg

    # Keys ``reconfigure`` may change: the game and how it is optimised, not data or networks.
    GAME_KEYS = ("objective.", "optim.", "train.d_steps")

    def reconfigure(self, cfg: RunConfig) -> None:
        """Continue training, from the next step, under ``cfg``: a validated config
        (``gankit.config.validate``) of this run in which only the objective, ``optim.*`` and
        ``train.d_steps`` differ (the live view changes them between steps).

        A change of objective, or of an optimizer setting other than its learning-rate
        schedule, gets fresh optimizers: Adam's and RMSprop's moment estimates belong to the
        old loss's gradients (another game has gradients of another scale), and a new
        optimizer's first updates are bounded by its learning rate. A new k or learning rate
        keeps the optimizers' state. The objective's own state (e.g. BEGAN's k_t) is kept
        when the objective stays the same. ConfigError (one line) when other keys differ or
        the new objective needs networks of other shapes than the run's."""
        other = [k for k in incompatible_keys(self.cfg, cfg) if not k.startswith(self.GAME_KEYS)]
        if other:
            raise ConfigError(f"only the objective, optim.* and train.d_steps can change while "
                              f"training; not {', '.join(other[:4])}")
        self.roles = self.game_roles(cfg)
        same_game = cfg.objective == self.cfg.objective
        state = self.objective.state_dict() if same_game else None
        fresh = not same_game or _optimizers(self.cfg) != _optimizers(cfg)
        self._set_game(cfg, fresh_optimizers=fresh)
        if state is not None:
            self.objective.load_state_dict(state)

    def game_roles(self, cfg: RunConfig) -> dict[str, Role]:
        """The roles of ``cfg``'s objective. ConfigError unless they ask for networks of
        exactly the run's names and parameter shapes (built on the side, under a forked RNG:
        training's random streams are untouched) that ``train.compile`` treats alike."""
        obj_cls = OBJECTIVES.get(cfg.objective.name)
        roles = obj_cls.roles(cfg.objective, self.data.info, Latent.of_model(cfg.model))
        with torch.random.fork_rng(devices=[]):
            probe = build_nets(NETWORKS.get(cfg.model.name), cfg.model, self.data.info, roles)
        if _shapes(probe) != _shapes(self.nets):
            raise ConfigError(f"the {cfg.objective.name} objective needs other networks than "
                              f"this run's {self.cfg.objective.name} model")
        if self.cfg.train.compile and any(roles[n].may_compile != self.roles[n].may_compile
                                          for n in roles):
            raise ConfigError(f"the {cfg.objective.name} objective cannot take over "
                              "compiled networks (train.compile)")
        return roles

    def _prepare_nets(self, roles: dict[str, Role]) -> None:
        """Sync BN, channels_last, equal start on every rank, and ``self.train_nets``: what the
        objective calls (compiled when asked). ``self.nets`` stays the plain modules, which
        checkpoints, fingerprints, EMA, sampling and optimizers use."""
        train = self.cfg.train
        self.nets = distributed.sync_batchnorm(self.nets, train.sync_bn, self.dist, self.device)
        if train.channels_last:
            self.nets.to(memory_format=torch.channels_last)   # only 4-D weights change layout
        self.dist.broadcast_module(self.nets)
        self.train_nets = dict(self.nets.items())
        if train.compile:
            for name, role in roles.items():
                if name in self.train_nets and role.may_compile:   # roles say it explicitly
                    self.train_nets[name] = torch.compile(self.nets[name])

    # ------------------------------------------------------------------ one step
    def _params(self, names: tuple[str, ...]) -> list[nn.Parameter]:
        return [p for n in names for p in self.nets[n].parameters()]

    def _autocast(self):
        if not self.amp_on:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self) -> None:
        """One generator iteration: every phase, each ``repeats`` times (Algorithm 1), then
        the objective's ``end_step``; all of them share one ``StepContext``."""
        with self._step_arithmetic():
            self._seed_rank()
            ctx = self.step_context()
            for phase in self.phases:
                for _ in range(phase.repeats):
                    self._phase_step(phase, ctx)
            ctx.phase, ctx.batch = "", {}
            self.objective.end_step(ctx)
            self._count_bad_step()
            self.c.step += 1
            for name, ema in self.ema.items():
                ema.update(self.nets[name])

    def _step_arithmetic(self):
        """``train.flush_denormal``: flush-to-zero for one step, else nothing."""
        return flush_to_zero() if self.flush_denormal else contextlib.nullcontext()

    def phase_update(self, name: str) -> None:
        """One update of phase ``name`` (one of the k D steps, or the G step) on its own, in a
        fresh step context, between two steps (the live view's single steps): the objective's
        ``end_step``, the step counter and the EMA are left alone. A non-finite update is
        skipped and counted in ``bad_total``; the divergence guard judges whole steps only.
        GankitError for a phase the objective does not have."""
        phase = next((p for p in self.phases if p.name == name), None)
        if phase is None:
            raise GankitError(f"the {self.cfg.objective.name} objective has no phase {name!r}; "
                              f"its phases: {', '.join(p.name for p in self.phases)}")
        self._seed_rank()
        self._phase_step(phase)
        self._step_bad = None

    def _seed_rank(self) -> None:
        """Ranks > 0 draw their noise (and torch's global RNG) from (seed, rank, step): distinct
        from every other rank and nothing a checkpoint must keep. Rank 0 keeps the continuous
        single-process stream."""
        if self.dist.rank:
            rank, step = self.dist.rank, self.c.step
            self.rng.manual_seed(distributed.step_seed(self.cfg.seed + 1, rank, step))
            torch.manual_seed(distributed.step_seed(self.cfg.seed, rank, step))

    # ------------------------------------------------------------------ step context
    def step_context(self) -> StepContext:
        """A fresh context for one step (empty scratch, no real batch drawn yet)."""
        return StepContext(step=self.c.step, local_batch=self.local_batch, rng=self.rng,
                           device=self.device, _draw_real=self.draw_real,
                           _mean=self.dist.mean if self.dist.enabled else None,
                           _functional=self.functional)

    def draw_real(self) -> dict[str, Tensor]:
        """This rank's rows of the next global real batch (all of it for one process)."""
        batch = self.dist.shard_batch(self.data, self.cfg.train.batch_size)
        self.c.images_seen += self.cfg.train.batch_size
        if self.cfg.train.channels_last:
            batch = {k: channels_last(v) for k, v in batch.items()}
        return batch

    def _phase_batch(self, phase: Phase, ctx: StepContext) -> dict[str, Tensor]:
        if phase.real == "none":
            return {}
        return self.draw_real() if phase.real == "fresh" else ctx.shared_batch()

    def lr(self, phase: str) -> float:
        """The learning rate of ``phase`` at the current step (schedule, ending at
        ``train.schedule_end``, and roll-backs)."""
        cfg = self.cfg.optim[phase]
        return cfg.lr * self.c.lr_scale * lr_factor(cfg, self.c.step,
                                                    self.cfg.train.schedule_end)

    def functional(self, net: str) -> FunctionalNet:
        """A differentiable copy of ``net`` under its phase's optimizer rule (StepContext)."""
        if net not in self._trains:
            raise GankitError(f"no phase trains a network {net!r}; "
                              f"trained nets: {', '.join(sorted(self._trains))}")
        phase = self._trains[net]
        return FunctionalNet(self.nets[net], self.optims[phase], self.cfg.optim[phase],
                             self.lr(phase))

    # ------------------------------------------------------------------ one phase
    def _phase_step(self, phase: Phase, ctx: StepContext | None = None) -> None:
        ctx = ctx or self.step_context()
        for name, net in self.nets.items():          # only the players accumulate gradients
            net.requires_grad_(name in phase.players or name in phase.keeps_graph)
        opt, scaler = self.optims[phase.name], self.scalers[phase.name]
        cfg = self.cfg.optim[phase.name]
        for group in opt.param_groups:
            group["lr"] = self.lr(phase.name)
        ctx.phase, ctx.batch = phase.name, self._phase_batch(phase, ctx)
        opt.zero_grad(set_to_none=True)
        with self._autocast():
            loss, scalars = self.objective.loss(phase.name, ctx)
        bad = self._check("loss/" + phase.name, self._backward(loss, scaler, phase))
        if not bad:
            scaler.unscale_(opt)
            clip = cfg.grad_clip or float("inf")
            norm = torch.nn.utils.clip_grad_norm_(self._params(phase.players), clip)
            bad = self._check(f"grad_norm/{phase.name}", norm, scaler.is_enabled())
            scalars[f"grad_norm/{phase.name}"] = norm.detach()
        if bad:
            opt.zero_grad(set_to_none=True)
            if scaler.is_enabled():
                scaler.update()
            return
        scaler.step(opt)
        scaler.update()
        self.objective.post_step(phase.name)
        self._accumulate(scalars)

    def _backward(self, loss: Tensor, scaler: torch.amp.GradScaler, phase: Phase) -> Tensor:
        """Backward when the loss is finite; with several ranks, then the gradient average.
        Returns what the NaN guard checks: the loss, or NaN on every rank when some rank's loss
        was not finite (all ranks must skip the same updates)."""
        ok = bool(torch.isfinite(loss).all())
        if self.cfg.train.sync_bn and self.dist.enabled:   # synced statistics hold collectives
            ok = not self.dist.any(not ok)                 # in backward: every rank or none
        if ok:
            try:
                scaler.scale(loss).backward()
            except RuntimeError as e:
                if self.cfg.train.compile and "double backward" in str(e):
                    raise GankitError(f"train.compile: torch.compile cannot differentiate twice, "
                                      f"as the {phase.name} loss (a gradient penalty) needs; "
                                      "set train.compile=false") from None
                raise
        if self.dist.enabled and not self.dist.average_gradients(self._params(phase.players), ok):
            return torch.full_like(loss.detach(), float("nan"))
        return loss

    def _check(self, what: str, value: Tensor, scaled: bool = False) -> bool:
        """NaN/Inf guard for one update; fp16 overflows are the scaler's business."""
        if bool(torch.isfinite(value).all()):
            return False
        if not scaled:
            self.c.bad_total += 1
            self._step_bad = f"{what} was {value.item()} at step {self.c.step}"
        return True

    def _count_bad_step(self) -> None:
        """A step with any skipped update counts as bad; ``max_bad_steps`` in a row stop or
        roll back the run (``nan_policy``)."""
        if self._step_bad is None:
            self.c.bad_in_row = 0
            return
        self.c.bad_in_row += 1
        self.c.extra["last_bad"], self._step_bad = self._step_bad, None
        if self.cfg.train.nan_policy != "skip" and self.c.bad_in_row >= self.cfg.train.max_bad_steps:
            self._diverged()

    def _diverged(self) -> None:
        msg = f"training diverged: {self.c.extra['last_bad']} ({self.c.bad_in_row} bad steps in a row)"
        if self.cfg.train.nan_policy == "rollback" and self.ckpt_dir and ckpt.list_checkpoints(self.ckpt_dir):
            scale = self.c.lr_scale * self.cfg.train.rollback_lr_factor
            bad_total = self.c.bad_total
            self.load(ckpt.newest_intact(self.ckpt_dir)[1])
            self.c.lr_scale, self.c.bad_total, self.c.bad_in_row = scale, bad_total, 0
            self._step_bad = None
            self.c.extra["rollbacks"] = self.c.extra.get("rollbacks", 0) + 1
            raise RolledBack(msg)
        raise TrainingDiverged(msg)

    def _accumulate(self, scalars: dict[str, Tensor]) -> None:
        for k, v in scalars.items():
            s = self._sums.setdefault(k, [0.0, 0])
            s[0] = s[0] + v.detach().float()
            s[1] += 1

    def pop_scalars(self) -> dict[str, float]:
        """Means of the logged scalars since the last call (one sync for all of them). With
        several ranks they are also averaged over the ranks, so every rank must call this."""
        if self.dist.enabled:
            keys = [k for k, (_, n) in self._sums.items() if n]
            means = [self._sums[k][0] / self._sums[k][1] for k in keys]
            self._sums.clear()
            return dict(zip(keys, self.dist.mean(torch.stack(means)).tolist())) if keys else {}
        out = {k: (s / n).item() for k, (s, n) in self._sums.items() if n}
        self._sums.clear()
        return out

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """Everything an exact resume needs (nets, EMA, optimizers, scalers, objective and
        data state, RNG states, counters, config), as tensors and JSON-able values."""
        rng = {"torch": torch.get_rng_state(), "noise": self.rng.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "counters": {k: v for k, v in vars(self.c).items()},
            "config": self.cfg.to_dict(),
            "fingerprint": self.fingerprint(),
            "nets": {n: net.state_dict() for n, net in self.nets.items()},
            "ema": {n: e.net.state_dict() for n, e in self.ema.items()},
            "optim": {n: o.state_dict() for n, o in self.optims.items()},
            "scalers": {n: s.state_dict() for n, s in self.scalers.items() if s.is_enabled()},
            "objective": self.objective.state_dict(),
            "data": self.data.state_dict(),
            "rng": rng,
            "fixed": self.fixed_inputs,
        }

    def load(self, state: dict[str, Any]) -> None:
        """Restore ``state()``; CheckpointError if it was made by another objective or
        network architecture."""
        self.load_model_state(state, "resumed")
        for n, o in self.optims.items():
            o.load_state_dict(state["optim"][n])
        for n, s in state.get("scalers", {}).items():
            self.scalers[n].load_state_dict(s)
        self.data.load_state_dict(state["data"])
        torch.set_rng_state(state["rng"]["torch"])
        self.rng.set_state(state["rng"]["noise"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def save(self) -> Path:
        """Write ``checkpoints/ckpt-<step>.safetensors`` atomically (rank 0) and prune old
        ones; returns its path. GankitError without a checkpoint folder."""
        if self.ckpt_dir is None:
            raise GankitError("this trainer has no checkpoint folder")
        path = ckpt.checkpoint_path(self.ckpt_dir, self.c.step)
        if self.dist.is_main:        # the ranks hold the same weights; rank 0 writes them
            ckpt.save_checkpoint(path, self.state())
            ckpt.prune(self.ckpt_dir, self.cfg.log.keep_ckpts, protect=(path,))
        return path

    # ------------------------------------------------------------------ loop
    def fit(self, callbacks: list["Callback"] = (), until: int | None = None) -> bool:
        """Train to ``until`` (default: train.steps). Returns False when stopped early by
        ``request_stop`` (e.g. SIGINT), after saving a checkpoint at a step boundary. Before
        every step, ``self.control.poll(self)`` when a control is set (the live view: it may
        hold the step, run single phase updates or ``reconfigure``)."""
        until = self.cfg.train.steps if until is None else until
        if self.dist.enabled:     # ranks > 0 run only the callbacks that take part in collectives
            callbacks = [cb for cb in callbacks
                         if self.dist.is_main or getattr(cb, "all_ranks", False)]
        for cb in callbacks:
            cb.on_start(self)
        while self.c.step < until:
            if self.control is not None:      # the live view: may pause or change the game
                self.control.poll(self)
            self._agree_on_stops()
            if self.early_stop is not None:
                break
            if self.stop_reason:
                if self.ckpt_dir:
                    self.save()
                return False
            try:
                self.train_step()
            except RolledBack:
                for cb in callbacks:
                    cb.on_rollback(self)
                continue
            for cb in callbacks:
                cb.on_step(self)
        self._end(callbacks)
        return True

    def _end(self, callbacks) -> None:
        """Every callback's ``on_end`` runs even if one fails (a failing final evaluation must
        not cost the final checkpoint or the figures); the first error is raised after."""
        error = None
        for cb in callbacks:
            try:
                cb.on_end(self)
            except GankitError as e:
                error = error or e
        if error is not None:
            raise error

    def stop_early(self, reason: str) -> None:
        """End ``fit`` normally after the current step (e.g. the metric stopped improving):
        final callbacks run and ``fit`` returns True."""
        self.early_stop = reason
        self.c.extra["early_stop"] = reason

    def request_stop(self, reason: str) -> None:
        """Finish the current step, checkpoint, and return from ``fit`` (signal-safe)."""
        self.stop_reason = reason

    def _agree_on_stops(self) -> None:
        """With several ranks, a stop request (signal) or early stop (evaluation) made on any
        rank holds on all of them, so they leave the loop together (one all-reduce a step)."""
        if not self.dist.enabled:
            return
        stop, early = self.dist.any_each([self.stop_reason is not None,
                                          self.early_stop is not None])
        if stop:
            self.stop_reason = self.stop_reason or "a stop request to another rank"
        if early:
            self.early_stop = self.early_stop or "early stop on another rank"


class RolledBack(Exception):
    """Internal: the divergence guard restored the last checkpoint."""


class Callback:
    """Periodic work around training; override what you need.

    With several processes, callbacks run on rank 0 only, except those that set ``all_ranks``
    because they take part in collectives (``pop_scalars``, ``sharded_sampling``); those must
    leave writing files to rank 0 (``trainer.dist.is_main``)."""

    all_ranks: bool = False

    def on_start(self, trainer: Trainer) -> None: ...
    def on_step(self, trainer: Trainer) -> None: ...
    def on_end(self, trainer: Trainer) -> None: ...
    def on_rollback(self, trainer: Trainer) -> None: ...


def _shapes(nets) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """{net: [(parameter or buffer name, shape), ...]}: what a network's weights must fit."""
    return {n: [(k, tuple(v.shape)) for k, v in m.state_dict().items()] for n, m in nets.items()}


def _optimizers(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """Each phase's optimizer settings but its learning rate and schedule: what its state
    depends on (``Trainer.reconfigure`` keeps optimizers whose settings these are)."""
    rate = {"lr", "schedule", "decay_start", "warmup_steps", "min_lr"}
    return {n: o.model_dump(exclude=rate) for n, o in cfg.optim.items()}


def every(step: int, n: int) -> bool:
    return n > 0 and step % n == 0


ScalarFn = Callable[[Trainer], dict[str, float]]
