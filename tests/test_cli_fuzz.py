"""Property-based: every invalid config or override exits 2 with one line, no traceback."""


import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_runner import run_cli

NUMERIC_KEYS = {   # key: a value that is out of range for it
    "train.batch_size": st.integers(max_value=0),
    "train.steps": st.integers(max_value=0),
    "train.d_steps": st.integers(max_value=0),
    "optim.G.lr": st.floats(max_value=0, allow_nan=False),
    "optim.D.lr": st.floats(max_value=0, allow_nan=False),
    "optim.G.betas": st.tuples(st.floats(min_value=1, max_value=1e6), st.just(0.9)).map(list),
    "seed": st.integers(max_value=-1),
    "log.every": st.integers(max_value=0),
    "data.std": st.floats(max_value=0, allow_nan=False),
    "model.g_hidden": st.integers(max_value=0),
    "train.ema_beta": st.floats(min_value=1, max_value=1e9),
}
SECTIONS = ["train", "optim.G", "optim.D", "log", "eval", "model", "data", "objective", ""]
name = st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True)
KNOWN = {"steps", "batch_size", "d_steps", "ema_beta", "device", "amp", "nan_policy",
         "max_bad_steps", "rollback_lr_factor", "lr", "betas", "momentum", "eps", "weight_decay",
         "schedule", "decay_start", "warmup_steps", "grad_clip", "every", "sample_at",
         "sample_every", "n_fixed", "ckpt_every", "keep_ckpts", "progress", "metrics", "n",
         "name", "z_dim", "z_dist", "g_hidden", "d_hidden", "g_depth", "d_depth", "activation",
         "d_activation", "out_activation", "n_modes", "radius", "std", "seed", "data", "model",
         "objective", "optim", "train", "log", "eval", "compile", "channels_last", "sync_bn",
         "clip", "gp_weight", "side", "spacing", "turns", "mean", "threads", "reuse_fakes"}
KNOWN |= {"q_hidden", "leak"}                                  # model: infogan
KNOWN |= {"min_lr"}                                            # optim: learning-rate floor
KNOWN |= {"figures", "real_label"}                             # log; sigmoid games' smoothing
KNOWN |= {"g_loss", "historical_averaging", "g_norm", "vbn_reference", "minibatch_kernels",
          "minibatch_dims"}                                   # improved techniques

unknown_key = st.tuples(st.sampled_from(SECTIONS), name.filter(lambda n: n not in KNOWN)).map(
    lambda t: f"{t[0]}.{t[1]}".lstrip(".") + "=1")
out_of_range = st.sampled_from(sorted(NUMERIC_KEYS)).flatmap(
    lambda k: NUMERIC_KEYS[k].map(lambda v: f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"))
wrong_type = st.sampled_from(["train.steps", "train.batch_size", "optim.G.lr", "log.progress",
                              "train.device", "train.nan_policy", "model.z_dist", "seed"]).flatmap(
    lambda k: st.sampled_from(["[1, 2]", "{a: 1}", "abc", "1.5.3", "-", "[]"]).map(
        lambda v: f"{k}={v}"))
unknown_variant = st.tuples(st.sampled_from(["objective", "model", "data"]),
                            name.filter(lambda n: n not in KNOWN)).map(lambda t: f"{t[0]}={t[1]}x")
malformed = st.one_of(st.text(alphabet="abc.= ", max_size=12).filter(lambda s: "=" not in s or s.startswith("=") or ".." in s.split("=")[0] or s.split("=")[0].endswith(".") or s.split("=")[0].startswith(".")),
                      st.just("=5"), st.just("train..steps=3"), st.just(".x=1"))
bad_override = st.one_of(unknown_key, out_of_range, wrong_type, unknown_variant, malformed)


def assert_one_line_error(code, err, what):
    assert code == 2, (what, code, err)
    assert err.count("\n") == 1 and err.startswith("gankit: error:"), (what, err)
    assert "Traceback" not in err


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(bad_override)
def test_invalid_overrides_exit_2_one_line(tmp_path, override):
    code, _, err = run_cli(["train", "ring", "--set", override, "--out", str(tmp_path / "never")])
    assert_one_line_error(code, err, override)
    assert not (tmp_path / "never").exists()


def _nest(key: str, value):
    node: dict = {}
    root = node
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return root


yaml_docs = st.one_of(
    st.sampled_from(["- a\n- b\n", "just text", "a: [1, 2\n", "{", "42", "train: 5\n",
                     "optim: [1]\n", "optim: {Q: {lr: 1}}\n", "data: {}\n", "model: 3\n"]),
    st.sampled_from(sorted(NUMERIC_KEYS)).flatmap(
        lambda k: NUMERIC_KEYS[k].map(lambda v: yaml.safe_dump(_nest(k, v)))),
    st.tuples(st.sampled_from(SECTIONS[:-1]), name.filter(lambda n: n not in KNOWN)).map(
        lambda t: yaml.safe_dump(_nest(f"{t[0]}.{t[1]}", 1))),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(yaml_docs)
def test_invalid_config_files_exit_2_one_line(tmp_path, doc):
    path = tmp_path / "bad.yaml"
    path.write_text(doc)
    code, _, err = run_cli(["train", str(path), "--out", str(tmp_path / "never")])
    assert_one_line_error(code, err, doc)


def test_bad_arguments_exit_2_one_line(tmp_path):
    for args in (["train", "--steps", "0"], ["train", "--steps", "x"], ["train", "nosuchpreset"],
                 ["resume", str(tmp_path)], ["sample", str(tmp_path), "--out", "x.png"],
                 ["nosuchcommand"], ["train", "--bogus"], ["plot", str(tmp_path / "none")]):
        code, _, err = run_cli(args)
        assert_one_line_error(code, err, args)
