"""Steps per second of data-parallel training with 1 and 2 processes on this machine.

    python benchmarks/scaling.py [--presets ring dcgan-mnist] [--steps 40] [--rounds 2]
                                 [--set train.batch_size=256 ...]

Each measurement starts fresh processes that form a gloo process group on 127.0.0.1 exactly as
``gankit train --nproc N`` does (``gankit.train.distributed.run_local``), builds the preset's
trainer, runs ``--warmup`` steps, then times ``--steps`` steps between two barriers.
``train.batch_size`` is the global batch, so every set-up does the same work per step (strong
scaling). Set-ups: one process with all cores, one process with one core (the baseline of the
ratio), and two processes with cores // 2 threads each (as ``gankit train --nproc 2`` sets
OMP_NUM_THREADS). They alternate ``--rounds`` times and the median of each is reported; the
load average is printed because this machine's cores are shared with other work, and so is
the CPU time per step summed over the ranks (what data parallelism costs in total, which the
scheduler's share of a busy machine does not distort). Presets whose
data is missing (MNIST for dcgan-mnist: set GANKIT_DATA) are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gankit.config import build_config
from gankit.errors import GankitError
from gankit.train import distributed
from gankit.train.trainer import Trainer


def _bench(result: str, preset: str, overrides: list[str], warmup: int, steps: int,
           threads: int) -> None:
    """Runs in every rank: time ``steps`` training steps; rank 0 writes the result."""
    torch.set_num_threads(threads)
    t = Trainer(build_config(preset, overrides + ["train.device=cpu"]))
    for _ in range(warmup):
        t.train_step()
    t.dist.barrier()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        t.train_step()
    cpu = time.process_time() - cpu
    t.dist.barrier()
    seconds = time.perf_counter() - start
    cpu_ms = float(t.dist.mean(torch.tensor([cpu])).item()) * t.dist.world * 1e3 / steps
    if t.dist.is_main:
        Path(result).write_text(json.dumps({
            "steps_per_s": steps / seconds, "cpu_ms_per_step": cpu_ms, "world": t.dist.world,
            "local_batch": t.local_batch, "threads": torch.get_num_threads()}))


def measure(preset: str, overrides: list[str], nproc: int, threads: int, warmup: int,
            steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        distributed.run_local(_bench, nproc, str(out), preset, overrides, warmup, steps, threads)
        return json.loads(out.read_text())


# (processes, intra-op threads per process): one process with every core, one process with one
# core (the fair baseline for two single-threaded ranks), two processes with a core each.
CORES = os.cpu_count() or 1
SETUPS = [(1, CORES), (1, 1), (2, max(1, CORES // 2))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["ring", "dcgan-mnist"])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()

    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__}")
    for preset in args.presets:
        try:
            build_config(preset, args.overrides)
            Trainer(build_config(preset, args.overrides + ["train.device=cpu"]))  # data there?
        except GankitError as e:
            print(f"{preset}: skipped ({str(e).splitlines()[0]})")
            continue
        rates: dict[tuple[int, int], list[float]] = {c: [] for c in SETUPS}
        cpu: dict[tuple[int, int], list[float]] = {c: [] for c in SETUPS}
        info: dict[tuple[int, int], dict] = {}
        for _ in range(args.rounds):
            for n, threads in SETUPS:
                info[n, threads] = measure(preset, args.overrides, n, threads, args.warmup,
                                           args.steps)
                rates[n, threads].append(info[n, threads]["steps_per_s"])
                cpu[n, threads].append(info[n, threads]["cpu_ms_per_step"])
        base = statistics.median(rates[1, 1])
        for (n, threads), rate_list in rates.items():
            rate = statistics.median(rate_list)
            print(f"{preset:<12} nproc={n} threads/rank={threads} "
                  f"batch/rank={info[n, threads]['local_batch']:<4} {rate:7.2f} steps/s  "
                  f"ratio to 1 process x 1 thread {rate / base:4.2f}  "
                  f"CPU {statistics.median(cpu[n, threads]):7.1f} ms/step (all ranks)  "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in rate_list)} steps/s)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
