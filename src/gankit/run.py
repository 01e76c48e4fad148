"""A run folder: resolved config, metrics.jsonl, samples/, plots/, checkpoints/."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from gankit.config import RunConfig, dump_yaml
from gankit.errors import GankitError
from gankit.fileio import atomic_write

CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.jsonl"
COUNTERS = ("step", "images_seen", "seconds")     # in every metrics.jsonl record; not metrics


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_NAME

    def sub(self, name: str) -> Path:
        folder = self.path / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    # ---- creation -----------------------------------------------------------------
    @staticmethod
    def check_new(path: Path) -> None:
        """Raise GankitError unless ``path`` can become a new run folder (absent or empty)."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise GankitError(f"run folder {path} exists and is not a folder")
        if (path / CONFIG_NAME).exists() or (path.is_dir() and any(path.iterdir())):
            raise GankitError(f"{path} is not empty; choose another --out, or continue it with "
                              f"`gankit resume {path}`")

    @classmethod
    def create(cls, path: Path, cfg: RunConfig) -> "RunDir":
        path = Path(path)
        cls.check_new(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            run = cls(path)
            run.write_config(cfg)
        except OSError as e:
            raise GankitError(f"cannot create run folder {path}: {e.strerror or e}") from None
        return run

    @classmethod
    def open(cls, path: Path) -> "RunDir":
        run = cls(Path(path))
        if Path(path).is_file():
            raise GankitError(f"{path} is a file, not a gankit run folder (name the folder "
                              f"that holds {CONFIG_NAME})")
        if not run.config_path.exists():
            raise GankitError(f"{path} is not a gankit run folder (no {CONFIG_NAME})")
        return run

    def write_config(self, cfg: RunConfig) -> None:
        atomic_write(self.config_path, dump_yaml(cfg.to_dict()).encode())

    def read_config(self) -> RunConfig:
        from gankit.config import from_saved, load_yaml
        return from_saved(load_yaml(self.config_path))

    # ---- metrics ------------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        line = json.dumps({k: _jsonable(v) for k, v in record.items()})
        with open(self.metrics_path, "a") as f:
            f.write(line + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue    # a line torn by a crash
        return rows

    def truncate_metrics(self, step: int) -> None:
        """Drop lines logged after ``step`` (they are about to be recomputed by a resume)."""
        if not self.metrics_path.exists():
            return
        keep = [json.dumps(r) for r in self.read_metrics() if r.get("step", 0) <= step]
        atomic_write(self.metrics_path, ("\n".join(keep) + "\n" if keep else "").encode())


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)     # JSON has no NaN/Inf
    return v


def default_run_path(preset: str | None) -> Path:
    import time
    root = Path(os.environ.get("GANKIT_RUNS", "runs"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / f"{Path(preset or 'ring').stem}-{stamp}"
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path
