"""Images/s of one gankit training step on the canonical 64-px DCGAN, against a plain PyTorch
loop in the style of the official PyTorch DCGAN example, in the same process.

    python benchmarks/dcgan_throughput.py [--steps 10] [--rounds 3] [--threads 1] [--workers 2]
                                          [--channels-last] [--reuse-fakes] [--compile]
    python benchmarks/dcgan_throughput.py --ablation [--steps 3] [--rounds 4] [--threads 1]

Both sides train the same networks (``gankit.nn.dcgan``, z_dim=100, ngf=ndf=64, 1 channel) on
MNIST resized to 64x64, batch 64, Adam(2e-4, 0.5, 0.999), non-saturating loss:

* gankit: ``Trainer.train_step()`` (D phase then G phase), MNIST resized once at load time
  into the uint8 cache, batches converted whole;
* plain: the example's loop (D on real, D on G(z).detach(), then D on the same G(z) for G's
  update; ``zero_grad`` / ``backward`` / ``step`` by hand) over a ``torch.utils.data.DataLoader``
  whose Dataset converts one image per ``__getitem__`` (uint8 array -> PIL -> resize 64 ->
  normalise), as torchvision's transforms would. BCE with logits stands in for Sigmoid+BCELoss.

``--channels-last`` / ``--reuse-fakes`` / ``--compile`` switch on the trainer's
``train.channels_last`` / ``train.reuse_fakes`` / ``train.compile`` for the gankit side only
(the example loop stays NCHW and eager; it reuses its fakes, as the example does).

``--ablation`` times gankit alone with each speed option added in turn (NCHW, channels_last,
channels_last + reuse_fakes), alternating blocks the same way, and prints each against NCHW.

Timing alternates blocks of ``--steps`` steps between the two (``--rounds`` times) and takes the
median step time of each, so load from other processes hits both alike. Also printed: FLOPs per
step (counted by ``torch.utils.flop_counter``), the machine's fp32 matmul FLOP/s, and the ratio
of each step time to the FLOP-count lower bound (FLOPs / matmul FLOP/s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from gankit.config import validate
from gankit.data.idx import load_mnist
from gankit.nn.dcgan import DCGANDiscriminator, DCGANGenerator
from gankit.train.trainer import Trainer

BATCH, SIZE, NZ = 64, 64, 100

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"   # ../shared/data


class PerSampleMNIST(Dataset):
    """One uint8 28x28 digit per item -> PIL -> 64x64 bilinear -> [-1, 1] float (1, 64, 64)."""

    def __init__(self, images: np.ndarray):
        self.images = images                                          # (N, 28, 28) uint8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i], mode="L").resize((SIZE, SIZE), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]   # ToTensor
        return (x - 0.5) / 0.5, 0                                               # Normalize


class PlainLoop:
    """The official example's training iteration (examples/dcgan/main.py), logits form."""

    def __init__(self, images: np.ndarray, workers: int, seed: int = 0):
        torch.manual_seed(seed)
        self.G = DCGANGenerator(NZ, (1, SIZE, SIZE), 64)
        self.D = DCGANDiscriminator((1, SIZE, SIZE), 64, "batch")
        self.optD = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.loader = DataLoader(PerSampleMNIST(images), batch_size=BATCH, shuffle=True,
                                 num_workers=workers, drop_last=True,
                                 persistent_workers=workers > 0)
        self.it = iter(self.loader)

    def batch(self) -> torch.Tensor:
        try:
            return next(self.it)[0]
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)[0]

    def step(self) -> None:
        bce = F.binary_cross_entropy_with_logits
        real = self.batch()
        b = real.shape[0]
        ones, zeros = torch.ones(b), torch.zeros(b)
        self.D.zero_grad()
        bce(self.D(real), ones).backward()
        fake = self.G(torch.randn(b, NZ))
        bce(self.D(fake.detach()), zeros).backward()
        self.optD.step()
        self.G.zero_grad()
        bce(self.D(fake), ones).backward()
        self.optG.step()


