"""Run time of every preset on one CPU core, for `gankit list`.

For each preset, one at a time: build its trainer (``train.threads=1``, no figures, no
evaluations, no checkpoints), run a warm-up, then time a short segment of training steps
(``Trainer.train_step``) and write into ``src/gankit/presets/runtimes.json``:

* ``cpu_seconds_per_step``: CPU seconds of this single-threaded process per step (what a free
  core takes; the machine may be shared, so wall time can be longer) and ``seconds_per_step``
  (wall);
* ``steps`` (the preset's ``train.steps``) and ``minutes`` = steps x cpu_seconds_per_step / 60;
* ``timed_steps``, ``warmup_steps``, the 1-minute load average when timing ended, the date,
  torch and the CPU model, ``preset_sha256`` (of the preset file: `gankit list` says when a
  preset changed after it was measured) and ``data``: "real", or for presets whose data are
  your own folders or not available here (CIFAR-10), "stand-in": a folder of random images of
  the preset's sizes (a step's cost depends on tensor shapes, not on pixel values).

The minutes cover training steps only: sample grids, evaluations (e.g. ``eval.metrics``),
checkpoints and the final figures add to them.

    OMP_NUM_THREADS=1 python benchmarks/preset_times.py [--presets ring gaussian1d ...] \
        [--steps 200] [--budget 60] [--warmup 10] [--dry-run]

Entries of presets not named are kept, so one preset can be measured again on its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.config import PRESET_DIR, build_config, list_presets
from gankit.errors import GankitError
from gankit.train.trainer import Trainer

OUT = Path(__file__).resolve().parents[1] / "src" / "gankit" / "presets" / "runtimes.json"
ABOUT = ("Seconds per training step of each preset on one CPU core (train.threads=1, after a "
         "warm-up), measured by benchmarks/preset_times.py; minutes = steps x "
         "cpu_seconds_per_step / 60, training steps only (sample grids, evaluations, "
         "checkpoints and figures add to it). data 'stand-in': random images of the preset's "
         "sizes in place of your own folders or data not available where it was measured.")
FOLDER_DATA = {"folder", "unpaired-folder", "paired-folder"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _random_images(folder: Path, n: int, size: tuple[int, int], seed: int) -> None:
    """``n`` random RGB PNGs of ``size`` (width, height) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i:04d}.png")


def stand_in(name: str, raw_data: dict, root: Path) -> list[str]:
    """Overrides that point preset ``name``'s data at random images of its sizes."""
    kind = raw_data.get("name")
    size = int(raw_data.get("size", 32))
    load = int(raw_data.get("load_size") or size)
    if kind == "unpaired-folder":
        _random_images(root / "trainA", 12, (load, load), 0)
        _random_images(root / "trainB", 12, (load, load), 1)
        return [f"data.path={root}"]
    if kind == "paired-folder":
        _random_images(root / "train", 12, (2 * load, load), 2)     # A|B side by side
        return [f"data.path={root}"]
    # an image data set (one's own folder, or CIFAR-10 when it is not here): one class folder
    _random_images(root / "images", 160, (size, size), 3)
    if kind == "folder":
        return [f"data.path={root}"]
    channels = 1 if kind in ("mnist", "fashion-mnist") else 3
    return [f"data={{name: folder, path: {root}, size: {size}, channels: {channels}, "
            f"labels: false}}"]


def build(name: str, tmp: Path) -> tuple[Trainer, str]:
    """The preset's trainer on its real data, else on stand-in images; and which."""
    base = ["train.threads=1", "log.progress=false"]
    raw = build_config(name, base + (["data.path=unused"] if _needs_path(name) else []))
    data = raw.data.model_dump() if hasattr(raw.data, "model_dump") else dict(raw.data)
    if data.get("name") not in FOLDER_DATA:
        try:
            return Trainer(build_config(name, base), None), "real"
        except GankitError as e:
            print(f"  {name}: real data unavailable ({e}); using stand-in images", flush=True)
    sets = stand_in(name, data, tmp / name)
    return Trainer(build_config(name, base + sets), None), "stand-in"


def _needs_path(name: str) -> bool:
    import yaml
    raw = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text()) or {}
    return (raw.get("data") or {}).get("name") in FOLDER_DATA


def measure(name: str, tmp: Path, max_steps: int, budget: float, warmup: int) -> dict:
    torch.set_num_threads(1)
    trainer, data = build(name, tmp)
    t0 = time.perf_counter()
    done_warmup = 0
    while done_warmup < warmup and (done_warmup < 2 or time.perf_counter() - t0 < budget / 4):
        trainer.train_step()
        done_warmup += 1
    steps = 0
    w0, c0 = time.perf_counter(), time.process_time()
    while steps < max_steps and (steps < 5 or time.perf_counter() - w0 < budget):
        trainer.train_step()
        steps += 1
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    total = trainer.cfg.train.steps
    return {
        "seconds_per_step": round(wall / steps, 6),
        "cpu_seconds_per_step": round(cpu / steps, 6),
        "steps": total,
        "minutes": round(total * cpu / steps / 60, 2),
        "timed_steps": steps,
        "warmup_steps": done_warmup,
        "data": data,
        "load_1min": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "preset_sha256": hashlib.sha256((PRESET_DIR / f"{name}.yaml").read_bytes()).hexdigest(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", help="default: every preset")
    ap.add_argument("--steps", type=int, default=200, help="timed steps at most (default 200)")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds of timed steps at most (at least 5 steps; default 60)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--dry-run", action="store_true", help="print, do not write --out")
    args = ap.parse_args(argv)
    names = args.presets or list_presets()
    unknown = sorted(set(names) - set(list_presets()))
    if unknown:
        ap.error(f"unknown presets: {', '.join(unknown)}")
    table = json.loads(args.out.read_text()) if args.out.exists() else {}
    entries = table.get("presets", {})
    print("| preset | data | s/step (CPU) | s/step (wall) | timed steps | steps | minutes "
          "| load |\n| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GANKIT_CACHE", str(Path(tmp) / "cache"))
        for name in names:
            r = measure(name, Path(tmp), args.steps, args.budget, args.warmup)
            entries[name] = r
            print(f"| {name} | {r['data']} | {r['cpu_seconds_per_step']:.4f} | "
                  f"{r['seconds_per_step']:.4f} | {r['timed_steps']} | {r['steps']} | "
                  f"{r['minutes']:.1f} | {r['load_1min']} |", flush=True)
            if not args.dry_run:          # after each preset: a stopped sweep keeps its work
                out = {"about": ABOUT, "presets": dict(sorted(entries.items()))}
                args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
