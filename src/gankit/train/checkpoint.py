"""Checkpoints as single safetensors files: tensors plus a JSON header, no pickle.

Layout of one file ``ckpt-00001000.safetensors``:
  tensors   ``<group>/<path>`` (e.g. ``nets/G/net.0.weight``, ``optim/D/state/0/exp_avg``)
  metadata  ``{"gankit": <JSON>, "sha256": <hex>}``; the JSON holds everything that is not a
            tensor (step, config, optimizer hyper-parameters, data position) and the digest
            covers every tensor's bytes and the JSON, so a torn or bit-flipped file is detected.
Writes go to a temporary file that is flushed, fsynced and renamed over the final name; older
checkpoints are only pruned once the new one is complete.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from gankit.errors import CheckpointError
from gankit.fileio import atomic_write

CKPT_RE = re.compile(r"^ckpt-(\d{8})\.safetensors$")
PICKLE_MAGIC = tuple(bytes([0x80, v]) for v in range(2, 6))   # pickle protocols 2-5
ZIP_MAGIC = b"PK\x03\x04"                                    # torch.save archives


# ---------------------------------------------------------------- nested <-> flat
def flatten_state(state: dict[str, Any], prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state into flat tensors and a JSON skeleton with {"$t": key} leaves."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, torch.Tensor):
            tensors[path] = node.detach().to("cpu").contiguous().clone()
            return {"$t": path}
        if isinstance(node, dict):
            return {"$d": [[str(k), type(k).__name__, walk(v, f"{path}/{k}")]
                           for k, v in node.items()]}
        if isinstance(node, (list, tuple)):
            return {"$l" if isinstance(node, list) else "$u":
                    [walk(v, f"{path}/{i}") for i, v in enumerate(node)]}
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot checkpoint a {type(node).__name__} at {path}")

    return tensors, walk(state, prefix)


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "$t" in skeleton:
            return tensors[skeleton["$t"]]
        if "$d" in skeleton:
            key_types = {"int": int, "str": str}
            return {key_types.get(t, str)(k): unflatten_state(v, tensors)
                    for k, t, v in skeleton["$d"]}
        if "$l" in skeleton:
            return [unflatten_state(v, tensors) for v in skeleton["$l"]]
        if "$u" in skeleton:
            return tuple(unflatten_state(v, tensors) for v in skeleton["$u"])
    return skeleton


def _digest(tensors: dict[str, torch.Tensor], header: str) -> str:
    h = hashlib.sha256(header.encode())
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# ---------------------------------------------------------------- file I/O
def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tensors, skeleton = flatten_state(state, "s")
    header = json.dumps(skeleton, sort_keys=True)
    meta = {"gankit": header, "sha256": _digest(tensors, header), "format": "gankit-ckpt-1"}
    try:
        atomic_write(Path(path), st_save(tensors, metadata=meta))
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e}") from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and verify a checkpoint. Never unpickles: pickle files are refused outright."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    try:
        meta = _read_metadata(data)
        tensors = st_load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        if data[:2] in PICKLE_MAGIC or data[:4] == ZIP_MAGIC:
            raise CheckpointError(f"{path} is a pickle/torch.save file; gankit only loads "
                                  "safetensors checkpoints (pickles can run arbitrary code)") from None
        raise CheckpointError(f"{path} is not a valid gankit checkpoint ({e})") from None
    if meta.get("format") != "gankit-ckpt-1" or "gankit" not in meta:
        raise CheckpointError(f"{path} is not a gankit checkpoint")
    if _digest(tensors, meta["gankit"]) != meta.get("sha256"):
        raise CheckpointError(f"{path} is corrupt (checksum mismatch)")
    return unflatten_state(json.loads(meta["gankit"]), tensors)


def _read_metadata(data: bytes) -> dict[str, str]:
    n = int.from_bytes(data[:8], "little")
    if len(data) < 8 or n <= 0 or n > len(data) - 8:
        raise ValueError("bad header length")
    header = json.loads(data[8:8 + n])
    if not isinstance(header, dict):
        raise ValueError("bad header")
    return header.get("__metadata__") or {}


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"ckpt-{step:08d}.safetensors"


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in a folder, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def newest_intact(folder: Path) -> tuple[Path, dict[str, Any], list[str]]:
    """The newest checkpoint that verifies, plus messages about any skipped corrupt ones."""
    skipped = []
    for path in list_checkpoints(folder):
        try:
            return path, load_checkpoint(path), skipped
        except CheckpointError as e:
            skipped.append(str(e))
    detail = f" ({'; '.join(skipped)})" if skipped else ""
    raise CheckpointError(f"no intact checkpoint in {folder}{detail}")


def prune(folder: Path, keep: int, protect: tuple[Path, ...] = ()) -> None:
    for path in list_checkpoints(folder)[keep:]:
        if path not in protect:
            path.unlink(missing_ok=True)
    for tmp in Path(folder).glob(".ckpt-*.tmp"):   # leftovers of an interrupted write
        tmp.unlink(missing_ok=True)
