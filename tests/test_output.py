"""What a run prints and writes, wherever it runs: progress with losses through a pipe, the
run folder named at the start, a summary (or JSON) at the end, --quiet, file modes, and a
failed start-up that leaves nothing behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from cli_runner import run_cli

ENV = os.environ | {"OMP_NUM_THREADS": "1", "GANKIT_OFFLINE": "1"}


def test_progress_lines_with_losses_through_a_pipe(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "gankit", "train", "ring", "--steps", "60", "--out", str(out),
         "--set", "log.progress_seconds=0.02", "--set", "log.every=5",
         "--set", "model.g_hidden=64", "--set", "model.d_hidden=64",
         "--set", "train.batch_size=128"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1] == f"gankit: run folder: {out}"             # named at the start
    progress = [i for i, line in enumerate(lines) if line.startswith("step ")]
    assert progress and "loss/D" in lines[progress[-1]] and "/60" in lines[progress[-1]]
    end = next(i for i, line in enumerate(lines) if line.startswith("finished step 60"))
    assert max(progress) < end                                   # during training, not after
    assert any(line.strip().startswith("figures in") for line in lines[end:])
    assert any(line.strip().startswith("next: gankit sample") for line in lines[end:])
    assert proc.stderr == ""


def test_the_summary_quotes_paths_in_the_commands_it_suggests(tmp_path):
    """Before: 'next: gankit sample runs/ring 2 --out ...' (a path with a space, unquoted)."""
    import shlex
    run = tmp_path / "a run"
    code, out, err = run_cli(["train", "ring", "--steps", "3", "--out", str(run),
                              "--set", "log.figures=false"])
    assert code == 0, err
    here = shlex.quote(str(run))
    assert here != str(run) and f"next: gankit sample {here} --out samples.png" in out
    assert f"none drawn (log.figures=false); gankit plot {here} draws them" in out


def test_json_and_quiet(tmp_path):
    code, out, err = run_cli(["train", "ring", "--steps", "3", "--out", str(tmp_path / "a"),
                              "--json", "--set", "log.figures=false"])
    assert code == 0 and json.loads(out.splitlines()[-1])["step"] == 3
    code, out, err = run_cli(["train", "ring", "--steps", "3", "--out", str(tmp_path / "b"),
                              "--quiet", "--set", "log.figures=false"])
    assert (code, out, err) == (0, "", "")


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        code, _, err = run_cli(["train", "ring", "--steps", "2", "--out", str(tmp_path / "r"),
                                "--quiet", "--set", "log.figures=false"])
    finally:
        os.umask(old)
    assert code == 0, err
    for path in [tmp_path / "r" / "config.yaml", *(tmp_path / "r" / "checkpoints").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_a_failed_download_leaves_no_run_folder(tmp_path):
    """Offline with no MNIST files: one line, exit 2, and the same command may run again."""
    out = tmp_path / "run"
    args = ["train", "dcgan-mnist", "--out", str(out), "--set", f"data.root={tmp_path / 'no'}"]
    for _ in range(2):
        code, _, err = run_cli(args)
        assert code == 2 and err.count("\n") == 1 and "mnist" in err.lower(), err
        assert not out.exists()
