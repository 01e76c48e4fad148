import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INCEPTION_REFERENCE = REPO.parent / "shared" / "reference" / "inception"


@pytest.fixture(scope="session")
def stand_in_inception_weights(tmp_path_factory) -> Path:
    """Deterministic weights in the exact pt_inception-2015-12-05 layout (shared/reference)."""
    import importlib.util

    import torch

    from gankit.eval.inception import FID_WEIGHTS_FILENAME
    script = INCEPTION_REFERENCE / "make_weights.py"
    if not script.is_file():
        pytest.skip("shared/reference/inception not available")
    spec = importlib.util.spec_from_file_location("make_weights", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = tmp_path_factory.mktemp("inception") / FID_WEIGHTS_FILENAME
    torch.save(module.stand_in_weights(str(INCEPTION_REFERENCE / "layout.json")), path)
    return path


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("GANKIT_DATA") or REPO.parent / "shared" / "data")
    if not (root / "mnist").is_dir():
        pytest.skip("MNIST files not available (set GANKIT_DATA)")
    return root


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests never download; they read the verified files in ../shared/data."""
    monkeypatch.setenv("GANKIT_OFFLINE", "1")
    shared = REPO.parent / "shared" / "data"
    if "GANKIT_DATA" not in os.environ and (shared / "mnist").is_dir():
        monkeypatch.setenv("GANKIT_DATA", str(shared))
