"""Data-parallel training (gankit.train.distributed): 2 gloo ranks on this CPU.

The key check: two synchronised ranks end with the weights one process gets when it trains on
the concatenated batch (same real rows, same noise), within 1e-5.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gankit.config import build_config
from gankit.data.images import ImageTensorSource
from gankit.errors import ConfigError
from gankit.train import distributed
from gankit.train.distributed import Dist, rank_rows
from gankit.train.trainer import Callback, Trainer

TOY = ["train.batch_size=16", "model.g_hidden=16", "model.d_hidden=16", "model.g_depth=2",
       "model.d_depth=2", "log.progress=false"]
STEPS = 6


# ------------------------------------------------------------------ helpers run by each rank
CASES = {  # name: (overrides, steps); one pair of processes trains them all (start-up is slow)
    "nonsaturating": (TOY + ["objective=nonsaturating", "seed=3"], STEPS),
    "wgan": (TOY + ["objective=wgan", "seed=4"], STEPS),
    # the gradient penalty differentiates twice: the all-reduce after backward does not mind
    "wgan-gp": (TOY + ["objective=wgan-gp", "train.d_steps=2"], 3),
    # historical averages (objective state) and a virtual-batch-norm G (a reference batch)
    "improved": (TOY + ["objective.historical_averaging=0.1", "model.g_norm=virtual",
                        "model.vbn_reference=8", "seed=5"], STEPS),
}


def _train_and_record(out: str) -> None:
    for name, (overrides, steps) in CASES.items():
        _record(Path(out) / name, overrides, steps)
    _ddp_with_gradient_penalty(Path(out))
    _stops_on_one_rank(Path(out))
    _slot_norm_in_sync(Path(out))


def _slot_norm_batch():
    """8 rows of 2 slots: where (8, 2, 3), flags (8, 2, 1) (slot 1 named by rows 2, 5, 6
    only), and the weights of a loss sum(weights * out). Slot 0 sits at 100, far from 0
    next to its spread, where E[w^2] - mean^2 in fp32 loses the variance."""
    gen = torch.Generator().manual_seed(7)
    where, weights = torch.randn(8, 2, 3, generator=gen), torch.randn(8, 2, 3, generator=gen)
    where[:, 0] += 100
    flags = torch.ones(8, 2, 1)
    flags[[0, 1, 3, 4, 7], 1] = 0
    return where, flags, weights


def _slot_norm_in_sync(out: Path) -> None:
    """Each rank normalises its 4 rows with statistics synced over both (``sync_stats``)."""
    from gankit.nn.captions import SlotNorm
    info, _ = distributed.setup(torch.device("cpu"))
    where, flags, weights = (t[4 * info.rank:4 * info.rank + 4] for t in _slot_norm_batch())
    norm = SlotNorm(2, 3)
    norm.sync_stats = True
    where.requires_grad_(True)
    y = norm(where, flags)
    (weights * y).sum().backward()
    save_file({"y": y.detach(), "grad": where.grad, "mean": norm.running_mean,
               "var": norm.running_var}, str(out / f"slotnorm-rank{info.rank}.safetensors"))


class _AskOnOneRank(Callback):
    """Rank 1 asks to stop at step 2 (as a signal would); rank 0 ends early at step 4 (as the
    evaluation callback does): every rank must follow either."""

    all_ranks = True

    def on_step(self, trainer):
        if trainer.dist.rank == 1 and trainer.c.step == 2:
            trainer.request_stop("SIGTERM")
        if trainer.dist.rank == 0 and trainer.c.step == 4:
            trainer.stop_early("metric stopped improving")


def _stops_on_one_rank(out: Path) -> None:
    t = Trainer(build_config(None, TOY + ["train.steps=10"]), out / "stops")
    first = t.fit([_AskOnOneRank()])
    at_first, t.stop_reason = t.c.step, None
    second = t.fit([_AskOnOneRank()])
    result = {"first": torch.tensor([first, at_first]), "second": torch.tensor([second, t.c.step])}
    save_file(result, str(out / f"stops-rank{t.dist.rank}.safetensors"))


def _ddp_with_gradient_penalty(out: Path) -> None:
    """Why gankit all-reduces gradients itself: check what DistributedDataParallel gives for a
    WGAN-GP critic loss (three forwards, a double backward) against ``average_gradients``."""
    info, _ = distributed.setup(torch.device("cpu"))
    gen = torch.Generator().manual_seed(info.rank)
    real, fake, eps = torch.randn(8, 2, generator=gen), torch.randn(8, 2, generator=gen), \
        torch.rand(8, 1, generator=gen)

    def loss(D):
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
        return D(fake).mean() - D(real).mean() + 10 * (grad.norm(dim=1) - 1).square().mean()

    result = {}
    for mode in ("plain", "find_unused_parameters"):
        torch.manual_seed(0)
        D = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.LeakyReLU(0.2),
                                torch.nn.Linear(8, 1))
        loss(D).backward()
        info.average_gradients(list(D.parameters()), True)
        ours = torch.cat([p.grad.flatten() for p in D.parameters()])
        D.zero_grad(set_to_none=True)
        ddp = torch.nn.parallel.DistributedDataParallel(
            D, find_unused_parameters=mode != "plain")
        loss(ddp).backward()
        theirs = torch.cat([p.grad.flatten() for p in D.parameters()])
        result[mode] = torch.tensor(float((ours - theirs).abs().max()))
    if info.is_main:
        save_file(result, str(out / "ddp.safetensors"))


def _record(out: Path, overrides: list[str], steps: int) -> None:
    """Train ``steps`` steps, keeping every noise draw the objective made on this rank."""
    t = Trainer(build_config(None, overrides))
    draws: list[dict[str, torch.Tensor]] = []
    sample_inputs = t.objective.sample_inputs

    def recording(n, rng):
        inputs = sample_inputs(n, rng)
        draws.append({k: v.clone() for k, v in inputs.items()})
        return inputs

    t.objective.sample_inputs = recording
    for _ in range(steps):
        t.train_step()
    scalars = t.pop_scalars()                           # a collective: both ranks call it
    tensors = {f"w/{k}": v.contiguous() for k, v in t.nets.state_dict().items()}
    tensors |= {f"z/{i:04d}/{k}": v for i, d in enumerate(draws) for k, v in d.items()}
    tensors |= {f"s/{k}": torch.tensor(v) for k, v in scalars.items()}
    tensors |= {f"o/{k}": v.contiguous() for k, v in t.objective.state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / f"rank{t.dist.rank}.safetensors"))


def _api_train(out: str, overrides: list[str]) -> None:
    from gankit import api
    api.train(build_config(None, overrides), Path(out))


def _weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[2:]: v for k, v in state.items() if k.startswith("w/")}


# ------------------------------------------------------------------ 2 ranks == 1 process
@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    distributed.run_local(_train_and_record, 2, str(out))
    return out


@pytest.mark.parametrize("name", ["nonsaturating", "wgan", "improved"])
def test_two_ranks_match_one_process_on_the_concatenated_batch(recorded, name):
    overrides, steps = CASES[name]
    ranks = [load_file(str(recorded / name / f"rank{r}.safetensors")) for r in range(2)]
    w0, w1 = _weights(ranks[0]), _weights(ranks[1])
    assert all(torch.equal(w0[k], w1[k]) for k in w0), "ranks drifted apart"

    # The reference sees the same real rows (data streams are global; rank r keeps rows
    # [8r, 8r+8)) and, replayed here, the two ranks' noise concatenated in rank order.
    calls = sorted({k.split("/")[1] for k in ranks[0] if k.startswith("z/")})
    replay = iter([{"z": torch.cat([ranks[r][f"z/{c}/z"] for r in range(2)])} for c in calls])
    ref = Trainer(build_config(None, overrides))
    start = {k: v.clone() for k, v in ref.nets.state_dict().items()}

    def replayed(n, rng):
        inputs = next(replay)
        assert inputs["z"].shape[0] == n
        return inputs

    ref.objective.sample_inputs = replayed
    for _ in range(steps):
        ref.train_step()
    assert next(replay, None) is None
    for k, v in ref.nets.state_dict().items():
        torch.testing.assert_close(w0[k], v, rtol=0, atol=1e-5, msg=k)
    # objective state (historical averages): equal on the ranks and to the one process
    for k, v in ref.objective.state_dict().items():
        assert torch.equal(ranks[0][f"o/{k}"], ranks[1][f"o/{k}"]), k
        torch.testing.assert_close(ranks[0][f"o/{k}"], v, rtol=0, atol=1e-5, msg=k)
    # the weights did move, so the comparison means something
    assert any((start[k] - v).abs().max() > 1e-3 for k, v in ref.nets.state_dict().items()
               if v.is_floating_point())
    # logged scalars are the mean over ranks: identical on both
    s0 = {k: v for k, v in ranks[0].items() if k.startswith("s/")}
    assert s0 and all(torch.equal(v, ranks[1][k]) for k, v in s0.items())


def test_slot_norm_synced_over_two_ranks_is_one_process_on_the_whole_batch(recorded):
    from gankit.nn.captions import SlotNorm
    where, flags, weights = _slot_norm_batch()
    norm = SlotNorm(2, 3)
    where.requires_grad_(True)
    y = norm(where, flags)
    (weights * y).sum().backward()
    ranks = [load_file(str(recorded / f"slotnorm-rank{r}.safetensors")) for r in range(2)]
    for key, whole in (("y", y.detach()), ("grad", where.grad)):
        # rounding of sums in another order: 1e-5; E[w^2] - mean^2 would be 8e-4 off in y
        torch.testing.assert_close(torch.cat([r[key] for r in ranks]), whole, rtol=0, atol=1e-4)
    for r in ranks:
        torch.testing.assert_close(r["mean"], norm.running_mean, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(r["var"], norm.running_var, rtol=1e-5, atol=1e-6)


def test_ddp_agrees_with_our_gradient_average_on_a_gradient_penalty(recorded):
    diffs = load_file(str(recorded / "ddp.safetensors"))
    assert set(diffs) == {"plain", "find_unused_parameters"}
    assert all(float(v) < 1e-6 for v in diffs.values()), diffs


def test_a_stop_or_early_stop_on_one_rank_stops_every_rank(recorded):
    for r in range(2):
        got = load_file(str(recorded / f"stops-rank{r}.safetensors"))
        assert got["first"].tolist() == [0, 2]           # interrupted at step 2, like rank 1
        assert got["second"].tolist() == [1, 4]          # ended normally at step 4, like rank 0
    assert (recorded / "stops" / "ckpt-00000002.safetensors").exists()   # rank 0 saved


def test_wgan_gp_double_backward_stays_in_sync(recorded):
    w0, w1 = (_weights(load_file(str(recorded / "wgan-gp" / f"rank{r}.safetensors")))
              for r in range(2))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)


# ------------------------------------------------------------------ a whole run, rank 0 writes
def test_run_writes_once_evaluates_sharded_and_resumes_with_other_rank_counts(tmp_path):
    from gankit import api
    out = tmp_path / "run"
    overrides = TOY + ["train.steps=4", "log.every=2", "log.ckpt_every=2", "log.sample_at=[1]",
                       "eval.metrics=[toy2d]", "eval.every=2", "eval.n=300"]
    distributed.run_local(_api_train, 2, str(out), overrides)
    run = api.RunDir.open(out)
    rows = run.read_metrics()
    loss_steps = [r["step"] for r in rows if "loss/D" in r]
    assert loss_steps == [2, 4]                                  # one line per log, not two
    assert sorted(p.name for p in run.checkpoints.iterdir()) == [
        "ckpt-00000002.safetensors", "ckpt-00000004.safetensors"]
    assert (out / "samples" / "step-00000001.png").exists()
    # The gathered evaluation equals one process sampling the same (final) generator.
    _, trainer, _ = api.load_trainer(out)
    from gankit.metrics.toy import Toy2DMetrics
    local = Toy2DMetrics.evaluate(trainer, 300)
    logged = [r for r in rows if r["step"] == 4 and "modes" in r][-1]
    assert logged["modes"] == local["modes"]
    assert logged["hq_fraction"] == pytest.approx(local["hq_fraction"], abs=1e-9)
    # A 2-rank checkpoint resumes in one process (the data stream is global: it carries on).
    assert trainer.c.step == 4 and trainer.fit(until=6) and trainer.c.step == 6


def test_nproc_launches_the_same_command_under_torchrun():
    cmd = distributed.torchrun_command(2, ["train", "ring", "--out", "r"])
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=2" in cmd
    assert cmd[-6:] == ["-m", "gankit", "train", "ring", "--out", "r"]


@pytest.mark.slow      # three more Python processes (torchrun's agent and two ranks): ~30 s
def test_cli_resumes_a_one_process_run_with_nproc_2(tmp_path):
    from gankit import api
    out = tmp_path / "run"
    api.train(build_config(None, TOY + ["train.steps=2", "log.every=1", "log.sample_at=[]",
                                        "optim.G.schedule=constant",    # extended 2 more steps
                                        "optim.D.schedule=constant"]), out)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    r = subprocess.run([sys.executable, "-m", "gankit", "resume", str(out), "--steps", "2",
                        "--nproc", "2", "--device", "cpu"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("run folder:") == 1                     # rank 0 reports
    rows = api.RunDir.open(out).read_metrics()
    assert [row["step"] for row in rows if "loss/D" in row] == [1, 2, 3, 4]


def test_cli_nproc_refuses_a_batch_the_processes_cannot_share(tmp_path, capsys):
    from gankit.cli import main
    with pytest.raises(SystemExit) as e:
        main(["train", "--nproc", "3", "--out", str(tmp_path / "r"),
              "--set", "train.batch_size=16"])
    assert e.value.code == 2
    assert "divisible by the number of processes (3)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_nproc_checks_the_run_folder_before_starting_processes(tmp_path, capsys):
    from gankit.cli import main
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x").write_text("")
    with pytest.raises(SystemExit) as e:
        main(["train", "--nproc", "2", "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "is not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["resume", str(tmp_path / "r"), "--nproc", "2"])
    assert e.value.code == 2 and "not a gankit run folder" in capsys.readouterr().err


# ------------------------------------------------------------------ pieces, in one process
def test_batch_size_is_global_and_must_divide():
    assert distributed.local_batch_size(256, 4) == 64
    with pytest.raises(ConfigError, match="divisible"):
        distributed.local_batch_size(10, 4)


def test_rank_rows_partition_a_batch():
    for n, world in [(16, 2), (7, 3), (2, 4)]:
        rows = [rank_rows(r, world, n) for r in range(world)]
        assert rows[0].start == 0 and rows[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(rows, rows[1:]))


def _image_source(seed=5):
    images = torch.arange(10 * 3 * 2 * 2, dtype=torch.int64).remainder(256).to(torch.uint8)
    return ImageTensorSource(images.view(10, 3, 2, 2), torch.arange(10) % 3, seed=seed,
                             flip=True)


def test_image_shards_are_the_global_batch_split_and_keep_one_stream():
    whole, ranks = _image_source(), [_image_source(), _image_source()]
    for _ in range(4):                                       # crosses epoch boundaries
        full = whole.next_batch(6)
        parts = [Dist(rank=r, world=2).shard_batch(src, 6) for r, src in enumerate(ranks)]
        for key in ("x", "y"):
            assert torch.equal(torch.cat([p[key] for p in parts]), full[key])
        for src in ranks:
            state, ref = src.state_dict(), whole.state_dict()
            assert state["position"] == ref["position"] and state["epoch"] == ref["epoch"]
            assert torch.equal(state["generator"], ref["generator"])


def test_toy_sources_are_sliced_from_the_global_draw():
    from gankit.registry import DATASETS
    cfg = build_config(None, TOY)
    whole, *ranks = (DATASETS.get("ring").build(cfg.data, seed=1) for _ in range(3))
    full = whole.next_batch(8)["x"]
    parts = [Dist(rank=r, world=2).shard_batch(src, 8)["x"] for r, src in enumerate(ranks)]
    assert torch.equal(torch.cat(parts), full)


def test_single_process_helpers_are_no_ops():
    d = Dist()
    assert d.is_main and not d.enabled and d.any(False) is False
    t = torch.ones(3)
    assert d.mean(t) is t and d.gather_rows(t, 3) is t and d.broadcast_text("x") == "x"
    assert d.average_gradients([], True) is True


def test_sync_bn_is_refused_on_cpu_ranks():
    nets = torch.nn.ModuleDict({"G": torch.nn.BatchNorm1d(3)})
    assert distributed.sync_batchnorm(nets, True, Dist(), torch.device("cpu")) is nets
    with pytest.raises(ConfigError, match="CUDA"):
        distributed.sync_batchnorm(nets, True, Dist(rank=0, world=2), torch.device("cpu"))
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(
        torch.nn.ModuleDict({"G": torch.nn.BatchNorm1d(3)}))
    # same state_dict keys: checkpoints and fingerprints do not see the conversion
    assert list(converted.state_dict()) == list(nets.state_dict())
    from gankit.nn.captions import SlotNorm           # statistics of its own: synced too
    slots = torch.nn.ModuleDict({"G": torch.nn.Sequential(SlotNorm(2, 3),
                                                          torch.nn.BatchNorm1d(3))})
    synced = distributed.sync_batchnorm(slots, True, Dist(rank=0, world=2), torch.device("cuda"))
    assert synced["G"][0].sync_stats and isinstance(synced["G"][1], torch.nn.SyncBatchNorm)


def test_step_seeds_differ_by_rank_and_step():
    seeds = {distributed.step_seed(1, r, s) for r in range(1, 4) for s in range(50)}
    assert len(seeds) == 150 and all(0 <= s < 2**63 for s in seeds)
