import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("GANKIT_DATA", REPO.parent / "shared" / "data"))
    if not (root / "mnist").is_dir():
        pytest.skip("MNIST files not available (set GANKIT_DATA)")
    return root


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setenv("GANKIT_OFFLINE", "1")
