"""What a run folder holds, read for its pages: logged series with their meaning, direction
and protocol, pictures, checkpoints, ``gankit eval`` results, the resolved config.

Everything is read from the files (``config.yaml``, ``metrics.jsonl``, ``samples/``,
``plots/``, ``checkpoints/``, ``eval-*.json``), so a page can be made while a run trains, after
it ended, or for a run of an older gankit; nothing here loads a network.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gankit.config import EvalConfig, LogConfig, flatten, load_yaml
from gankit.errors import GankitError
from gankit.fileio import read_json
from gankit.metrics import protocol
from gankit.run import COUNTERS, RunDir

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
SAMPLE_FILE = re.compile(r"^step-(\d+)\.png$")        # samples/step-XXXXXXXX.png
# written by `gankit eval`: eval-[best-]STEP.json, and -2, -3 ... for other results at a step
EVAL_ANY = re.compile(r"^eval-(best-)?(\d+)(-\d+)?\.json$")
TENSORBOARD_GLOB = "events.out.tfevents.*"

# Sort order of logged keys: scores first, then what training logs about itself.
_GROUPS = (("loss/", 2), ("D(", 3), ("D_", 3), ("grad_norm/", 5), ("lr/", 6),
           ("skipped_updates", 7))


@dataclass
class Series:
    """One key of ``metrics.jsonl``: ``points`` are its finite values as (step, value);
    ``last`` the newest logged value as logged (may be 'nan'); ``metric`` the registered
    metric that returns it (None: a training scalar); ``direction`` "min", "max" or None
    (not a score; ``gankit.metrics.protocol``); ``protocol``: how it was measured."""

    key: str
    points: list[tuple[int, float]]
    last: Any
    metric: str | None
    meaning: str
    direction: str | None
    protocol: str

    @property
    def best(self) -> tuple[int, float] | None:
        """(step, value) of the best finite value by ``direction`` (first one on ties); None
        for keys that are not scores or never finite."""
        if self.direction is None or not self.points:
            return None
        pick = min if self.direction == "min" else max
        return pick(self.points, key=lambda p: p[1])

    @property
    def direction_words(self) -> str:
        return protocol.DIRECTION_WORDS[self.direction]


@dataclass
class RunRecord:
    """A run folder as read from its files (``load_run``)."""

    path: Path
    config: dict[str, Any]           # config.yaml as saved (the resolved config)
    rows: list[dict[str, Any]]       # metrics.jsonl
    series: dict[str, Series]        # ordered: scores, losses, outputs, norms, rates

    def counter(self, key: str, default: Any = None) -> Any:
        """The newest logged value of a counter (``step``, ``images_seen``, ``seconds``)."""
        return next((r[key] for r in reversed(self.rows) if key in r), default)

    @property
    def planned_steps(self) -> int | None:
        return (self.config.get("train") or {}).get("steps")

    def section_name(self, section: str) -> str:
        node = self.config.get(section)
        return node.get("name", "?") if isinstance(node, dict) else str(node)


def load_run(path: Path | str) -> RunRecord:
    """Read a run folder. GankitError (one line) when ``path`` is not a run folder or its
    config cannot be read."""
    run = RunDir.open(Path(path))
    config = load_yaml(run.config_path)
    rows = run.read_metrics()
    return RunRecord(run.path, config, rows, collect_series(rows, config))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def collect_series(rows: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Series]:
    """Every key logged in ``rows`` except the counters, with what it is (scores first)."""
    catalog = protocol.catalog()
    out = {}
    for key in dict.fromkeys(k for r in rows for k in r if k not in COUNTERS):
        logged = [r for r in rows if key in r]
        points = [(int(r.get("step", 0)), float(r[key])) for r in logged if _number(r[key])]
        metric, direction = catalog.get(key, (None, None))
        out[key] = Series(key, points, logged[-1][key], metric, meaning(key, metric, config),
                          direction, measured(key, metric, config))
    return dict(sorted(out.items(), key=lambda item: group_rank(item[1])))


def group_rank(s: Series) -> int:
    """0 for scores, 1 other metric values, then losses, outputs, others, norms, rates."""
    if s.metric is not None:
        return 0 if s.direction else 1
    return next((r for prefix, r in _GROUPS if s.key.startswith(prefix)), 4)


def meaning(key: str, metric: str | None, config: dict[str, Any]) -> str:
    """What a logged key is: the metric's summary, or a phrase for what training logs (the
    config's ``optim`` section names the phases: ``loss/<phase>`` is what a phase's optimizer
    minimises, other ``loss/`` keys are terms of those losses)."""
    from gankit.plots.common import TITLES

    if metric is not None:
        return protocol.metric(metric).summary
    name = key.split("/", 1)[-1]
    phases = config.get("optim") or {}
    for prefix, text in (("loss/", f"loss the {name} phase minimises" if name in phases
                          else f"loss term {name}"),
                         ("grad_norm/", f"gradient norm of the {name} phase (before clipping)"),
                         ("lr/", f"learning rate of the {name} phase")):
        if key.startswith(prefix):
            return text
    if key.startswith(("D(", "D_")):
        return "mean discriminator output"
    if key == "skipped_updates":
        return "updates skipped by the NaN/Inf guard"
    return next((t for k, t in TITLES.items() if key.startswith(k)), "logged by the objective")


def measured(key: str, metric: str | None, config: dict[str, Any]) -> str:
    """How a logged key was measured, from the run's config (eval.*, log.every): for a key
    of a metric in ``eval.metrics``, what the metric says it reads with those settings
    (``Metric.measured_on``); a metric's key the objective logs itself (the training
    ``bpd`` of a PixelCNN run from before it became ``bpd/train``) is a training scalar."""
    section = config.get("eval") or {}
    if metric is not None and metric in section.get("metrics", []):
        ev = EvalConfig.model_fields
        every = section.get("every", ev["every"].default)
        n = section.get("n", ev["n"].default)
        options = protocol.EvalOptions(iw_samples=section.get("iw_samples"))
        return (f"metric {metric}: every {every} steps and at the end, "
                f"{protocol.metric(metric).measured_on(n, options=options)}")
    if key.startswith("lr/"):
        return "at the logged step"
    if key == "skipped_updates":
        return "running total"
    every = (config.get("log") or {}).get("every", LogConfig.model_fields["every"].default)
    if every == 1:
        return "mean over each step's updates"
    return f"mean over each logged interval of {every} steps"


# ---------------------------------------------------------------- files of the run
def data_uri(path: Path) -> str:
    """The file as a ``data:`` URI (PNG or JPEG), for pages that need no other file."""
    return encode(path.read_bytes(), IMAGE_TYPES[path.suffix.lower()])


def encode(data: bytes, kind: str) -> str:
    """``data:<kind>;base64,...``"""
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def picture(root: Path, path: Path, caption: str) -> dict[str, str]:
    """{"name": path relative to ``root`` (posix), "src": data URI, "caption"}."""
    return {"name": path.relative_to(root).as_posix(), "src": data_uri(path), "caption": caption}


def pictures(root: Path) -> dict[str, list[dict[str, str]]]:
    """Every picture of a run folder: ``samples`` (samples/step-N.png, oldest first),
    ``figures`` (under plots/) and ``other`` (any other PNG/JPEG, e.g. older runs' files)."""
    out: dict[str, list[dict[str, str]]] = {"samples": [], "figures": [], "other": []}
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_TYPES
                   and p.is_file() and not p.name.startswith("."))
    steps = {p: SAMPLE_FILE.match(p.name) for p in files if p.parent == root / "samples"}
    for p in sorted((p for p in steps if steps[p]), key=lambda p: int(steps[p].group(1))):
        out["samples"].append(picture(root, p, f"step {int(steps[p].group(1))}"))
    for p in files:
        rel = p.relative_to(root)
        if steps.get(p):
            continue
        group = "figures" if rel.parts[0] == "plots" else "other"
        out[group].append(picture(root, p, rel.as_posix()))
    return out


