"""Commands that write files never destroy or merge user data (issue 20, section 4): one
output per input, the count printed is the count written, never into an input, and what
happens when an output exists (gankit.outputs)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_cli
from gankit import api, outputs
from gankit.config import build_config
from gankit.errors import GankitError
from gankit.translate import SHEET, output_name


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` by relative name -> SHA-256 of its bytes."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(code: int, out: str, err: str, *words: str) -> None:
    assert code == 2 and err.count("\n") == 1 and err.startswith("gankit: error:"), (out, err)
    for w in words:
        assert w in err, err


# ---------------------------------------------------------------- the rules, one by one
def test_overlap_is_refused_both_ways_and_through_links(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tmp_path / "in")
    for out, how in ((tmp_path / "in", "is"), (tmp_path / "in" / "sub", "lies inside"),
                     (tmp_path, "contains"), (tmp_path / "alias" / "x", "lies inside")):
        with pytest.raises(GankitError, match=f"--out {out} {how} the input"):
            outputs.refuse_overlap(out, {"the input": tmp_path / "in"})
    outputs.refuse_overlap(tmp_path / "elsewhere", {"the input": tmp_path / "in"})


def test_one_to_one_refuses_shared_names(monkeypatch):
    assert outputs.one_to_one(["same.jpg", "same.png"], output_name) == {
        "same.jpg": "same.jpg", "same.png": "same.png"}
    with pytest.raises(GankitError, match="a.png and A.png would both be written as a.png"):
        outputs.one_to_one(["A.png", "a.png"], output_name)            # case-insensitive disks
    with pytest.raises(GankitError, match="the command's own translation-sheet.png"):
        outputs.one_to_one(["translation-sheet.png"], output_name, reserved=[SHEET])
    monkeypatch.delitem(Image.SAVE, "WEBP")                            # a Pillow without it
    assert output_name("x.webp") == "x.webp.png"                       # kept, .png appended
    with pytest.raises(GankitError, match="would both be written as x.webp.png"):
        outputs.one_to_one(["x.webp", "x.webp.png"], output_name)


def test_write_via_is_all_or_nothing_and_keep_both(tmp_path):
    path = tmp_path / "stats.npz"
    path.write_bytes(b"old")

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")
    with pytest.raises(OSError):
        outputs.write_via(path, broken)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["stats.npz"]
    assert outputs.write_via(path, lambda tmp: tmp.write_bytes(b"new")) is True
    assert path.read_bytes() == b"new"
    rec = tmp_path / "eval-1.json"
    assert outputs.keep_both(rec, b"A") == rec
    assert outputs.keep_both(rec, b"A") == rec                 # the same result: kept once
    assert outputs.keep_both(rec, b"B") == tmp_path / "eval-1-2.json"
    assert rec.read_bytes() == b"A"


def test_check_writable_refuses_in_one_line(tmp_path, monkeypatch):
    outputs.check_writable(tmp_path / "new" / "deeper" / "x.png")      # folders made later
    assert list(tmp_path.iterdir()) == []                              # nothing left behind
    (tmp_path / "f").write_text("x")
    with pytest.raises(GankitError, match="is a file, not a folder"):
        outputs.check_writable(tmp_path / "f" / "x.png")

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)
    with pytest.raises(GankitError, match="cannot create files in .* .Permission denied."):
        outputs.check_writable(tmp_path / "x.png", "--save-stats")
    with pytest.raises(GankitError, match="cannot write"):
        outputs.write_via(tmp_path / "x.png", lambda tmp: None)


# ---------------------------------------------------------------- gankit translate
@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    from test_translation import make_unpaired, tiny_config
    root = tmp_path_factory.mktemp("translate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = make_unpaired(root / "data")
        return api.train(tiny_config("cyclegan", data, steps=1, figures=False),
                         root / "run").path


def inputs_with_same_stems(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("same.jpg", "same.png", "a.png", "b.webp", "c.bmp", "d.tif", "sub/e.jpeg"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / name)
    return folder


def test_translate_writes_one_output_per_input(tmp_path, translator):
    inputs = inputs_with_same_stems(tmp_path / "in")
    before = fingerprint(inputs)
    code, out, err = run_cli(["translate", str(translator), "--input", str(inputs),
                              "--out", str(tmp_path / "o")])
    assert code == 0, err
    assert "translated 7 images" in out                    # was: 7 printed, 6 written
    written = set(fingerprint(tmp_path / "o")) - {SHEET}
    assert written == set(before)                          # same names and extensions
    assert Image.open(tmp_path / "o" / "same.jpg").format == "JPEG"
    assert Image.open(tmp_path / "o" / "same.png").format == "PNG"
    assert fingerprint(inputs) == before


def test_translate_refuses_an_out_under_a_file_before_translating(tmp_path, translator):
    inputs = inputs_with_same_stems(tmp_path / "in")
    (tmp_path / "f").write_text("a file")
    code, out, err = run_cli(["translate", str(translator), "--input", str(inputs),
                              "--out", str(tmp_path / "f" / "o")])
    assert code == 2 and "is a file, not a folder" in err and "Traceback" not in err, err
    assert (tmp_path / "f").read_text() == "a file"


@pytest.mark.parametrize("where", ["same", "inside", "not empty", "sheet name", "case"])
def test_translate_refuses_to_write_into_or_over_user_data(tmp_path, translator, where):
    inputs = inputs_with_same_stems(tmp_path / "in")
    out = {"same": inputs, "inside": inputs / "sub" / "out", "not empty": tmp_path / "full",
           "sheet name": tmp_path / "o", "case": tmp_path / "o"}[where]
    words = {"same": "is the input folder", "inside": "lies inside the input folder",
             "not empty": "is not an empty folder", "sheet name": "translation-sheet.png",
             "case": "would both be written as"}[where]
    if where == "not empty":
        (out / "mine").mkdir(parents=True)
        (out / "mine" / "keep.txt").write_text("user data")
    if where == "sheet name":
        Image.new("L", (8, 8)).save(inputs / SHEET)
    if where == "case":
        Image.new("L", (8, 8)).save(inputs / "SAME.png")
    before = fingerprint(tmp_path)
    code, out_text, err = run_cli(["translate", str(translator), "--input", str(inputs),
                                   "--out", str(out)])
    one_line_error(code, out_text, err, words)
    assert fingerprint(tmp_path) == before                  # nothing written, nothing lost


# ---------------------------------------------------------------- sample, fid, eval, plot
@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    cfg = build_config("ring", ["train.steps=2", "train.batch_size=16", "model.g_hidden=8",
                                "model.d_hidden=8", "log.progress=false", "log.figures=false",
                                "log.sample_at=[]", "train.threads=1"])
    return api.train(cfg, tmp_path_factory.mktemp("ring") / "run").path


def test_sample_out_never_inside_the_run_and_replacing_is_said(tmp_path, ring):
    before = fingerprint(ring)
    for out in (ring / "samples.npy", ring / "checkpoints" / "x.npz"):
        code, text, err = run_cli(["sample", str(ring), "--n", "5", "--out", str(out)])
        one_line_error(code, text, err, "lies inside the run folder")
    assert fingerprint(ring) == before
    out = tmp_path / "s.npy"
    code, text, err = run_cli(["sample", str(ring), "--n", "5", "--out", str(out)])
    assert code == 0 and text == f"wrote 5 samples to {out}\n" and np.load(out).shape == (5, 2)
    code, text, err = run_cli(["sample", str(ring), "--n", "7", "--out", str(out)])
    assert code == 0 and "wrote 7 samples" in text and "replaced the existing file" in text
    assert np.load(out).shape == (7, 2) and [p.name for p in tmp_path.iterdir()] == ["s.npy"]


def test_fid_save_stats_never_over_an_input(tmp_path):
    for name in ("a", "b"):
        np.savez(tmp_path / f"{name}.npz", mu=np.zeros(3), sigma=np.eye(3))
    (tmp_path / "folder").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "folder" / "x.png")
    before = fingerprint(tmp_path)
    for target, words in ((tmp_path / "b.npz", "--save-stats"),
                          (tmp_path / "folder" / "s.npz", "lies inside A")):
        code, out, err = run_cli(["fid", str(tmp_path / "folder"), str(tmp_path / "b.npz"),
                                  "--save-stats", str(target)])
        one_line_error(code, out, err, words)
    assert fingerprint(tmp_path) == before


def test_eval_keeps_an_earlier_different_result(tmp_path, ring):
    args = ["eval", str(ring), "--metrics", "toy2d", "--n"]
    code, out, err = run_cli(args + ["50"])
    assert code == 0 and f"saved {ring / 'eval-00000002.json'}" in err
    first = (ring / "eval-00000002.json").read_text()
    assert run_cli(args + ["50"])[0] == 0                      # the same result: one file
    assert sorted(p.name for p in ring.glob("eval-*.json")) == ["eval-00000002.json"]
    code, out, err = run_cli(args + ["60"])
    assert code == 0 and "eval-00000002-2.json" in err
    assert (ring / "eval-00000002.json").read_text() == first
    assert json.loads((ring / "eval-00000002-2.json").read_text()) == json.loads(out)


def test_plot_writes_only_its_figures(ring):
    """Figures go into plots/; report.html is refreshed with them; nothing else changes."""
    def own(key):
        return key.startswith("plots/") or key == "report.html"
    keep = {k: v for k, v in fingerprint(ring).items() if not own(k)}
    code, out, err = run_cli(["plot", str(ring)])
    assert code == 0, err
    drawn = [Path(line) for line in out.splitlines() if not line.startswith("gankit:")]
    assert drawn[-1] == ring / "report.html"
    assert drawn[:-1] and all(p.parent == ring / "plots" for p in drawn[:-1])
    after = fingerprint(ring)
    assert {k: v for k, v in after.items() if not own(k)} == keep
    assert run_cli(["plot", str(ring)])[0] == 0                  # redrawn in place
    assert {k for k in fingerprint(ring) if k.startswith("plots/")} == \
        {k for k in after if k.startswith("plots/")}


def test_read_json_treats_missing_torn_and_foreign_files_as_absent(tmp_path):
    from gankit.fileio import read_json

    good, torn, foreign, binary = (tmp_path / n for n in ("a.json", "b.json", "c.json", "d.json"))
    good.write_text('{"step": 3}')
    torn.write_text('{"step": ')
    foreign.write_text("[1, 2]")
    binary.write_bytes(b"\xff\xfe\x00")
    assert read_json(good) == {"step": 3}
    assert [read_json(p) for p in (torn, foreign, binary, tmp_path / "none.json")] == [None] * 4
    assert read_json(foreign, list) == [1, 2]
