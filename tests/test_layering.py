"""The package structure: no import cycles between gankit's parts (lazy imports count), the
shared vocabulary in ``gankit.core`` depends on none of the parts that use it, and the config
module does not reach the training engine."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gankit"


def part(module: str) -> str | None:
    """gankit.train.trainer -> "train"; gankit.config -> "config"."""
    bits = module.split(".")
    return bits[1] if bits[0] == "gankit" and len(bits) > 1 else None


def import_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        me = part(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                other = part(t)
                if other and other != me and me != "__init__":
                    edges[me].add(other)
    return edges


def reachable(edges, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_cycles():
    edges = import_graph()
    cycles = sorted(p for p in edges if p in reachable(edges, p))
    assert not cycles, {p: sorted(edges[p]) for p in cycles}


def test_core_depends_on_none_of_its_users():
    users = {"train", "objectives", "nn", "plots", "metrics", "config", "eval", "api", "cli"}
    assert not reachable(import_graph(), "core") & users


def test_config_does_not_reach_the_training_engine():
    assert "train" not in reachable(import_graph(), "config")
