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

from gankit.core import capabilities as caps
from gankit.core.roles import build_nets
from gankit.core.step import Latent
from gankit.data import folder as folder_mod
from gankit.errors import CheckpointError, GankitError
from gankit.log import note
from gankit.plots.common import upscale_for
from gankit.plots.translation import VIEW_PX, tile
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


def _save_images(images: torch.Tensor, paths: list[Path]) -> None:
    """(N, C, H, W) in [-1, 1] -> one file per path, in the format its extension names
    (grayscale for 1 channel); an extension Pillow cannot write becomes ``.png``."""
    arr = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    for x, path in zip(arr, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        pic = Image.fromarray(x[0]) if x.shape[0] == 1 else Image.fromarray(x.transpose(1, 2, 0))
        try:
            pic.save(path)
        except (ValueError, OSError):       # no writer for this extension (or mode)
            pic.save(path.with_suffix(".png"))


SHEET = "translation-sheet.png"      # the first inputs beside their translations
SHEET_ROWS = 16


@torch.no_grad()
def translate_folder(run_path: Path, input_dir: Path, direction: str, out_dir: Path,
                     size: int | None = None) -> int:
    """Translate every image under ``input_dir`` into ``out_dir`` under the same relative
    name and extension, and write ``translation-sheet.png`` (inputs beside translations);
    returns how many were translated. ``size``: the side images are resized to (default:
    the training size; the translators are convolutional, so other sizes run, with a note).
    Unusable files are skipped and reported in one warning; GankitError when none is left."""
    net, (channels, trained, _) = load_translator(Path(run_path), direction)
    size = size or trained
    if size != trained:
        note(f"translating at {size} px; the model was trained at {trained} px")
    entries, _ = folder_mod.scan_folder(input_dir)
    if not entries:
        raise GankitError(f"no image files ({', '.join(folder_mod.IMAGE_EXTENSIONS)}) in "
                          f"{input_dir}")
    out_dir = Path(out_dir)
    written, skipped, sheet = 0, {}, ([], [])
    for start in range(0, len(entries), BATCH):
        arrays, paths = [], []
        for entry in entries[start:start + BATCH]:
            arr, reason = folder_mod._try_decode(entry, size, channels)
            if arr is None:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            arrays.append(arr)
            paths.append(out_dir / Path(entry.rel))
        if not arrays:
            continue
        x = torch.from_numpy(np.stack(arrays)).float() / 127.5 - 1     # (n, C, S, S)
        y = net(x)
        _save_images(y, paths)
        written += len(paths)
        room = SHEET_ROWS - sum(len(t) for t in sheet[0])
        sheet[0].append(x[:room])
        sheet[1].append(y[:room])
    if skipped:
        detail = ", ".join(f"{n} {r}" for r, n in sorted(skipped.items()))
        warnings.warn(f"skipped {sum(skipped.values())} of {len(entries)} files in "
                      f"{input_dir}: {detail}", folder_mod.SkippedFilesWarning, stacklevel=2)
    if written == 0:
        raise GankitError(f"no usable image in {input_dir}")
    inputs, outputs = torch.cat(sheet[0]), torch.cat(sheet[1])
    tile([inputs, outputs], upscale_for(size, VIEW_PX), rows=SHEET_ROWS,
         labels=["input", direction]).save(out_dir / SHEET)
    return written
