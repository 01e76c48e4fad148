"""``gankit translate``: apply a trained translator (CycleGAN / pix2pix run) to a folder.

Only the translator is rebuilt, from the run's config and newest intact checkpoint (EMA
weights when the run kept them); the training data need not be present any more. Each input
image is decoded like the training data (:mod:`gankit.data.decode`: shorter side resized to
the training size, centre crop, 1 or 3 channels) and written under the same relative name and
extension into a new or empty output folder apart from the inputs (:mod:`gankit.outputs`).

Inputs unlike the translator's training domain (say a white-background digit for a model
trained on white-on-black MNIST strokes) are translated, with one warning naming them: each
input's mean intensity, border intensity and contrast (``image_features``) is compared with
the range of the same numbers over the held-out images of that domain (``domain_ranges``;
computed from the data on first use and kept in the run folder as ``domain-stats.json``, so
later checks need no data).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.core import capabilities as caps
from gankit.core.roles import build_nets
from gankit.core.step import Latent
from gankit.data import folder as folder_mod
from gankit import outputs
from gankit.fileio import read_json
from gankit.errors import CheckpointError, GankitError
from gankit.fileio import atomic_write
from gankit.log import note, some
from gankit.plots.common import upscale_for
from gankit.plots.translation import VIEW_PX, tile
from gankit.registry import DATASETS, NETWORKS, OBJECTIVES
from gankit.run import RunDir
from gankit.train import checkpoint as ckpt

BATCH = 32                          # images per forward pass at the training size
MAX_SIZE = 1024                     # largest side translated (activations grow with its square)


def translates(objective) -> bool:
    """Whether a run of the validated ``objective`` params translates images (its objective
    offers ``caps.TRANSLATION``: CycleGAN, pix2pix)."""
    return caps.TRANSLATION in OBJECTIVES.get(objective.name).capabilities(objective)


def load_translator(run_path: Path, direction: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The ``direction`` translator of a run, in eval mode, and its input shape (C, S, S)."""
    run = RunDir.open(run_path)
    cfg = run.read_config()
    obj_cls = OBJECTIVES.get(cfg.objective.name)
    if not translates(cfg.objective):
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


def output_name(rel: str) -> str:
    """The output of the input ``rel`` (a relative POSIX path): the same name and extension
    when Pillow writes that format, else the name with ``.png`` appended (``x.gif`` ->
    ``x.gif.png``), so that different inputs never share an output (``same.jpg``,
    ``same.png``)."""
    fmt = Image.registered_extensions().get(Path(rel).suffix.lower())
    return rel if fmt in Image.SAVE else rel + ".png"


def _save_images(images: torch.Tensor, paths: list[Path]) -> int:
    """(N, C, H, W) in [-1, 1] -> one file per path, in the format its extension names
    (grayscale for 1 channel); the number written. GankitError naming a file that cannot
    be written."""
    arr = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    for x, path in zip(arr, paths):
        pic = Image.fromarray(x[0]) if x.shape[0] == 1 else Image.fromarray(x.transpose(1, 2, 0))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            pic.save(path)
        except (ValueError, OSError) as e:
            raise GankitError(f"cannot write {path}: {e}") from e
    return len(paths)


SHEET = "translation-sheet.png"      # the first inputs beside their translations
SHEET_ROWS = 16

DOMAIN_STATS = "domain-stats.json"  # run folder: each direction's training-input ranges
REFERENCE_N = 2000                  # held-out images behind a domain's ranges (at most)
QUANTILES = (0.005, 0.995)          # a domain's range of a feature: 99 % of its images
TOLERANCE = 0.1                     # and this much more on either side (intensities in [0, 1])
FEATURES = ("mean intensity", "border intensity", "contrast")
SHOWN = 5                           # inputs named in a warning (skipped, suspicious)


class UnlikeTrainingDomainWarning(UserWarning):
    """Some inputs of ``gankit translate`` differ from the translator's training domain."""


