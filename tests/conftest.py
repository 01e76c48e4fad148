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


class FakeInception:
    """A cheap stand-in for the FID Inception extractor, for tests of the metric plumbing
    (work sharing, best checkpoint), not of the network: fixed random projections of the
    8x8-average-pooled RGB image (B, 3, H, W) to pool3 (B, 2048) and logits (B, 1008)."""

    device = "cpu"

    def __init__(self):
        import torch
        g = torch.Generator().manual_seed(0)
        self.w_pool3 = torch.randn(3 * 8 * 8, 2048, generator=g)
        self.w_logits = torch.randn(3 * 8 * 8, 1008, generator=g) * 0.1

    def __call__(self, images):
        import torch.nn.functional as F
        x = images.float() if images.dtype.is_floating_point else images.float() / 255
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x                 # (B, 3, H, W)
        x = F.adaptive_avg_pool2d(x, 8).flatten(1)                           # (B, 192)
        return x @ self.w_pool3, x @ self.w_logits

    def protocol(self) -> dict:
        return {"feature_network": "fake (tests)", "feature_layer": "projection"}


@pytest.fixture
def fake_inception(monkeypatch, stand_in_inception_weights) -> FakeInception:
    """Every Inception metric of this process reads FakeInception features; the stand-in
    weights file still exists so that the weights are found when a run is validated."""
    from gankit.eval import api as eval_api
    fake = FakeInception()
    monkeypatch.setattr(eval_api, "get_extractor", lambda *a, **k: fake)
    return fake


@pytest.fixture
def small_inception(monkeypatch, fake_inception):
    """FakeInception cut to its first 64 pool3 features: FID on folders in milliseconds
    (a 64 x 64 covariance instead of 2048 x 2048), for tests of readers and caches."""
    from gankit.eval import api as eval_api

    class Small:
        device = "cpu"

        def __call__(self, images):
            pool3, logits = fake_inception(images)
            return pool3[:, :64], logits

        def protocol(self) -> dict:
            return {**fake_inception.protocol(), "feature_layer": "projection[:64]"}

    small = Small()
    monkeypatch.setattr(eval_api, "get_extractor", lambda *a, **k: small)
    return small


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
