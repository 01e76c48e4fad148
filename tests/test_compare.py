"""``gankit compare``'s outputs: never into a compared run, in the format their suffix names,
an existing file replaced and said so; the same run twice refused; old eval results shown
with their step.

The run folders are written by hand (config, metrics, a sample grid, a checkpoint, an eval
result): compare reads only files, so no training is needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_runner import run_cli

from gankit.config import build_config, dump_yaml
from gankit.errors import GankitError
from gankit.plots.images import save_grid
from gankit.report import REPORT_NAME, pages

CKPT = "checkpoints/ckpt-00000150.safetensors"


def fake_run(path: Path, preset: str, steps: int = 150, eval_step: int = 100) -> Path:
    """A finished run folder of ``preset`` at ``steps`` with an eval result of ``eval_step``
    (nll on 256 held-out examples, k = 50)."""
    path.mkdir(parents=True)
    config = build_config(preset, [f"train.steps={steps}"]).to_dict()
    (path / "config.yaml").write_text(dump_yaml(config))
    rows = [{"step": s, "images_seen": 100 * s, "seconds": s / 10, "loss/vae": 100.0 - s / 10}
            for s in range(50, steps + 1, 50)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    save_grid(torch.zeros(4, 1, 28, 28), path / f"samples/step-{steps:08d}.png", title="x")
    (path / CKPT).parent.mkdir()
    (path / CKPT).write_bytes(b"weights")
    (path / REPORT_NAME).write_text("<html>the run's report</html>")
    result = {"step": eval_step, "nll": 90.5, "bpd": 0.17,
              "protocol": {"nll": {"n_heldout": 256, "iw_samples": 50}}}
    (path / f"eval-{eval_step:08d}.json").write_text(json.dumps(result))
    return path


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path]:
    return (fake_run(tmp_path / "runs" / "vae", "vae-mnist"),
            fake_run(tmp_path / "runs" / "pixelcnn", "pixelcnn-mnist", eval_step=150))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(args: list[str]) -> str:
    code, out, err = run_cli(args)
    assert code == 2 and err.count("\n") == 1 and "gankit: error:" in err, (args, out, err)
    return err


def test_outputs_inside_a_compared_run_are_refused_and_nothing_is_written(runs, tmp_path):
    vae, pixel = runs
    before = [snapshot(vae), snapshot(pixel)]
    (tmp_path / "alias").symlink_to(vae)
    a, b = str(vae), str(pixel)
    for args in (["--out", str(vae / "config.yaml")],
                 ["--out", str(pixel / REPORT_NAME)],
                 ["--out", str(vae / "new.html")],
                 ["--out", str(tmp_path / "alias" / "config.yaml")],
                 ["--out", str(tmp_path / "c.html"), "--figure", str(vae / CKPT)],
                 ["--out", str(tmp_path / "c.html"), "--figure", str(pixel / "f.png")]):
        err = refused(["compare", a, b, *args])
        assert "inside the run folder" in err and "never writes into its inputs" in err, err
    with pytest.raises(GankitError, match="--out .* lies inside the run folder"):
        pages.write_compare([vae, pixel], vae / "metrics.jsonl")       # the API too
    assert [snapshot(vae), snapshot(pixel)] == before
    assert not (tmp_path / "c.html").exists()


def test_the_same_run_twice_is_refused(runs, tmp_path):
    vae, pixel = runs
    (tmp_path / "alias").symlink_to(vae)
    assert "runs/vae is given twice" in refused(["compare", str(vae), str(vae), str(pixel)])
    err = refused(["compare", str(vae), str(tmp_path / "alias"), "--table"])
    assert "are the same run folder" in err
    assert not Path("compare.html").exists()


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".jpg", b"\xff\xd8\xff"),
                                           (".JPEG", b"\xff\xd8\xff"), (".pdf", b"%PDF"),
                                           (".svg", b"<?xml")])
def test_the_figure_is_written_in_the_format_its_suffix_names(runs, tmp_path, suffix, magic):
    figure = tmp_path / f"samples{suffix}"
    done = pages.write_comparison(runs, tmp_path / "c.html", figure)
    assert done.figure == figure and done.page == tmp_path / "c.html" and done.replaced == ()
    assert figure.read_bytes().startswith(magic)


def test_unknown_suffixes_are_refused(runs, tmp_path):
    a, b, page = str(runs[0]), str(runs[1]), str(tmp_path / "c.html")
    assert "--figure must end in .png" in refused(["compare", a, b, "--out", page,
                                                    "--figure", str(tmp_path / "s.gif")])
    assert "--out must end in .html" in refused(["compare", a, b, "--out",
                                                 str(tmp_path / "c.png")])
    assert list(tmp_path.glob("*.*")) == []


def test_an_out_that_cannot_be_written_is_refused_before_the_figure(runs, tmp_path):
    (tmp_path / "f").write_text("a file")
    err = refused(["compare", str(runs[0]), str(runs[1]), "--figure", str(tmp_path / "s.png"),
                   "--out", str(tmp_path / "f" / "c.html")])
    assert "cannot write --out" in err and "is a file, not a folder" in err
    assert not (tmp_path / "s.png").exists()


def test_a_figure_without_any_sample_grid_is_refused(runs, tmp_path):
    for run in runs:
        for grid in (run / "samples").iterdir():
            grid.unlink()
    err = refused(["compare", *map(str, runs), "--out", str(tmp_path / "c.html"), "--figure",
                   str(tmp_path / "s.png")])
    assert "none of the runs has a sample grid" in err
    assert not (tmp_path / "c.html").exists()


def test_an_existing_output_is_replaced_and_said_so(runs, tmp_path):
    page, figure = tmp_path / "c.html", tmp_path / "s.png"
    args = ["compare", *map(str, runs), "--out", str(page), "--figure", str(figure)]
    code, out, err = run_cli(args)
    assert code == 0 and out.splitlines() == [str(figure), str(page)], err
    page.write_text("an older page")
    code, out, err = run_cli(args)
    assert code == 0, err
    assert out.splitlines() == [f"gankit: replaced the existing file {figure}",
                                f"gankit: replaced the existing file {page}", str(figure),
                                str(page)]
    assert "Evaluations" in page.read_text()
    done = pages.write_comparison(runs, page)
    assert done.replaced == (page,) and done.figure is None


def test_the_table_shows_the_step_of_an_older_eval_result(runs):
    vae_row, pixel_row = pages.compare_table(runs).splitlines()[2:]
    # the VAE resumed to step 150 after its eval at step 100; the PixelCNN's is current
    assert "| 90.5 (step 100, n=256, k=50) |" in vae_row, vae_row
    assert "| 90.5 (n=256, k=50) |" in pixel_row and "step 150" not in pixel_row, pixel_row
