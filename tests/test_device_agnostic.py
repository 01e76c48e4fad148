"""GPU code paths run on the CPU: AMP, GradScaler, channels_last, sync BN, device choice and
imports. On a CPU they must be no-ops that leave training bit-identical."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from gankit.config import build_config, incompatible_keys
from gankit.errors import ConfigError, GankitError
from gankit.objectives import functional as L
from gankit.train.trainer import Trainer, channels_last, resolve_device

TOY = ["train.batch_size=16", "model.g_hidden=16", "model.d_hidden=16", "model.g_depth=2",
       "model.d_depth=2", "train.device=cpu"]


def _train(overrides: list[str], steps: int = 3) -> Trainer:
    t = Trainer(build_config(None, TOY + overrides))
    for _ in range(steps):
        t.train_step()
    return t


def _same_weights(a: Trainer, b: Trainer) -> bool:
    sa, sb = a.nets.state_dict(), b.nets.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_amp_on_cpu_is_a_no_op(amp):
    base, t = _train([]), _train([f"train.amp={amp}"])
    assert not t.amp_on and not any(s.is_enabled() for s in t.scalers.values())
    assert _same_weights(base, t)
    assert "scalers" not in t.state() or t.state()["scalers"] == {}


def test_channels_last_and_sync_bn_leave_a_cpu_run_unchanged():
    base = _train(["objective=wgan-gp"])
    t = _train(["objective=wgan-gp", "train.channels_last=true", "train.sync_bn=true"])
    assert _same_weights(base, t)
    assert t.fingerprint() == base.fingerprint()


def test_channels_last_converts_image_batches_only():
    x = torch.randn(2, 3, 4, 5)
    y = channels_last(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, y)
    z = torch.randn(4, 2)
    assert channels_last(z) is z and channels_last(7) == 7


def test_gradient_penalty_ignores_an_enclosing_autocast():
    """The penalty is computed in fp32 outside autocast: under a bf16 autocast (available on
    CPU) it returns exactly the fp32 value and an fp32 tensor."""
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    plain = L.gradient_penalty(D, real, fake, torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = L.gradient_penalty(D, real.bfloat16(), fake.bfloat16(),
                                  torch.Generator().manual_seed(1))
    assert auto[0].dtype == torch.float32
    # the inputs were rounded to bf16 above; the maths after that is fp32
    again = L.gradient_penalty(D, real.bfloat16().float(), fake.bfloat16().float(),
                               torch.Generator().manual_seed(1))
    assert torch.equal(auto[0], again[0])
    assert plain[0].dtype == torch.float32


def test_device_choice():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(GankitError, match="no CUDA"):
            resolve_device("cuda")


def test_cli_device_option_sets_train_device(tmp_path):
    from gankit.cli import main
    out = tmp_path / "run"
    main(["train", "--steps", "1", "--device", "cpu", "--out", str(out),
          *(f"--set={o}" for o in TOY[:-1] + ["log.progress=false", "log.sample_at=[]",
                                          "log.figures=false"])])
    assert "device: cpu" in (out / "config.yaml").read_text()


def test_imports_pull_in_no_gpu_or_compiler_modules():
    code = """
import sys
import gankit
assert "torch" not in sys.modules, "import gankit must stay light"
import torch
before = set(sys.modules)           # what torch itself loads is not ours to judge
import gankit.train.trainer, gankit.train.distributed, gankit.cli, gankit.api
bad = [m for m in set(sys.modules) - before if m.split(".")[0] in ("apex", "triton")
       or m.startswith(("torch._dynamo", "torch._inductor", "torch.cuda"))]
assert not bad, bad
"""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_amp_code_path_runs_under_a_cpu_autocast():
    """The CUDA AMP path (autocast + a GradScaler per phase + the fp32 gradient penalty),
    forced on for the CPU's bf16 autocast and CPU grad scalers: it trains, the scalers' state
    is checkpointed, and it stays close to the fp32 run."""
    base = _train(["objective=wgan-gp"], steps=2)
    t = Trainer(build_config(None, TOY + ["objective=wgan-gp"]))
    t.amp_on, t.amp_dtype = True, torch.bfloat16
    t.scalers = {n: torch.amp.GradScaler("cpu", init_scale=2.0**8) for n in t.scalers}
    for _ in range(2):
        t.train_step()
    assert set(t.state()["scalers"]) == {"D", "G"}
    assert all(s.get_scale() > 0 for s in t.scalers.values())
    a, b = base.nets.state_dict(), t.nets.state_dict()
    for k in a:           # the updates are ~1e-2; bf16 rounding moves them by ~1e-3
        assert torch.isfinite(b[k]).all()
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=5e-3, msg=k)
    assert any(not torch.equal(a[k], b[k]) for k in a)      # autocast really was on


def test_flush_denormal_holds_for_training_steps_only(monkeypatch):
    """``train.flush_denormal`` switches this thread to flush-to-zero for each training step
    (CPU only) and back as it was after it: later arithmetic, evaluations and runs keep
    subnormals. It needs one thread (the switch is per thread) and may change on resume."""
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU has no flush-to-zero mode (SSE3)")
    calls, tiny = [], torch.tensor([1e-40])             # subnormal in fp32
    real = torch.set_flush_denormal
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: calls.append(on) or real(on))
    _train([], steps=1)
    assert calls == []
    t = _train(["train.flush_denormal=true", "train.threads=1"], steps=2)
    assert calls == [True, False, True, False] and (tiny * 1.0).item() != 0.0
    with t._step_arithmetic():
        assert (tiny * 1.0).item() == 0.0
    assert (tiny * 1.0).item() != 0.0
    real(True)                                          # a caller's own switch is kept
    try:
        with t._step_arithmetic():
            assert (tiny * 1.0).item() == 0.0
        assert (tiny * 1.0).item() == 0.0
    finally:
        real(False)
    with pytest.raises(ConfigError, match="train.flush_denormal needs train.threads=1"):
        build_config(None, TOY + ["train.flush_denormal=true", "train.threads=0"])
    a = build_config(None, TOY + ["train.threads=1"])
    b = build_config(None, TOY + ["train.threads=1", "train.flush_denormal=true"])
    assert incompatible_keys(a, b) == []
