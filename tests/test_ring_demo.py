"""The default demo (``gankit train`` = the ``ring`` preset) meets its target on one seed:
8/8 modes and >= 97 % high-quality samples (toy2d, 2,500 samples) at the final step.
Seed 0 measured 8 modes, hq_fraction 0.9700 (2,425 of 2,500), exactly on the threshold: the
weakest of seeds 0-4 (benchmarks/RESULTS.md), so a platform whose float arithmetic differs can
land a sample either side. All five seeds 0-4:
``python benchmarks/ring_seeds.py --seeds 0 1 2 3 4 --out DIR``."""

from __future__ import annotations

import pytest

from gankit import api
from gankit.config import build_config


@pytest.mark.slow
def test_ring_preset_seed0_all_modes_high_quality(tmp_path):
    run = api.train(build_config("ring", ["seed=0", "log.progress=false"]), tmp_path / "ring")
    last = [r for r in run.read_metrics() if "modes" in r][-1]
    assert last["step"] == build_config("ring", []).train.steps
    assert last["modes"] == 8, last
    assert last["hq_fraction"] >= 0.97, last
