"""``gankit translate``: apply a trained translator (CycleGAN / pix2pix run) to a folder.

Only the translator is rebuilt, from the run's config and newest intact checkpoint (EMA
weights when the run kept them); the training data need not be present any more. Each input
image is decoded like the training data (shorter side resized to the training size, centre
crop, 1 or 3 channels) and written as PNG under the same relative name.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.data import folder as folder_mod
from gankit.errors import CheckpointError, GankitError
from gankit.core import capabilities as caps
from gankit.core.roles import build_nets
from gankit.core.step import Latent
from gankit.registry import DATASETS, NETWORKS, OBJECTIVES
from gankit.run import RunDir
from gankit.train import checkpoint as ckpt

BATCH = 32


def load_translator(run_path: Path, direction: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The ``direction`` translator of a run, in eval mode, and its input shape (C, S, S)."""
    run = RunDir.open(run_path)
    cfg = run.read_config()
    obj_cls = OBJECTIVES.get(cfg.objective.name)
    if caps.TRANSLATION not in obj_cls.capabilities(cfg.objective):
        raise GankitError(f"{run_path} was trained with the {cfg.objective.name} objective, "
                          "which does not translate images (use a cyclegan or pix2pix run)")
    directions: dict[str, str] = obj_cls.directions
    if direction not in directions:
        raise GankitError(f"a {cfg.objective.name} run translates {', '.join(directions)} "
                          f"only, not {direction}")
    data_cls = DATASETS.get(cfg.data.name)
    if not hasattr(data_cls, "describe"):
        raise GankitError(f"the {cfg.data.name} data set is not a two-domain data set")
    info = data_cls.describe(cfg.data)
    name = directions[direction]
    roles = obj_cls.roles(cfg.objective, info, Latent.of_model(cfg.model))
    net = build_nets(NETWORKS.get(cfg.model.name), cfg.model, info, {name: roles[name]})[name]
    _, state, skipped = ckpt.newest_intact(run.checkpoints)
    for msg in skipped:
        warnings.warn(f"skipped {msg}", stacklevel=2)
    weights = state.get("ema", {}).get(name) or state["nets"][name]
    try:
        net.load_state_dict(weights)
    except RuntimeError:
        raise CheckpointError(f"the checkpoint of {run_path} does not fit its config's "
                              f"{name} network") from None
    shape = info.shape if direction == "AtoB" else (info.shape_b or info.shape)
    return net.eval(), tuple(shape)


def _save_png(images: torch.Tensor, paths: list[Path]) -> None:
    """(N, C, H, W) in [-1, 1] -> one PNG per path (grayscale for 1 channel)."""
    arr = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    for x, path in zip(arr, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        pic = Image.fromarray(x[0]) if x.shape[0] == 1 else Image.fromarray(x.transpose(1, 2, 0))
        pic.save(path)


@torch.no_grad()
def translate_folder(run_path: Path, input_dir: Path, direction: str, out_dir: Path) -> int:
    """Translate every image under ``input_dir`` into ``out_dir``; returns how many were
    written. Unusable files are skipped and reported in one warning."""
    net, (channels, size, _) = load_translator(Path(run_path), direction)
    entries, _ = folder_mod.scan_folder(input_dir)
    if not entries:
        raise GankitError(f"no image files ({', '.join(folder_mod.IMAGE_EXTENSIONS)}) in "
                          f"{input_dir}")
    out_dir = Path(out_dir)
    written, skipped = 0, {}
    for start in range(0, len(entries), BATCH):
        arrays, paths = [], []
        for entry in entries[start:start + BATCH]:
            arr, reason = folder_mod._try_decode(entry, size, channels)
            if arr is None:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            arrays.append(arr)
            paths.append(out_dir / Path(entry.rel).with_suffix(".png"))
        if not arrays:
            continue
        x = torch.from_numpy(np.stack(arrays)).float() / 127.5 - 1     # (n, C, S, S)
        _save_png(net(x), paths)
        written += len(paths)
    if skipped:
        detail = ", ".join(f"{n} {r}" for r, n in sorted(skipped.items()))
        warnings.warn(f"skipped {sum(skipped.values())} of {len(entries)} files in "
                      f"{input_dir}: {detail}", folder_mod.SkippedFilesWarning, stacklevel=2)
    if written == 0:
        raise GankitError(f"no usable image in {input_dir}")
    return written
