"""``gankit train --live`` from the command line: the URL is printed and the run finishes as
any run does; what cannot be shown is refused in one line."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("aiohttp", reason="the live view needs the gankit[live] extra")

from cli_runner import run_cli  # noqa: E402

TINY = ["--set", "model.g_hidden=16", "--set", "model.d_hidden=16", "--set",
        "train.batch_size=32", "--set", "log.figures=false", "--set", "eval.metrics=[]"]


def test_train_live_prints_its_url_and_finishes(tmp_path):
    code, out, err = run_cli(["train", "ring", "--steps", "5", "--out", str(tmp_path / "r"),
                              "--live", *TINY])
    assert code == 0, err
    assert re.search(r"live view: http://127\.0\.0\.1:\d+/[\w-]{32}/", out)
    assert (tmp_path / "r" / "checkpoints").is_dir()


def test_live_refuses_several_processes_and_translation_data(tmp_path):
    code, _, err = run_cli(["train", "ring", "--live", "--nproc", "2"])
    assert code == 2 and "--live shows one process" in err
    code, _, err = run_cli(["train", "cyclegan-strokes", "--steps", "1", "--live",
                            "--out", str(tmp_path / "c")])
    assert code == 2 and "--live draws toy1d, toy2d, image runs" in err
    assert not (tmp_path / "c").exists()                   # refused before anything is written
