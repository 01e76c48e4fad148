"""``gankit score`` / ``gankit.api.score``: score images with a run, evaluate when the truth
is known, and write the CSV with its summary and figures beside it."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from gankit import outputs
from gankit.core import capabilities as caps
from gankit.data.images import HELDOUT_BINARIZE_SEED, binarized_once
from gankit.errors import GankitError
from gankit.fileio import read_json
from gankit.log import note
from gankit.metrics.likelihood import importance_sampled
from gankit.outlier import evaluate
from gankit.outlier.inputs import Images, image_shape, read_input, to_model
from gankit.outlier.methods import Method, Options, choose, run_batches


@dataclass
class Scored:
    """The result: per image ``names``, ``inputs`` (which --input it came from), ``scores``
    (n,) float64, other per-image ``values`` of the method, ``anomalous`` (n,) bool or
    None; ``summary`` (method, protocol, notes, evaluation) and ``files`` written."""

    names: list[str]
    inputs: list[str]
    scores: np.ndarray
    values: dict[str, np.ndarray]
    anomalous: np.ndarray | None
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def _check_iw_samples(iw_samples: int | None, chosen: Method, models: list) -> None:
    """GankitError (one line) when ``--iw-samples`` would change nothing: the method reads no
    likelihood (or ELBO), or no model it reads estimates one by importance sampling (its
    ``likelihood_protocol`` records no ``iw_samples``: a PixelCNN's is exact)."""
    if iw_samples is None:
        return
    if not chosen.needs & {caps.LIKELIHOOD, caps.ELBO}:
        raise GankitError(f"--iw-samples: method {chosen.name} reads no likelihood, so "
                          "importance samples would change nothing")
    if not any(importance_sampled(m.objective) for m in models):
        raise GankitError(f"--iw-samples: the likelihood method {chosen.name} reads is exact "
                          "here (no importance samples), so they would change nothing")


def _refuse_both_ways(inputs: list[str], outliers: list[str]) -> None:
    """GankitError when one input is given both as normal (--input) and as anomalous
    (--outliers): its images would be their own opposite (AUROC 0.5 by construction)."""
    def key(spec: str) -> str:
        path = Path(spec).expanduser()
        return str(path.resolve()) if path.exists() else spec
    both = {key(s) for s in inputs} & {key(s) for s in outliers}
    if both:
        raise GankitError(f"--input and --outliers both name {sorted(both)[0]}: the same "
                          "images cannot be normal and anomalous")


def score_images(run: Path | str, inputs: Sequence[str], *, outliers: Sequence[str] = (),
                 method: str | None = None, background: Path | str | None = None,
                 normal_classes: Sequence[int] | None = None, resize: bool = False,
                 iw_samples: int | None = None, limit: int | None = None,
                 out: Path | str | None = None, device: str = "auto") -> Scored:
    """Score the images of ``inputs`` (and ``outliers``: inputs whose images are all
    anomalous) with the trained ``run``, higher = more anomalous (:mod:`methods`).

    The truth is known when ``outliers`` are given (their images are the anomalies) and/or
    ``normal_classes`` (labelled inputs: a label outside them is an anomaly, the one-class
    protocol of Ruff et al. 2018); then the summary holds AUROC and AUPRC. ``limit``: the
    first ``limit`` images of each input. ``out``: a ``.csv`` path; beside it
    ``<stem>.json`` (the summary), ``<stem>-most.png`` / ``<stem>-least.png`` and, with the
    truth, ``<stem>-hist.png`` (without it, an earlier scoring's is removed). A run trained on
    binarised data scores inputs binarised once
    with the held-out seed. GankitError (one line) for anything the user must change."""
    from gankit.train.model import load_run_model as load_model

    out = _check_out(out, run, background, [*inputs, *outliers])
    _refuse_both_ways(inputs, outliers)
    model = load_model(run, device=device)[1]
    shape = image_shape(model.data.info, run)
    bg = load_model(background, device=device)[1] if background is not None else None
    chosen = choose(model, method, bg is not None)
    if bg is not None:
        _check_background(model, bg)
    _check_iw_samples(iw_samples, chosen, [m for m in (model, bg) if m is not None])
    notes: list[str] = []
    found = []
    for spec, is_out in [(s, False) for s in inputs] + [(s, True) for s in outliers]:
        images, note = to_model(read_input(spec, limit), shape, resize)
        notes += [note] if note else []
        found.append((images, is_out))
    images = torch.cat([f.images for f, _ in found])
    x = _model_input(images, model, notes)
    values = run_batches(chosen, model, x, Options(iw_samples=iw_samples, background=bg))
    scores = values.pop("score").numpy()
    anomalous = _truth(found, normal_classes)
    summary = {"run": str(run), "method": chosen.name, "meaning": chosen.describe(model),
               "higher": "more anomalous", "n": len(scores),
               "inputs": [f.source for f, o in found if not o],
               "outliers": [f.source for f, o in found if o],
               "protocol": _protocol(model, chosen, iw_samples, bg, background),
               "notes": notes}
    if normal_classes is not None:
        summary["normal_classes"] = sorted(normal_classes)
    if anomalous is not None:
        summary["evaluation"] = evaluate.separation(scores, anomalous)
        # the method's parts as scores of their own (ratio: each model's NLL; f-AnoGAN:
        # each residual), so one pass shows what the combination adds
        summary["evaluation_of_parts"] = {k: evaluate.separation(v.numpy(), anomalous)
                                          for k, v in values.items()}
    names = [n for f, _ in found for n in f.names]
    where = [f.source for f, _ in found for _ in range(len(f))]
    result = Scored(names, where, scores, {k: v.numpy() for k, v in values.items()},
                    anomalous, summary)
    if out is not None:
        result.files = write(result, images, out)
    return result


def _check_out(out, run, background, specs) -> Path | None:
    """``out`` as a Path: a ``.csv`` file not in the run folders or the inputs (rule 1 of
    :mod:`gankit.outputs`)."""
    if out is None:
        return None
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise GankitError(f"--out must end in .csv, not {out.suffix or '(none)'}")
    if out.is_dir():
        raise GankitError(f"--out {out} is a folder; name the .csv file to write")
    paths = {"the run folder": Path(run), "the background run": background}
    paths |= {f"input {i + 1}": Path(s) for i, s in enumerate(specs) if Path(s).exists()}
    outputs.refuse_overlap(out, {k: v and Path(v) for k, v in paths.items()})
    outputs.check_writable(out)
    return out


def _check_background(model, bg) -> None:
    """The background model scores the same images as the model: it must offer a
    likelihood, take the same shape and the same binarisation."""
    if caps.LIKELIHOOD not in bg.objective.offers:
        raise GankitError(f"--background: a {bg.cfg.objective.name} model has no likelihood")
    if tuple(bg.data.info.shape) != tuple(model.data.info.shape):
        raise GankitError(f"--background takes {bg.data.info.shape} images but the model "
                          f"takes {model.data.info.shape}")
    if _binarized(bg) != _binarized(model):
        raise GankitError("--background and the model must both model binarised images, or "
                          "both grey levels (data.binarize)")
    if not getattr(bg.cfg.data, "perturb", 0):
        from gankit.log import note
        note("--background was not trained on perturbed inputs (data.perturb = 0): the ratio "
             "of Ren et al. 2019 expects a background model")


def _binarized(model) -> bool:
    return getattr(model.cfg.data, "binarize", "none") == "dynamic"


def _model_input(images: torch.Tensor, model, notes: list[str]) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, C, H, W) in [-1, 1] as the model trained on them:
    binarised once (held-out seed) for a model of binarised data."""
    if _binarized(model):
        images = binarized_once(images)
        notes.append(f"binarised once (seed {HELDOUT_BINARIZE_SEED}) as the model's data")
    return images.float() / 127.5 - 1


def _truth(found: list[tuple[Images, bool]], normal_classes) -> np.ndarray | None:
    """Per image: anomalous (from --outliers, or a label outside ``normal_classes``); None
    when neither says."""
    if normal_classes is None and not any(o for _, o in found):
        return None
    parts = []
    for f, is_out in found:
        if normal_classes is not None and not is_out:
            if f.labels is None:
                raise GankitError(f"--normal-classes: {f.source} has no labels (use a "
                                  "built-in split or an .npz with a 'labels' array)")
            parts.append(~np.isin(f.labels.numpy(), list(normal_classes)))
        else:
            parts.append(np.full(len(f), is_out))
    return np.concatenate(parts)


def _protocol(model, method: Method, k, bg, background) -> dict[str, Any]:
    proto: dict[str, Any] = {"objective": model.cfg.objective.name, "step": model.c.step}
    if method.needs & {caps.LIKELIHOOD, caps.ELBO} and hasattr(model.objective,
                                                                "likelihood_protocol"):
        proto["likelihood"] = model.objective.likelihood_protocol(k)
    proto |= method.protocol
    if method.name == "elbo":
        proto["elbo_samples"] = k or 1
    if caps.ANOMALY in method.needs:
        proto |= model.objective.anomaly_protocol()
    if bg is not None:
        proto["background"] = {"run": str(background), "step": bg.c.step,
                               "perturb": getattr(bg.cfg.data, "perturb", 0.0)}
    return proto


def write(result: Scored, images: torch.Tensor, out: Path) -> list[Path]:
    """The CSV (one row per image), the summary JSON and the figures beside ``out``; an
    earlier scoring's ``<stem>-hist.png`` is removed (with a note) when this one has no
    truth and the summary it replaces had an evaluation."""
    stem = out.with_suffix("")
    extra = sorted(result.values)

    truth = [] if result.anomalous is None else [result.anomalous.astype(int)]

    def rows(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["name", "input", "score", *extra, "method"] + ["anomalous"] * len(truth))
            for i, name in enumerate(result.names):
                w.writerow([name, result.inputs[i], repr(float(result.scores[i])),
                            *(repr(float(result.values[k][i])) for k in extra),
                            result.summary["method"], *(int(t[i]) for t in truth)])

    outputs.write_via(out, rows)
    summary = stem.with_name(stem.name + ".json")
    earlier = read_json(summary)          # the summary it replaces; None: none, unreadable
    outputs.write_via(summary, lambda tmp: tmp.write_text(
        json.dumps(result.summary, indent=1, allow_nan=False) + "\n"))
    files = [out, summary, *evaluate.sheets(images, result.scores, stem)]
    hist = stem.with_name(stem.name + "-hist.png")
    if result.anomalous is not None:
        ev = result.summary["evaluation"]
        title = (f"{result.summary['method']}: AUROC {ev['auroc']:.4f}, "
                 f"AUPRC {ev['auprc']:.4f}")
        files.append(evaluate.histogram(result.scores, result.anomalous, hist, title))
    elif hist.is_file() and earlier is not None and "evaluation" in earlier:
        hist.unlink()            # the earlier scoring's, whose truth this one has not
        note(f"removed {hist.name}: it showed the earlier scoring's truth, this one has none")
    return files
