"""Data-parallel training over several processes: process group, sharding, gradient sync.

Launch with ``gankit train ... --nproc N`` (which re-runs the same command under
``torch.distributed.run``) or with ``torchrun --nproc-per-node N -m gankit train ...``. The
backend is NCCL when training on CUDA and gloo otherwise. Without torchrun's environment
(``WORLD_SIZE`` unset or 1) every helper here is a no-op and training is exactly the
single-process code path.

What is global and what is per rank (W ranks, rank r):

* ``train.batch_size`` is the **global** batch: every rank computes its losses on
  batch_size / W samples; sizes W does not divide are refused.
* **Real data**: every rank advances the same data stream by the global batch and keeps its
  rows [r*b, (r+1)*b) of it (``shard_batch``). The data state is therefore the same on every
  rank and independent of W: a checkpoint resumes with any number of ranks, and W ranks see
  exactly the real samples one process sees with the same global batch. Image caches do this
  without materialising the other ranks' rows (``ImageTensorSource.next_batch(n, rows=)``).
* **Noise**: rank 0 draws from the single-process noise stream (so a 1-process run is
  unchanged); rank r > 0 reseeds its noise generator (and torch's global RNG) at every step
  from (seed, r, step). Every draw an objective makes (z, labels, GP interpolation weights) is
  thus independent across ranks, and ranks > 0 have no state for a checkpoint to keep.
* **Gradients**: after each phase's backward the players' gradients are averaged over the ranks
  by one all-reduce of a flat buffer, as stylegan2-ada-pytorch's training loop does, instead of
  wrapping the nets in ``DistributedDataParallel``. DDP does handle the gradient penalty's double
  backward here (plain and ``find_unused_parameters`` modes; ``static_graph`` fails), but a phase
  step must also agree across ranks on whether the update is skipped (the NaN guard): with DDP a
  rank that skips ``backward()`` leaves the others waiting in the reducer, so agreement would
  cost one more collective per phase. The flat buffer carries that flag for free, objectives keep
  calling the plain modules (checkpoints, fingerprints, EMA and ``torch.compile`` see no
  wrapper), and frozen non-players need no ``find_unused_parameters``. The price is no overlap
  of communication with the backward pass, which matters only for large nets on many GPUs.
* **Batch norm**: ``train.sync_bn`` converts batch norm to ``nn.SyncBatchNorm`` (statistics over
  the global batch; modules with statistics of their own that offer ``sync_stats``, such as the
  slot generator's ``SlotNorm``, sync too). torch implements SyncBatchNorm for GPUs only, so
  it is refused on CPU ranks. Without it
  each rank normalises its own shard and keeps its own running statistics; rank 0's are saved,
  and they are broadcast before sharded sampling so every rank samples the same model.
* **Writing**: rank 0 alone writes logs, samples, plots and checkpoints (callbacks run on rank 0
  unless they set ``all_ranks``); logged scalars are averaged over the ranks; metric evaluation
  splits sample generation over the ranks and gathers the samples.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from gankit.errors import ConfigError, GankitError


def _dist():
    """``torch.distributed``, imported when first needed."""
    import torch.distributed as dist
    return dist


def env_world_size() -> int:
    """Number of ranks torchrun started (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_batch_size(batch_size: int, world: int) -> int:
    """Each rank's share of the global ``train.batch_size``."""
    if batch_size % world:
        raise ConfigError(f"train.batch_size={batch_size} is the global batch and must be "
                          f"divisible by the number of processes ({world})")
    return batch_size // world


def step_seed(seed: int, rank: int, step: int) -> int:
    """A seed for rank ``rank`` at ``step``, well mixed (SeedSequence), below 2**63."""
    state = np.random.SeedSequence([int(seed), int(rank), int(step)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31 | int(state[1]) >> 1) & (2**63 - 1)


def rank_rows(rank: int, world: int, n: int) -> slice:
    """Rows of a global batch of ``n`` that belong to ``rank`` (sizes differ by at most one)."""
    return slice(rank * n // world, (rank + 1) * n // world)


@dataclass
class Dist:
    """This process's place in the process group; every method is a no-op for one rank."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    comm_device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _rows_arg: dict[type, bool] = field(default_factory=dict, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def rows(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n``."""
        return rank_rows(self.rank, self.world, n)

    # ---- data ---------------------------------------------------------------------------
    def shard_batch(self, source: Any, n: int) -> dict[str, Tensor]:
        """This rank's part of the next global batch of ``n`` from ``source``."""
        if self.world == 1:
            return source.next_batch(n)
        rows = self.rows(n)
        kind = type(source)
        if kind not in self._rows_arg:
            self._rows_arg[kind] = "rows" in inspect.signature(source.next_batch).parameters
        if self._rows_arg[kind]:
            return source.next_batch(n, rows=rows)
        return {k: v[rows] if isinstance(v, Tensor) and v.dim() and v.shape[0] == n else v
                for k, v in source.next_batch(n).items()}

    # ---- collectives --------------------------------------------------------------------
    def barrier(self) -> None:
        if self.world > 1:
            _dist().barrier()

    def average_gradients(self, params: list[nn.Parameter], ok: bool) -> bool:
        """Replace each gradient by its mean over the ranks (one all-reduce); returns whether
        every rank's loss was finite. ``ok`` is this rank's answer; a rank whose loss was bad
        skipped ``backward()`` and contributes zeros. A gradient that no rank computed stays
        ``None`` (optimizers skip such parameters, as in a single process)."""
        if self.world == 1:
            return ok
        dist = _dist()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flags = torch.tensor([float(p.grad is not None) for p in params] + [float(not ok)],
                             device=self.comm_device)
        flat = torch.cat([g.detach().reshape(-1).float().to(self.comm_device) for g in grads]
                         + [flags])
        dist.all_reduce(flat)
        sums, flags = flat[:-len(flags)], flat[-len(flags):].tolist()
        sums /= self.world
        offset = 0
        for p, has, g in zip(params, flags, grads):
            size = p.numel()
            if has:
                p.grad = sums[offset:offset + size].view_as(p).to(p.device, g.dtype).clone()
            else:
                p.grad = None
            offset += size
        return flags[-1] == 0

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on some rank."""
        return self.any_each([flag])[0]

    def any_each(self, flags: list[bool]) -> list[bool]:
        """``any`` for several flags in one all-reduce."""
        if self.world == 1:
            return list(flags)
        t = torch.tensor([float(f) for f in flags], device=self.comm_device)
        _dist().all_reduce(t)
        return [v > 0 for v in t.tolist()]

    def mean(self, values: Tensor) -> Tensor:
        """Element-wise mean over the ranks of a float tensor of the same shape on each."""
        if self.world == 1:
            return values
        t = values.detach().float().to(self.comm_device).clone()
        _dist().all_reduce(t)
        return t / self.world

    def broadcast_tensors(self, tensors: Iterable[Tensor]) -> None:
        """Copy rank 0's values into ``tensors`` on every rank (in place)."""
        if self.world == 1:
            return
        dist = _dist()
        for t in tensors:
            buf = t.detach().to(self.comm_device).clone()
            dist.broadcast(buf, src=0)
            with torch.no_grad():
                t.copy_(buf.to(t.device))

    def broadcast_module(self, module: nn.Module, buffers_only: bool = False) -> None:
        items = [] if buffers_only else list(module.parameters())
        self.broadcast_tensors(items + [b for b in module.buffers() if b.numel()])

    def broadcast_text(self, text: str) -> str:
        """Rank 0's ``text`` on every rank (e.g. a default run folder named by the clock)."""
        if self.world == 1:
            return text
        dist = _dist()
        data = torch.tensor(list(text.encode()), dtype=torch.uint8, device=self.comm_device)
        size = torch.tensor([data.numel()], device=self.comm_device)
        dist.broadcast(size, src=0)
        buf = torch.zeros(int(size.item()), dtype=torch.uint8, device=self.comm_device)
        if self.is_main:
            buf.copy_(data)
        dist.broadcast(buf, src=0)
        return bytes(buf.cpu().tolist()).decode()

    def gather_rows(self, part: Tensor, n: int) -> Tensor:
        """Concatenate every rank's ``part`` (rank r holds rows ``rows(n)`` of ``n``), in rank
        order, on every rank."""
        if self.world == 1:
            return part
        dist = _dist()
        width = -(-n // self.world)                                  # ceil: pad to equal size
        pad = part.new_zeros((width - part.shape[0],) + tuple(part.shape[1:]))
        buf = torch.cat([part, pad]).contiguous().to(self.comm_device)
        out = [torch.empty_like(buf) for _ in range(self.world)]
        dist.all_gather(out, buf)
        parts = [o[:r.stop - r.start] for o, r in
                 zip(out, (rank_rows(k, self.world, n) for k in range(self.world)))]
        return torch.cat(parts).to(part.device)


# ---------------------------------------------------------------- process group
SINGLE = Dist()                 # one process: no collectives


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes (idempotent) and pick this rank's device.

    Returns the single-process ``Dist`` and ``device`` unchanged outside torchrun."""
    world = env_world_size()
    if world == 1:
        return SINGLE, device
    dist = _dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if device.type == "cuda":      # device_id: NCCL binds this rank to its GPU at once
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    comm = device if dist.get_backend() == "nccl" else torch.device("cpu")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, comm), device


def teardown(together: bool = True) -> None:
    """Destroy the process group. ``together`` (the normal exit) first waits for every rank:
    rank 0 hosts the rendezvous store, and tearing it down while another rank still talks to it
    aborts that process ("terminate called without an active exception"). After an error the
    other ranks may never arrive, so then there is no barrier."""
    if env_world_size() > 1:
        dist = _dist()
        if dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[Dist]:
    """The process group for the length of a run (a no-op for one process)."""
    info, _ = setup(device)
    try:
        yield info
    except BaseException:
        teardown(together=False)
        raise
    teardown()


def sync_batchnorm(nets: nn.Module, enabled: bool, info: Dist, device: torch.device) -> nn.Module:
    """``train.sync_bn``: batch statistics over the global batch (only meaningful for W > 1):
    batch norm becomes ``nn.SyncBatchNorm``, and a module with batch statistics of its own
    that offers ``sync_stats`` (the slot generator's ``SlotNorm``) gets it set."""
    if not enabled or info.world == 1:
        return nets
    if device.type != "cuda":
        raise ConfigError(f"train.sync_bn needs CUDA: torch's SyncBatchNorm runs on GPUs only "
                          f"(this run trains on {device.type}); set train.sync_bn=false")
    for m in nets.modules():
        if hasattr(m, "sync_stats"):
            m.sync_stats = True
    return nn.SyncBatchNorm.convert_sync_batchnorm(nets)


# ---------------------------------------------------------------- launching
def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    """``python -m torch.distributed.run`` running ``gankit ARGS`` in ``nproc`` local ranks."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "-m", "gankit", *args]


def launch(nproc: int, args: list[str]) -> int:
    """Run ``gankit ARGS`` under torchrun with ``nproc`` processes; returns its exit code."""
    if env_world_size() > 1:
        raise GankitError("already running under torchrun; drop --nproc")
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:          # share the cores instead of oversubscribing them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    return subprocess.call(torchrun_command(nproc, args), env=env)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_local(fn: Callable[..., Any], nprocs: int, *args: Any) -> None:
    """Call ``fn(*args)`` in ``nprocs`` fresh local processes that form one process group, as
    torchrun would (for tests, benchmarks and notebooks). ``fn`` must be importable by name."""
    import torch.multiprocessing as mp
    mp.spawn(_run_rank, args=(nprocs, free_port(), fn, args), nprocs=nprocs, join=True)


def _run_rank(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    try:
        fn(*args)
    except BaseException:
        teardown(together=False)
        raise
    teardown()
    # Leave without interpreter finalisation: a c10d/gloo thread object destroyed at exit can
    # abort a finished child ("terminate called without an active exception", SIGABRT), which
    # mp.spawn reports as a failure although the work is done and written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