def checkpoints(root: Path) -> list[dict[str, str]]:
    """The run's checkpoint files: {"href": relative link, "name", "size"}."""
    return [{"href": p.relative_to(root).as_posix(), "name": p.name,
             "size": f"{p.stat().st_size / 1e6:.1f} MB"}
            for p in sorted((root / "checkpoints").glob("*.safetensors"))]


def read_evals(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """(path, JSON object) of the ``gankit eval`` results among ``paths`` that can be read,
    in the given order."""
    results = [(p, read_json(p)) for p in paths]
    return [(p, result) for p, result in results if result is not None]


def eval_results(root: Path) -> list[dict[str, Any]]:
    """The results ``gankit eval`` saved (eval-[best-]STEP[-N].json: -N are other results
    at the same step, kept beside the first), by step, then the newest checkpoint's before
    the best one's, then by N: {"name", "step", "values": [(key, value, direction words)],
    "protocol": pretty JSON}. Unreadable files are left out."""
    catalog = protocol.catalog()
    out = []
    for p, result in read_evals(sorted((p for p in root.glob("eval-*.json")
                                        if EVAL_ANY.match(p.name)), key=_eval_order)):
        described = result.pop("protocol", {})
        values = [(k, v, protocol.DIRECTION_WORDS[catalog.get(k, (None, None))[1]])
                  for k, v in result.items() if k not in ("step", "checkpoint")]
        out.append({"name": p.name, "step": result.get("step"), "values": values,
                    "protocol": json.dumps(described, indent=1, sort_keys=True)})
    return out


def latest_evals(root: Path) -> dict[str, dict[str, Any]]:
    """The ``gankit eval`` value of every key in a run folder that is best measured at the
    newest step: key -> {"value", "step", "file", "how": 'n=1000, k=5000, seed=7'} (the
    seed of the generated samples, when recorded: other seeds are other draws). Of the results
    (eval-[best-]STEP[-N].json) holding a key, the one of the highest step wins, then the one
    with the most samples n (held-out examples or generated samples), then the most
    importance samples k (``iw_samples``), then the file written last; unreadable files are
    skipped."""
    out: dict[str, dict[str, Any]] = {}
    ranks: dict[str, tuple] = {}
    files = [p for p in root.glob("eval-*.json") if EVAL_ANY.match(p.name)]
    for p, result in read_evals(sorted(files, key=lambda p: p.stat().st_mtime)):
        described = result.get("protocol") or {}
        for key, value in result.items():
            if key in ("step", "checkpoint", "protocol") or not _number(value):
                continue
            entry = catalog_entry(key)
            how = described.get(entry[0], {}) if entry else {}
            n, k = _samples(how)
            seed = how.get("seed_generated")
            rank = (result.get("step") or 0, n, k)
            if key not in ranks or rank >= ranks[key]:
                ranks[key] = rank
                out[key] = {"value": value, "step": result.get("step"), "file": p.name,
                            "how": ", ".join([f"n={n}"] * bool(n) + [f"k={k}"] * bool(k)
                                             + [f"seed={seed}"] * (seed is not None))}
    return out


def _eval_order(path: Path) -> tuple[int, str, int]:
    """Sort key of an eval-[best-]STEP[-N].json name: step, best or not, N (1 for none)."""
    best, step, again = EVAL_ANY.match(path.name).groups()
    return int(step), best or "", int(again[1:]) if again else 1


def catalog_entry(key: str) -> tuple[str, str | None] | None:
    """(metric, direction) of a key some registered metric returns, else None."""
    return protocol.catalog().get(key)


def _samples(described: dict[str, Any]) -> tuple[int, int]:
    """(n, k) from a metric's recorded protocol: held-out examples or generated samples, and
    importance samples (0 when not recorded)."""
    n = described.get("n_heldout", described.get("n_generated")) or 0
    return int(n), int(described.get("iw_samples") or 0)


def has_tensorboard(root: Path) -> bool:
    return any(root.glob(TENSORBOARD_GLOB))


# ---------------------------------------------------------------- several runs
def config_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Every key of the runs' flattened configs, in first-seen order: {"key", "values": one
    text per run ('' where a run lacks the key), "differs": bool}."""
    flat = [flatten(r.config) for r in records]
    keys = dict.fromkeys(k for f in flat for k in f)
    rows = []
    for key in keys:
        values = [json.dumps(f[key]) if key in f else "" for f in flat]
        rows.append({"key": key, "values": values, "differs": len(set(values)) > 1})
    return rows


def labels(records: list[RunRecord]) -> list[str]:
    """A short, distinct name per run: the folder name, or its path when names repeat."""
    names = [r.path.name for r in records]
    if len(set(names)) == len(names):
        return names
    return [str(r.path) for r in records]


def require_runs(paths: list[Path]) -> list[RunRecord]:
    """The runs of ``paths`` (at least two different folders); GankitError (one line)
    otherwise."""
    if len(paths) < 2:
        raise GankitError("gankit compare needs at least two run folders")
    first: dict[Path, Path] = {}          # folder (symbolic links followed) -> as given
    for path in paths:
        same = first.get(path.resolve())
        if same is not None:
            twice = f"{path} is given twice" if str(same) == str(path) else \
                f"{same} and {path} are the same run folder"
            raise GankitError(f"{twice}; gankit compare compares different runs")
        first[path.resolve()] = path
    return [load_run(p) for p in paths]
