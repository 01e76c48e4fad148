"""Train the small CNN classifiers shipped in ``gankit/weights/`` (offline GAN metrics).

    python scripts/train_classifiers.py                       # both, default recipe
    python scripts/train_classifiers.py --data mnist --epochs 3

Deterministic on CPU for a given seed and thread count (one thread by default: on a shared
2-core machine it is also the fastest). Data: ``gankit.data.idx.load_mnist`` (``GANKIT_DATA``).
The test accuracy and this command are written into each weights file's metadata.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gankit.data.idx import load_mnist
from gankit.metrics.classifier import (DEFAULT_ARCH, WEIGHT_FILES, SmallCNN, classify,
                                       load_classifier_file, save_classifier, uint8_to_unit)

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "src" / "gankit" / "weights"
# Per data set: epochs, random shifts (pixels), whether horizontal flips keep the label
# (clothes yes, digits no).
RECIPES = {
    "mnist": {"epochs": 5, "shift": 2, "flip": False},
    "fashion-mnist": {"epochs": 7, "shift": 0, "flip": True},
}


def augment(x: torch.Tensor, gen: torch.Generator, flip: bool, shift: int = 2) -> torch.Tensor:
    """Random integer translations by up to ``shift`` pixels (zero padding), optional flips."""
    b, _, h, w = x.shape
    if shift == 0 and not flip:
        return x
    padded = F.pad(x, (shift, shift, shift, shift), value=-1.0)          # (B, 1, H+2s, W+2s)
    oy = torch.randint(0, 2 * shift + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * shift + 1, (b,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, :, None]                    # (B, H, 1)
    cols = (ox[:, None] + torch.arange(w))[:, None, :]                    # (B, 1, W)
    out = padded[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)  # (B, 1, H, W)
    if flip:
        mask = (torch.rand(b, generator=gen) < 0.5).view(b, 1, 1, 1)
        out = torch.where(mask, out.flip(-1), out)
    return out


def accuracy(model: SmallCNN, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    _, logits = classify(model, uint8_to_unit(images))
    return float((logits.argmax(1) == labels).float().mean())


def train_one(name: str, epochs: int, seed: int, batch: int, lr: float) -> tuple[SmallCNN, dict]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train, test = load_mnist("train", name=name), load_mnist("test", name=name)
    x_all, y_all = uint8_to_unit(train.images), train.labels
    model = SmallCNN(DEFAULT_ARCH["channels"], DEFAULT_ARCH["pool"], DEFAULT_ARCH["feature_dim"],
                     DEFAULT_ARCH["num_classes"], dropout=0.2)
    steps_per_epoch = len(x_all) // batch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_all), generator=gen)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * batch:(i + 1) * batch]
            x = augment(x_all[idx], gen, RECIPES[name]["flip"], RECIPES[name]["shift"])
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        acc = accuracy(model, test.images, test.labels)
        print(f"{name} epoch {epoch + 1}/{epochs}: train loss {total / steps_per_epoch:.4f}, "
              f"test accuracy {acc:.4%} ({time.perf_counter() - t0:.0f} s)", flush=True)
    # Wall time depends on the machine's load; CPU time is the comparable cost.
    return model, {"train_seconds": round(time.perf_counter() - t0, 1),
                   "train_cpu_seconds": round(time.process_time() - cpu0, 1), "test": test}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python scripts/train_classifiers.py", shlex.join(given)]).strip()
    for name in args.data:
        epochs = args.epochs or RECIPES[name]["epochs"]
        model, run = train_one(name, epochs, args.seed, args.batch, args.lr)
        test = run.pop("test")
        path = args.out / WEIGHT_FILES[name]
        info = {"data": name, "arch": {k: list(v) if isinstance(v, tuple) else v
                                       for k, v in DEFAULT_ARCH.items()},
                "input": "float in [-1, 1], (B, 1, 28, 28); other sizes resized, RGB averaged",
                "epochs": epochs, "seed": args.seed, "batch": args.batch, "lr": args.lr,
                "threads": args.threads, "torch": torch.__version__,
                "machine": platform.machine(), "command": command, **run}
        save_classifier(path, model, info)
        # Measure on the file as shipped, exactly as load_classifier will see it.
        acc = accuracy(load_classifier_file(path), test.images, test.labels)
        info |= {"test_accuracy": round(acc, 6), "test_images": len(test)}
        save_classifier(path, model, info)
        print(json.dumps({"file": str(path), "bytes": path.stat().st_size, **info}), flush=True)


if __name__ == "__main__":
    main()