def image_features(x: torch.Tensor) -> np.ndarray:
    """Per image of ``x`` (N, C, S, S) in [-1, 1], as (N, 3) float64 in [0, 1]: the mean
    intensity, the mean intensity of the outer ring of max(1, S // 14) pixels (2 px at 28: the
    background), and the contrast (standard deviation of the intensity); intensity is the
    mean over channels mapped to [0, 1]."""
    v = (x.detach().float().cpu().mean(1) + 1) / 2                       # (N, S, S)
    side = min(v.shape[-2:])
    w = max(1, side // 14)
    ring = torch.ones(v.shape[-2:], dtype=torch.bool)
    ring[w:-w, w:-w] = False
    flat = v.flatten(1)
    return torch.stack([flat.mean(1), v[:, ring].mean(1), flat.std(1, correction=0)],
                       1).double().numpy()


def feature_ranges(features: np.ndarray) -> list[list[float]]:
    """[[lo, hi]] per feature column of (N, 3) ``features``: the ``QUANTILES`` range."""
    q = np.quantile(features, QUANTILES, axis=0)                          # (2, 3)
    return [[float(lo), float(hi)] for lo, hi in q.T]


def unlike(features: np.ndarray, ranges: list[list[float]]) -> list[str]:
    """For each row of ``features`` (N, 3): '' when every feature lies within its range
    widened by ``TOLERANCE``, else what lies outside, e.g. 'border intensity 1.00, training
    0.00-0.01'."""
    out = []
    for row in features:
        bad = [f"{name} {v:.2f}, training {lo:.2f}-{hi:.2f}"
               for name, v, (lo, hi) in zip(FEATURES, row, ranges)
               if not lo - TOLERANCE <= v <= hi + TOLERANCE]
        out.append("; ".join(bad))
    return out


def domain_ranges(run_path: Path, direction: str) -> dict | None:
    """The training domain of ``direction``'s inputs (domain A for AtoB, B for BtoA) as
    ``{"ranges": [[lo, hi]] per FEATURES, "n": images, "source": description}``: read from
    the run's ``domain-stats.json``, else computed from up to REFERENCE_N held-out images of
    the run's data set and saved there. None (with a note) when the data cannot be read."""
    run = RunDir.open(run_path)
    cache = run.path / DOMAIN_STATS
    kept = read_json(cache) or {}
    if isinstance(kept.get(direction), dict) and len(kept[direction].get("ranges", ())) == 3:
        return kept[direction]
    cfg = run.read_config()
    key = "a" if direction == "AtoB" else "b"
    try:
        with warnings.catch_warnings():           # the run reported skipped files already
            warnings.simplefilter("ignore")
            held = DATASETS.get(cfg.data.name).build(cfg.data, seed=cfg.seed).heldout()
            parts, n = [], 0
            for batch in held.batches(256):
                if n >= REFERENCE_N:
                    break
                part = batch[key][:REFERENCE_N - n]
                if len(part):
                    parts.append(image_features(part))
                    n += len(part)
    except (GankitError, OSError) as e:
        note(f"inputs not compared with the training domain ({' '.join(str(e).split())})")
        return None
    if not parts:
        note(f"inputs not compared with the training domain (no held-out {key.upper()} images)")
        return None
    stats = {"ranges": feature_ranges(np.concatenate(parts)), "n": n,
             "source": f"{held.description}, domain {key.upper()}"}
    try:
        atomic_write(cache, (json.dumps(kept | {direction: stats}, indent=1) + "\n").encode())
    except OSError:
        pass                                      # a read-only run folder: computed each time
    return stats


def translate_folder(run_path: Path, input_dir: Path, direction: str, out_dir: Path,
                     size: int | None = None) -> int:
    """Translate every image under ``input_dir`` into ``out_dir`` under the same relative
    name and extension (:func:`output_name`), and write ``translation-sheet.png`` (inputs
    beside translations); returns how many were translated, which is how many image files
    were written. ``out_dir`` must be new or empty and apart from the input folder and the
    run folder, and no two inputs may share an output name (GankitError otherwise, before
    any work; :mod:`gankit.outputs`). ``size``: the side images are resized to (default:
    the training size; the translators are convolutional, so other sizes run, with a note).
    Unusable files are skipped and named in one warning; inputs unlike the training
    domain (``domain_ranges``) are translated and named in one UnlikeTrainingDomainWarning.
    GankitError when no usable image is left, or for a ``size`` above ``MAX_SIZE``."""
    if size is not None and size > MAX_SIZE:
        raise GankitError(f"--size {size}: at most {MAX_SIZE} px (the translator's activations "
                          "grow with the square of the side)")
    out_dir = Path(out_dir)
    outputs.check_new_folder(out_dir, {"the input folder": input_dir, "the run folder": run_path})
    outputs.check_writable(out_dir / SHEET)
    entries, _ = folder_mod.scan_folder(input_dir)
    if not entries:
        raise GankitError(f"no image files ({', '.join(folder_mod.IMAGE_EXTENSIONS)}) in "
                          f"{input_dir}")
    names = outputs.one_to_one([e.rel for e in entries], output_name, reserved=[SHEET])
    net, (channels, trained, _) = load_translator(Path(run_path), direction)
    size = size or trained
    if size != trained:
        note(f"translating at {size} px; the model was trained at {trained} px")
    domain = domain_ranges(Path(run_path), direction)
    written, skipped, sheet, odd = 0, {}, ([], []), []
    per_pass = max(1, BATCH * trained ** 2 // size ** 2)   # about BATCH training images' pixels
    for start in range(0, len(entries), per_pass):
        arrays, paths = [], []
        for entry in entries[start:start + per_pass]:
            arr, reason = folder_mod._try_decode(entry, size, channels)
            if arr is None:
                skipped.setdefault(reason, []).append(entry.rel)
                continue
            arrays.append(arr)
            paths.append(out_dir / names[entry.rel])
        if not arrays:
            continue
        x = torch.from_numpy(np.stack(arrays)).float() / 127.5 - 1     # (n, C, S, S)
        if domain is not None:
            odd += [(p.relative_to(out_dir).as_posix(), why)
                    for p, why in zip(paths, unlike(image_features(x), domain["ranges"])) if why]
        with torch.no_grad():
            y = net(x)
        written += _save_images(y, paths)
        room = SHEET_ROWS - sum(len(t) for t in sheet[0])
        sheet[0].append(x[:room])
        sheet[1].append(y[:room])
    if skipped:
        detail = "; ".join(f"{len(rels)} {r} ({some(rels, SHOWN)})"
                           for r, rels in sorted(skipped.items()))
        warnings.warn(f"skipped {sum(map(len, skipped.values()))} of {len(entries)} files in "
                      f"{input_dir}: {detail}", folder_mod.SkippedFilesWarning, stacklevel=2)
    if odd:
        named = some([f"{name} ({why})" for name, why in odd], SHOWN)
        warnings.warn(f"{len(odd)} of {written} inputs look unlike the {direction} translator's "
                      f"training inputs ({domain['source']}), translated anyway: {named}",
                      UnlikeTrainingDomainWarning, stacklevel=2)
    if written == 0:
        raise GankitError(f"no usable image in {input_dir}")
    shown_in, shown_out = torch.cat(sheet[0]), torch.cat(sheet[1])
    tile([shown_in, shown_out], upscale_for(size, VIEW_PX), rows=SHEET_ROWS,
         labels=["input", direction]).save(out_dir / SHEET)
    return written
