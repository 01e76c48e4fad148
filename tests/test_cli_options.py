"""Options a user may give in vain or by mistake: each gets one line and exit 2, never a
silent no-op (NaN truncation, options a model does not take, --iw-samples nothing uses,
--steps with --set train.steps, typos of presets); and what the commands print: stdout
holds only the JSON with --json, `gankit eval` skips the default metrics that cannot run,
help and `gankit list` say whole things."""

from __future__ import annotations

import json

import pytest
from cli_runner import run_cli
from test_contract import tiny_config

from gankit import api
from gankit.config import build_config
from gankit.errors import ConfigError

LOG = {"progress": False, "sample_at": [], "n_fixed": 4, "figures": False}
TRAIN = {"steps": 2, "batch_size": 8, "threads": 1}
RING = ["--set", "model.g_hidden=8", "--set", "model.d_hidden=8", "--set", "train.batch_size=16",
        "--set", "train.threads=1", "--set", "log.sample_at=[]", "--set", "log.figures=true",
        "--set", "eval.metrics=[]", "--set", "optim.G.schedule=constant",
        "--set", "optim.D.schedule=constant"]


def one_line_error(code, err, *words):
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and err.startswith("gankit: error:"), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """No Inception weights anywhere: a private cache, no $GANKIT_INCEPTION_WEIGHTS."""
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANKIT_INCEPTION_WEIGHTS", raising=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    """Tiny runs (2 steps) of a GAN on the ring, a text GAN, a VAE and a PixelCNN on MNIST,
    and a StyleGAN."""
    root = tmp_path_factory.mktemp("options")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_DATA", str(data_root))
        mp.setenv("GANKIT_OFFLINE", "1")
        mp.setenv("GANKIT_CACHE", str(root / "cache"))
        cfgs = {"ring": tiny_config("nonsaturating", "toy2d", train=TRAIN, log=LOG),
                "gaussian1d": tiny_config("nonsaturating", "toy1d", train=TRAIN, log=LOG),
                "text": tiny_config("wgan-gp", "text", train=TRAIN | {"d_steps": 1}, log=LOG),
                "vae": tiny_config("vae", train=TRAIN, log=LOG),
                "pixelcnn": tiny_config("pixelcnn", train=TRAIN, log=LOG),
                "stylegan": build_config("stylegan-mnist", [
                    "data.split=test", "model.z_dim=8", "model.w_dim=8",
                    "model.mapping_layers=2", "model.ngf=4", "model.ndf=4",
                    "model.max_channels=8", "train.batch_size=8", "train.steps=2",
                    "train.threads=1", "log.progress=false", "log.n_fixed=4",
                    "log.sample_at=[]", "log.figures=false", "eval.metrics=[]"])}
        return {name: api.train(cfg, root / name).path for name, cfg in cfgs.items()}


# ---------------------------------------------------------------- 1. non-finite floats
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf"])
def test_truncation_must_be_finite(runs, tmp_path, value):
    out = tmp_path / "t.png"
    code, _, err = run_cli(["sample", str(runs["stylegan"]), "--truncation", value,
                            "--out", str(out)])
    one_line_error(code, err, "--truncation")
    assert not out.exists()


def test_the_api_refuses_a_nan_truncation(runs):
    with pytest.raises(ConfigError, match="finite"):
        api.sample(runs["stylegan"], n=2, truncation=float("nan"), device="cpu")


# ---------------------------------------------------------------- 2. options that do not apply
@pytest.mark.parametrize("option", [["--truncation", "0.5"], ["--label", "2"],
                                    ["--caption", "hello"], ["--mix-seed", "1"],
                                    ["--mix-layers", "fine"]])
def test_a_text_model_refuses_what_it_does_not_take(runs, option):
    code, out, err = run_cli(["sample", str(runs["text"]), "--n", "5", *option])
    one_line_error(code, err, option[0])
    assert out == ""


def test_a_text_model_still_prints_its_lines(runs):
    code, out, err = run_cli(["sample", str(runs["text"]), "--n", "3", "--seed", "1"])
    assert code == 0, err
    assert len(out.splitlines()) == 3


def test_a_text_model_writes_its_lines_to_a_txt_file(runs, tmp_path):
    code, printed, err = run_cli(["sample", str(runs["text"]), "--n", "3", "--seed", "1"])
    code, out, err = run_cli(["sample", str(runs["text"]), "--n", "3", "--seed", "1",
                              "--out", str(tmp_path / "lines.txt")])
    assert code == 0 and "wrote 3 samples" in out, err
    assert (tmp_path / "lines.txt").read_text("utf-8") == printed
    code, _, err = run_cli(["sample", str(runs["ring"]), "--n", "3",
                            "--out", str(tmp_path / "ring.txt")])
    one_line_error(code, err, "not lines of text", ".png")
    assert not (tmp_path / "ring.txt").exists()


@pytest.mark.parametrize("model", ["stylegan", "vae"])
def test_mix_layers_without_mix_seed_is_refused(runs, tmp_path, model):
    code, _, err = run_cli(["sample", str(runs[model]), "--n", "2", "--mix-layers", "fine",
                            "--out", str(tmp_path / "m.npy")])
    one_line_error(code, err, "--mix-layers")
    assert not (tmp_path / "m.npy").exists()


def test_empty_mix_layers_is_refused_not_taken_as_coarse(runs, tmp_path):
    code, _, err = run_cli(["sample", str(runs["stylegan"]), "--n", "2", "--mix-seed", "3",
                            "--mix-layers", "", "--out", str(tmp_path / "m.npy")])
    one_line_error(code, err, "style layers must be")


def test_an_out_that_cannot_be_written_is_refused_before_sampling(runs, tmp_path):
    (tmp_path / "f.png").write_text("a file")
    code, _, err = run_cli(["sample", str(runs["ring"]), "--n", "2",
                            "--out", str(tmp_path / "f.png" / "x.png")])
    one_line_error(code, err, "cannot write --out", "is a file, not a folder")
    assert (tmp_path / "f.png").read_text() == "a file"


def test_mix_layers_with_mix_seed_still_mixes(runs, tmp_path):
    code, _, err = run_cli(["sample", str(runs["stylegan"]), "--n", "2", "--mix-seed", "3",
                            "--mix-layers", "fine", "--out", str(tmp_path / "m.npy")])
    assert code == 0, err


@pytest.mark.parametrize("model, metrics", [("pixelcnn", ["--metrics", "nll"]),
                                            ("ring", []), ("vae", ["--metrics", "speed"])])
def test_iw_samples_that_nothing_uses_are_refused(runs, model, metrics):
    before = sorted(runs[model].glob("eval-*.json"))
    code, out, err = run_cli(["eval", str(runs[model]), *metrics, "--n", "10",
                              "--iw-samples", "5", "--device", "cpu"])
    one_line_error(code, err, "--iw-samples")
    assert out == "" and sorted(runs[model].glob("eval-*.json")) == before


def test_iw_samples_of_a_vae_nll_are_used(runs):
    code, out, err = run_cli(["eval", str(runs["vae"]), "--metrics", "nll", "--n", "10",
                              "--iw-samples", "3", "--device", "cpu"])
    assert code == 0, err
    assert json.loads(out)["protocol"]["nll"]["iw_samples"] == 3


def test_steps_and_set_train_steps_together_are_refused(runs, tmp_path):
    out = tmp_path / "never"
    code, _, err = run_cli(["train", "ring", "--steps", "5", "--set", "train.steps=20",
                            "--out", str(out)])
    one_line_error(code, err, "--steps", "train.steps")
    assert not out.exists()
    code, _, err = run_cli(["train", "ring", "--seed", "1", "--set", "seed=2", "--out", str(out)])
    one_line_error(code, err, "--seed")
    config = (runs["ring"] / "config.yaml").read_bytes()
    code, _, err = run_cli(["resume", str(runs["ring"]), "--steps", "10", "--set",
                            "train.steps=50"])
    one_line_error(code, err, "--steps", "train.steps")
    assert (runs["ring"] / "config.yaml").read_bytes() == config


# ---------------------------------------------------------------- 3. eval's default metrics
def test_default_eval_of_a_run_no_metric_applies_to_says_so(runs):
    code, out, err = run_cli(["eval", str(runs["gaussian1d"]), "--n", "10"])
    one_line_error(code, err, "no registered metric applies", "gaussian1d")
    assert "--metrics is empty" not in err



def test_default_eval_skips_what_cannot_run_offline(tmp_path, data_root):
    run = api.train(tiny_config("nonsaturating", "image", train=TRAIN, log=LOG), tmp_path / "r")
    code, out, err = run_cli(["eval", str(run.path), "--n", "10", "--device", "cpu"])
    assert code == 0, err
    result = json.loads(out)                          # stdout: the JSON alone
    assert "fid" not in result and "fid" not in result["protocol"]
    assert "cfd_mnist" in result and "samples_per_s" in result
    skipped = [line for line in err.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and "fid" in skipped[0] and "Inception weights" in skipped[0]
    assert "--metrics" in skipped[0]
    # asked for by name, a metric that cannot run is an error
    code, out, err = run_cli(["eval", str(run.path), "--metrics", "fid,speed", "--n", "10"])
    one_line_error(code, err, "Inception weights")


# ---------------------------------------------------------------- 4. --json: stdout is JSON
def test_train_and_resume_json_print_only_json_on_stdout(tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli(["train", "ring", "--steps", "2", "--out", str(run), *RING,
                              "--json"])
    assert code == 0, err
    assert json.loads(out)["step"] == 2
    assert "optimizer:" in err and "run folder:" in err
    code, out, err = run_cli(["resume", str(run), "--steps", "1", "--json"])
    assert code == 0, err
    assert json.loads(out)["step"] == 3
    assert "resuming" in err


# ---------------------------------------------------------------- 5. not a run folder first
def test_sample_of_a_folder_that_is_no_run_says_so(tmp_path):
    code, _, err = run_cli(["sample", str(tmp_path), "--n", "16",
                            "--out", str(tmp_path / "x.png")])
    one_line_error(code, err, "is not a gankit run folder")
    assert "lies inside" not in err


def test_a_file_named_as_the_run_is_called_a_file(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    code, _, err = run_cli(["sample", str(tmp_path / "config.yaml"), "--n", "2"])
    one_line_error(code, err, "is a file, not a gankit run folder")


def test_huge_seeds_are_refused_in_one_line(tmp_path):
    for cmd in (["sample", str(tmp_path), "--seed", str(2**64)],
                ["sample", str(tmp_path), "--mix-seed", str(2**63)],
                ["eval", str(tmp_path), "--seed", str(2**70)]):
        code, _, err = run_cli(cmd)
        assert code == 2 and "range" in err and "Traceback" not in err, (cmd, err)


# ---------------------------------------------------------------- 6. help and `gankit list`
def test_n_is_explained_in_help():
    code, out, _ = run_cli(["sample", "--help"])
    assert code == 0 and "How many samples" in out
    code, out, _ = run_cli(["eval", "--help"])
    assert code == 0 and "held-out examples" in " ".join(out.split())


def test_list_descriptions_are_whole_sentences():
    """`gankit list` shows first lines: each is a whole sentence (PEP 257 summary lines), not
    cut off mid-sentence ("... (Goodfellow")."""
    from gankit.config import PRESET_DIR, list_presets
    from gankit.registry import ALL, METRICS

    firsts = {name: next(line[1:].strip() for line in
                         (PRESET_DIR / f"{name}.yaml").read_text().splitlines()
                         if line.startswith("#") and line[1:].strip())
              for name in list_presets()}
    firsts |= {f"{kind}:{name}": reg.summary(name) for kind, reg in ALL.items()
               if reg is not METRICS for name in reg.names()}
    for name, text in firsts.items():
        assert text.endswith(".") and text.count("(") == text.count(")"), (name, text)


# ---------------------------------------------------------------- 7. typos of presets
def test_a_missing_config_file_is_named_as_such(tmp_path):
    for name in ("nonexist.yaml", "conf.yml", str(tmp_path / "dir" / "cfg")):
        code, _, err = run_cli(["train", name, "--out", str(tmp_path / "never")])
        one_line_error(code, err, "no such config file", name)
        assert "unknown preset" not in err


def test_a_misspelt_preset_gets_a_suggestion():
    code, _, err = run_cli(["train", "vae-mnsit"])
    one_line_error(code, err, "did you mean vae-mnist?")
    assert "acgan-mnist" not in err                   # not the whole list
    code, _, err = run_cli(["train", "zzzz"])           # nothing close: the list
    one_line_error(code, err, "unknown preset 'zzzz'", "acgan-mnist")
