"""`gankit sample/eval --best`: use checkpoints/best.safetensors instead of the newest one."""

import json

import numpy as np

from cli_runner import run_cli

TINY = ["--set", "model.g_hidden=16", "--set", "model.d_hidden=16", "--set", "train.batch_size=32",
        "--set", "log.progress=false", "--set", "eval.n=200", "--set", "log.sample_at=[]",
        "--set", "log.figures=false"]


def test_sample_and_eval_from_the_best_checkpoint(tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "ring", "--steps", "30", "--out", str(run), *TINY,
                            "--set", "eval.every=10", "--set", "eval.best_metric=kl"])
    assert code == 0, err
    best_step = min((r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                     if "kl" in r), key=lambda r: r["kl"])["step"]
    code, out, err = run_cli(["eval", str(run), "--metrics", "toy2d", "--n", "200", "--best"])
    assert code == 0, err
    result = json.loads(out)
    assert result["step"] == best_step and result["checkpoint"] == "best"
    assert (run / f"eval-best-{best_step:08d}.json").exists()
    code, _, err = run_cli(["sample", str(run), "--n", "50", "--best", "--out",
                            str(tmp_path / "s.npy")])
    assert code == 0, err
    assert np.load(tmp_path / "s.npy").shape == (50, 2)


def test_best_without_a_best_checkpoint_is_one_line(tmp_path):
    run = tmp_path / "run"
    assert run_cli(["train", "ring", "--steps", "5", "--out", str(run), *TINY])[0] == 0
    code, _, err = run_cli(["sample", str(run), "--best", "--out", str(tmp_path / "s.npy")])
    assert code == 2 and err.count("\n") == 1 and "no best checkpoint" in err, err