def gankit_trainer(**train) -> Trainer:
    cfg = validate({"data": {"name": "mnist", "size": SIZE, "labels": False},
                    "model": {"name": "dcgan", "z_dim": NZ, "ngf": 64, "ndf": 64},
                    "objective": {"name": "nonsaturating"},
                    "train": {"batch_size": BATCH, "device": "cpu"} | train})
    return Trainer(cfg)


def matmul_flops(sizes=(1024, 2048), repeats: int = 10) -> float:
    """Best fp32 matmul FLOP/s over a few sizes and runs (the machine's practical peak).
    On a shared machine this is itself an underestimate, so the "lower bound" can be beaten."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
    return best


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def timed(fn, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def ablation(steps: int, rounds: int) -> None:
    variants = {"NCHW": {}, "channels_last": {"channels_last": True},
                "channels_last + reuse_fakes": {"channels_last": True, "reuse_fakes": True}}
    trainers = {name: gankit_trainer(**extra) for name, extra in variants.items()}
    for t in trainers.values():
        for _ in range(2):
            t.train_step()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, t in trainers.items():
            times[name].append(timed(t.train_step, steps))
    base = statistics.median(times["NCHW"])
    print(f"threads={torch.get_num_threads()} batch={BATCH} size={SIZE} steps={steps}x{rounds}")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"{name:>28}: {t * 1e3:8.1f} ms/step  {BATCH / t:7.1f} img/s  "
              f"x{base / t:.2f} vs NCHW")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="steps per timed block")
    ap.add_argument("--rounds", type=int, default=3, help="alternating blocks per side")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers (example: 2)")
    ap.add_argument("--channels-last", action="store_true", help="gankit: train.channels_last")
    ap.add_argument("--reuse-fakes", action="store_true", help="gankit: train.reuse_fakes")
    ap.add_argument("--compile", action="store_true", help="gankit: train.compile")
    ap.add_argument("--ablation", action="store_true",
                    help="time gankit's speed options against each other instead")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("GANKIT_DATA", str(SHARED_DATA))
    if args.ablation:
        ablation(args.steps, args.rounds)
        return

    extra = {k: True for k, on in (("channels_last", args.channels_last),
                                   ("reuse_fakes", args.reuse_fakes),
                                   ("compile", args.compile)) if on}
    trainer = gankit_trainer(**extra)
    plain = PlainLoop(load_mnist("train").images[:, 0].numpy(), args.workers)
    for _ in range(2):                                     # warm-up (allocator, oneDNN, workers)
        trainer.train_step()
        plain.step()
    flops_gankit = count_flops(trainer.train_step)
    flops_plain = count_flops(plain.step)
    peak = matmul_flops()

    times: dict[str, list[float]] = {"gankit": [], "plain": []}
    for _ in range(args.rounds):
        times["gankit"].append(timed(trainer.train_step, args.steps))
        times["plain"].append(timed(plain.step, args.steps))
    t_g, t_p = statistics.median(times["gankit"]), statistics.median(times["plain"])

    print(f"threads={torch.get_num_threads()} workers={args.workers} batch={BATCH} size={SIZE} "
          f"steps={args.steps}x{args.rounds} gankit extras={sorted(extra) or 'none'}")
    print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s (fp32, best of 1024^3 and 2048^3)")
    for name, t, fl in (("gankit", t_g, flops_gankit), ("plain", t_p, flops_plain)):
        bound = fl / peak
        print(f"{name:>7}: {t * 1e3:8.1f} ms/step  {BATCH / t:7.1f} img/s  "
              f"{fl / 1e9:6.1f} GFLOP/step  {fl / t / 1e9:5.1f} GFLOP/s  "
              f"step/lower-bound {t / bound:4.2f}x  (blocks: "
              + ", ".join(f"{x * 1e3:.0f}" for x in times[name]) + " ms)")
    print(f"speed ratio gankit/plain (img/s): {t_p / t_g:.2f}x")


if __name__ == "__main__":
    main()
