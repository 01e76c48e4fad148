"""The ``gankit`` command line. Problems with the user's input print one line and exit 2."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click

from gankit.errors import ConfigError, GankitError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gankit")
def cli() -> None:
    """Train, evaluate and understand Generative Adversarial Networks."""


_device_option = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]),
    help="Where to train (train.device; auto: CUDA, else MPS, else CPU).")
_model_device_option = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto",
    show_default=True, help="Where to run the model (auto: CUDA, else MPS, else CPU); any "
    "device loads any run, whatever it trained on.")
_output_options = [
    click.option("--quiet", is_flag=True, help="Print only errors (no progress, no summary)."),
    click.option("--json", "as_json", is_flag=True,
                 help="End with the last metrics as one JSON object instead of a summary."),
]


def _output(fn):
    for option in reversed(_output_options):
        fn = option(fn)
    return fn


# a seed is a torch.Generator seed: a non-negative int64 (as the config's seed field)
_SEED = click.IntRange(0, 2**63 - 1)
MAX_N = 10_000_000          # samples a command draws: 200x FID's 50k, well short of a typo's


def _refuse_beyond_memory(n: int, shape: tuple[int, ...]) -> None:
    """GankitError (one line) when n samples of ``shape`` (float32) would need more than half
    of this machine's memory (skipped where the system does not say how much it has)."""
    import math
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return
    need = n * math.prod(shape) * 4
    if need > total // 2:
        raise GankitError(f"--n {n}: {n} samples of shape {tuple(shape)} take "
                          f"{need / 2**30:.1f} GiB, more than half of this machine's "
                          f"{total / 2**30:.0f} GiB; draw fewer")

_nproc_option = click.option(
    "--nproc", type=click.IntRange(min=1), default=1, show_default=True,
    help="Data-parallel processes, started with torchrun (one per GPU; on a CPU they share "
         "the cores). train.batch_size is the global batch, split evenly over them.")


def _live_options(fn):
    fn = click.option("--live-port", type=click.IntRange(0, 65535), default=0, show_default=True,
                      help="Port of the live view on 127.0.0.1 (0: a free port).")(fn)
    return click.option("--live", is_flag=True,
                        help="Serve a live view of the training on 127.0.0.1 (URL printed, with "
                             "a secret token): watch and steer it from a browser. Needs "
                             "pip install 'gankit[live]'.")(fn)


def _live(live: bool, port: int, nproc: int, cfg=None):
    """A ``gankit.live.session.Live`` that prints its URL, or None without --live; refuses
    (one line) what it cannot show, before anything is written."""
    if not live:
        return None
    if nproc > 1:
        raise GankitError("--live shows one process; use it without --nproc")
    from gankit.live.session import Live, check_kind
    if cfg is not None:
        from gankit.registry import DATASETS
        check_kind(DATASETS.get(cfg.data.name).kind)
    return Live(port, on_url=lambda url: click.echo(f"live view: {url}  (Ctrl+C stops)"))


@cli.command()
@click.argument("preset", required=False)
@click.option("--steps", type=click.IntRange(min=1), help="Generator steps (train.steps).")
@click.option("--seed", type=_SEED, help="Random seed.")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder (must not exist).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set optim.G.lr=1e-4 (repeatable).")
@_device_option
@_nproc_option
@_live_options
@_output
def train(preset, steps, seed, out, overrides, device, nproc, live, live_port, quiet,
          as_json) -> None:
    """Train PRESET (a name from `gankit list` or a .yaml file; default: the 2-D ring)."""
    with _json_stdout(as_json):     # with --json, stdout holds only the JSON (_report)
        run = _train(preset, steps, seed, out, overrides, device, nproc, live, live_port,
                     quiet, as_json)
    _report(run, quiet, as_json)


def _train(preset, steps, seed, out, overrides, device, nproc, live, live_port, quiet,
           as_json):
    from gankit import api
    from gankit.config import resolve
    from gankit.log import note
    from gankit.run import default_run_path

    _refuse_twice(overrides, {"train.steps": ("--steps", steps), "seed": ("--seed", seed),
                              "train.device": ("--device", device)})
    extra = list(overrides) + _quiet(quiet)
    if steps is not None:
        extra.append(f"train.steps={steps}")
    if seed is not None:
        extra.append(f"seed={seed}")
    if device is not None:
        extra.append(f"train.device={device}")
    cfg, optim_note = resolve(preset, extra)   # config errors stop here, before any process
    live_view = _live(live, live_port, nproc, cfg)
    if nproc == 1:                             # starts (with --nproc, rank 0 says it)
        note(optim_note)                       # which optimizer settings, from where
    out = out or default_run_path(preset)
    if nproc > 1:       # refuse what rank 0 would refuse before starting the processes
        from gankit.config import check_networks
        from gankit.train import distributed
        distributed.local_batch_size(cfg.train.batch_size, nproc)
        check_networks(cfg, nproc)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise GankitError(f"{out} is not empty; choose another --out, or continue it with "
                              f"`gankit resume {out}`")
        args = ["train", *([preset] if preset else []), "--out", str(out),
                *(f"--set={o}" for o in extra), *_flags(quiet, as_json)]
        sys.exit(distributed.launch(nproc, args))
    return api.train(cfg, out, live=live_view)


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--steps", type=click.IntRange(min=1), help="Train N more steps.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Change run-length or logging settings (log.*, eval.*).")
@_device_option
@_nproc_option
@_live_options
@_output
def resume(run, steps, overrides, device, nproc, live, live_port, quiet, as_json) -> None:
    """Continue RUN from its newest intact checkpoint (with any number of processes)."""
    with _json_stdout(as_json):     # with --json, stdout holds only the JSON (_report)
        done = _resume(run, steps, overrides, device, nproc, live, live_port, quiet, as_json)
    _report(done, quiet, as_json)


def _resume(run, steps, overrides, device, nproc, live, live_port, quiet, as_json):
    from gankit import api
    _refuse_twice(overrides, {"train.steps": ("--steps", steps),
                              "train.device": ("--device", device)})
    extra = list(overrides) + ([f"train.device={device}"] if device else []) + _quiet(quiet)
    live_view = _live(live, live_port, nproc)
    if nproc > 1:
        from gankit.config import apply_overrides, validate
        from gankit.run import RunDir
        from gankit.train import distributed
        cfg = validate(apply_overrides(RunDir.open(run).read_config().to_dict(), extra),
                       saved=True)
        distributed.local_batch_size(cfg.train.batch_size, nproc)
        args = ["resume", str(run), *(["--steps", str(steps)] if steps else []),
                *(f"--set={o}" for o in extra), *_flags(quiet, as_json)]
        sys.exit(distributed.launch(nproc, args))
    return api.resume(run, steps, extra, live=live_view)


@contextlib.contextmanager
def _json_stdout(as_json: bool = True):
    """Inside, with ``as_json``, whatever would be printed on stdout (notes such as
    'optimizer: ...' and 'run folder: ...', progress lines, the live view's URL) goes to
    stderr instead, so that stdout holds only the JSON printed after it."""
    if not as_json:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _refuse_twice(overrides, flags: dict) -> None:
    """ConfigError when an option and a ``--set`` both set one key, e.g. --steps 5 with
    --set train.steps=20 (``flags``: {key: (option, its value or None when not given)})."""
    from gankit.config import parse_override

    for text in overrides:
        key = ".".join(parse_override(text)[0])
        flag, value = flags.get(key, (None, None))
        if value is not None:
            raise ConfigError(f"{flag} {value} and --set {text.strip()} both set {key}; "
                              "give only one")


def _quiet(quiet: bool) -> list[str]:
    """--quiet: no notes, and no progress (a log setting, so resume may change it)."""
    if not quiet:
        return []
    from gankit.log import set_quiet
    set_quiet(True)
    return ["log.progress=false"]


def _flags(quiet: bool, as_json: bool) -> list[str]:
    return ["--quiet"] * quiet + ["--json"] * as_json


def _lines_of(run: Path, model, out: Path | None):
    """The ``to_lines`` of the view of ``model``'s samples (``gankit sample RUN`` without
    --out, or with a .txt ``out``, gives a text model's samples, one line each); GankitError
    for models whose samples are not text."""
    from gankit.plots import VIEWS

    kind = model.data.info.kind
    to_lines = getattr(VIEWS.get(kind), "to_lines", None)
    if to_lines is None and out is None:
        raise GankitError(f"--out is needed: {run} makes {kind} samples, not lines of text")
    if to_lines is None:
        raise GankitError(f"--out {out}: {run} makes {kind} samples, not lines of text; "
                          "write a .png, .npy or .npz")
    return to_lines


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--n", "n", type=click.IntRange(1, MAX_N), default=64, show_default=True,
              help="How many samples to draw (a .png of a class-conditional model splits "
                   "them over the classes; a text model without --out prints N lines).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Output file: .png (picture; class-conditional models: the N split over "
                   "the classes, rows labelled by class), .npy or .npz (raw samples), .txt "
                   "(text models: the N lines). Not "
                   "inside RUN; an existing file is replaced (and the command says so). "
                   "Without it, text models print their N lines.")
@click.option("--seed", type=_SEED, default=0, show_default=True)
@click.option("--best", is_flag=True, help="Use the best checkpoint (eval.best_metric).")
@click.option("--label", type=click.IntRange(min=0),
              help="Class-conditional models: draw this class only.")
@click.option("--caption", help='Caption models (GAN-CLS): draw images of this sentence, e.g. '
              '"the digit 7 is on the left of the digit 2".')
@click.option("--truncation", type=click.FloatRange(-2, 2),     # nan: refused by styled
              help="Style-based generators: truncation psi, w_avg + psi (w - w_avg).")
@click.option("--mix-seed", type=_SEED,
              help="Style-based generators: take the --mix-layers styles from the samples "
                   "of this seed (style mixing).")
@click.option("--mix-layers",
              help="With --mix-seed: the styles it gives, coarse (the default), middle, fine "
                   "or i-j (w indices).")
@_model_device_option
def sample(run, n, out, seed, best, label, caption, truncation, mix_seed, mix_layers,
           device) -> None:
    """Draw N samples from RUN's generator (EMA weights when the run keeps them); needs only
    the run folder."""
    import numpy as np

    from gankit.api import load_model
    from gankit.core import capabilities as caps
    from gankit.plots import VIEWS
    from gankit.plots.images import class_samples

    from gankit.outputs import check_writable, refuse_overlap, write_via
    from gankit.run import RunDir

    data = RunDir.open(run).read_config().data      # not a run folder: said first
    suffix = out.suffix.lower() if out is not None else None
    if out is not None:
        if suffix not in (".png", ".npy", ".npz", ".txt"):
            raise GankitError(f"--out must end in .png, .npy, .npz or .txt, not "
                              f"{out.suffix or '(none)'}")
        refuse_overlap(out, {"the run folder": run,         # nor the data it trained on
                             "its data.path": getattr(data, "path", None) and Path(data.path),
                             "its data.root": getattr(data, "root", None) and Path(data.root)})
        if out.is_dir():
            raise GankitError(f"--out {out} is a folder; name the file to write")
        check_writable(out)
    _, model = load_model(run, best=best, device=device)
    _refuse_beyond_memory(n, model.data.info.shape)
    to_lines = _lines_of(run, model, out) if out is None or suffix == ".txt" else None
    labelled = suffix == ".png" and caps.LABELS in model.objective.offers
    # every path enters these: each refuses (one line) an option the model does not take
    with model.fixed_label(label), model.fixed_caption(caption), \
            model.styled(truncation, mix_seed, mix_layers):
        if labelled and label is None:       # a picture: the n split over the classes
            x, labels = class_samples(model, n, seed)
        else:
            x, labels = model.sample(n, seed=seed), label
    if to_lines is not None and out is None:
        for line in to_lines(x, model):
            click.echo(line)
        return
    if suffix == ".txt":
        def write(tmp):
            tmp.write_text("".join(f"{line}\n" for line in to_lines(x, model)), "utf-8")
    elif suffix == ".png":
        def write(tmp):
            VIEWS.get(model.data.info.kind)().save_samples(
                x, tmp, trainer=model, **({"labels": labels} if labelled else {}))
    elif suffix == ".npy":
        def write(tmp):
            np.save(tmp, x.numpy())
    else:
        def write(tmp):
            np.savez(tmp, samples=x.numpy())
    replaced = write_via(out, write)
    click.echo(f"wrote {len(x)} sample{'s' * (len(x) != 1)} to {out}"
               + (" (replaced the existing file)" * replaced))


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@_model_device_option
def plot(run, device) -> None:
    """Redraw RUN's figures into its plots/ folder from the newest checkpoint and metrics,
    and its report.html with them; needs only the run folder (figures of real data are
    skipped, with a note, when the data cannot be read)."""
    from gankit import api
    from gankit.report import write_report

    for path in api.plot(run, device=device):
        click.echo(str(path))
    click.echo(str(write_report(run)))


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
def report(run) -> None:
    """Write RUN/report.html: one self-contained page (config, metrics with their protocol
    and direction, curves, samples over training, every figure, links to checkpoints)."""
    from gankit.report import write_report

    click.echo(str(write_report(run)))


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("compare.html"),
              show_default=True, help="The page to write.")
@click.option("--figure", type=click.Path(path_type=Path),
              help="Also write the runs' newest sample grids side by side to this picture "
                   "(.png, .jpg, .pdf or .svg).")
@click.option("--table", is_flag=True,
              help="Print a Markdown table of the runs' gankit eval results first.")
def compare(runs, out, figure, table) -> None:
    """Write one page comparing RUNS (two or more): their curves overlaid, a table of final
    and best values (a column per logged value), their newest `gankit eval` results (test
    NLL, cfd, precision/recall, samples/s, ...), their samples side by side, and their
    config differences."""
    from gankit.report import write_compare
    from gankit.report.pages import compare_table

    path = write_compare(list(runs), out, figure)
    if table:
        click.echo(compare_table(list(runs)))
    if figure is not None:
        click.echo(str(figure))
    click.echo(str(path))                   # the page last (scripts read the last line)


@cli.command("list")
def list_() -> None:
    """List presets, objectives, networks, data sets and metrics."""
    from gankit.config import list_presets
    from gankit.registry import ALL, METRICS

    from gankit.config import describe_preset

    width = max(len(name) for reg in ALL.values() for name in reg.names()) + 1
    click.echo("presets:")
    times = _runtimes()
    for name in list_presets():
        click.echo(f"  {name:<{width}} {describe_preset(name)} {_runtime_text(name, times)}")
    for kind, reg in ALL.items():
        click.echo(f"{kind}:")
        for name in reg.names():
            text = _metric_line(name) if reg is METRICS else reg.summary(name)
            click.echo(f"  {name:<{width}} {text}")


RUNTIMES = "runtimes.json"      # beside the presets: benchmarks/preset_times.py writes it


def _runtimes() -> dict:
    """{preset: measurement} from the presets' runtimes.json ({} when absent or unreadable)."""
    from gankit.config import PRESET_DIR
    from gankit.fileio import read_json

    presets = (read_json(PRESET_DIR / RUNTIMES) or {}).get("presets", {})
    return presets if isinstance(presets, dict) else {}


def _runtime_text(name: str, times: dict) -> str:
    """'~4 min on one core (measured)': the preset's steps x the measured CPU seconds per
    step; 'not measured' without an entry; a note when the preset file changed since."""
    import hashlib

    from gankit.config import PRESET_DIR, TrainConfig, load_yaml

    entry = times.get(name)
    try:
        per_step = float(entry["cpu_seconds_per_step"])
    except (TypeError, KeyError, ValueError):
        return "run time not measured"
    train = load_yaml(PRESET_DIR / f"{name}.yaml").get("train")
    steps = (train if isinstance(train, dict) else {}).get("steps", TrainConfig().steps)
    minutes = steps * per_step / 60
    if minutes < 1:
        text = "<1 min"
    elif minutes < 120:
        text = f"~{minutes:.0f} min"
    elif minutes < 48 * 60:
        text = f"~{minutes / 60:.0f} h"
    else:
        text = f"~{minutes / 60 / 24:.0f} days"
    sha = hashlib.sha256((PRESET_DIR / f"{name}.yaml").read_bytes()).hexdigest()
    changed = "" if entry.get("preset_sha256") in (None, sha) else "; the preset changed since"
    return f"{text} on one core (measured{changed})"


def _metric_line(name: str) -> str:
    """'Fréchet Inception distance ... (fid: lower is better)': meaning, keys, directions."""
    from gankit.metrics.protocol import describe_keys, metric

    m = metric(name)
    return f"{m.summary} ({describe_keys(m.keys())})"


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--input", "input_dir", type=click.Path(path_type=Path), required=True,
              help="Folder of images to translate, searched recursively for PNG, JPEG, "
                   "WebP, BMP, TIFF and PPM/PGM files (others, e.g. GIF, are not read).")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB",
              show_default=True, help="AtoB uses the A->B translator (pix2pix runs: AtoB only).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Output folder, new or empty and not inside --input or RUN: one image per "
                   "input, same relative name and extension (.png appended where Pillow cannot "
                   "write the format), and translation-sheet.png (inputs beside translations).")
@click.option("--size", type=click.IntRange(min=8),
              help="Resize inputs to SIZE px, at most 1024 (default: the size the run "
                   "trained at).")
def translate(run, input_dir, direction, out_dir, size) -> None:
    """Translate a folder of images with a CycleGAN or pix2pix RUN."""
    import warnings

    from gankit.translate import SHEET, translate_folder

    with warnings.catch_warnings(record=True) as caught:    # skipped files, unusual inputs:
        warnings.simplefilter("always")                     # one line each
        try:
            n = translate_folder(run, input_dir, direction, out_dir, size=size)
        finally:
            for w in caught:
                click.echo(f"gankit: warning: {w.message}", err=True)
    click.echo(f"translated {n} images into {out_dir} (side by side: {out_dir / SHEET})")


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--input", "inputs", multiple=True, required=True,
              metavar="FOLDER|FILE.npz|NAME:SPLIT",
              help="Images to score: a folder (searched recursively), a .npz of uint8 images "
                   "(key 'images' or 'x', or its only array; optional 'labels'), or a "
                   "built-in split such as mnist:test or fashion-mnist:test. Repeatable.")
@click.option("--outliers", multiple=True, metavar="FOLDER|FILE.npz|NAME:SPLIT",
              help="More images to score, all of them anomalous (the --input ones normal): "
                   "the truth for AUROC / AUPRC. Repeatable.")
@click.option("--normal-classes", metavar="K[,K...]",
              help="The truth from labels: images of --input whose class is not listed are "
                   "anomalous (one-class protocol; built-in splits, .npz with 'labels').")
@click.option("--method", help="nll, elbo, ratio, complexity, critic or fanogan (default: the "
                               "first the model offers; ratio with --background).")
@click.option("--background", type=click.Path(path_type=Path),
              help="The background run of --method ratio (trained with data.perturb).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="scores.csv (replaced if it exists); beside it scores.json (method, "
                   "protocol, AUROC/AUPRC), scores-most.png / scores-least.png and, with the "
                   "truth, scores-hist.png.")
@click.option("--resize", is_flag=True,
              help="Convert images of another size or channel count to the model's (else "
                   "they are refused).")
@click.option("--iw-samples", type=click.IntRange(min=1, max=1_000_000),
              help="Importance samples k of a VAE's NLL (samples of z for elbo); refused "
                   "where nothing reads them (no likelihood, or an exact one).")
@click.option("--limit", type=click.IntRange(min=1), help="Score the first N images of each input.")
@_model_device_option
def score(run, inputs, outliers, normal_classes, method, background, out, resize, iw_samples,
          limit, device) -> None:
    """Score images with RUN, one score per image, higher = more anomalous."""
    from gankit.api import score as api_score
    from gankit.log import note

    classes = _int_list(normal_classes, "--normal-classes")
    existed = out.exists()
    result = api_score(run, list(inputs), outliers=list(outliers), method=method,
                       background=background, normal_classes=classes, resize=resize,
                       iw_samples=iw_samples, limit=limit, out=out, device=device)
    for line in result.summary["notes"]:
        note(line)
    click.echo(f"scored {len(result.scores)} images with {result.summary['method']} "
               f"({result.summary['meaning']}) into {out}"
               + (" (replaced the existing file)" * existed))
    ev = result.summary.get("evaluation")
    if ev:
        click.echo(f"  AUROC {ev['auroc']:.4f}  AUPRC {ev['auprc']:.4f}  ({ev['n_normal']} "
                   f"normal, {ev['n_anomalous']} anomalous)")
        parts = result.summary.get("evaluation_of_parts", {})
        if parts:
            click.echo("  its parts alone: " + ", ".join(
                f"{k} AUROC {v['auroc']:.4f}" for k, v in parts.items()))
    click.echo(f"  also wrote: {', '.join(p.name for p in result.files[1:])}")


def _int_list(text: str | None, flag: str) -> list[int] | None:
    """'1,3' -> [1, 3]; GankitError (one line) for anything else."""
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise GankitError(f"{flag} takes class numbers separated by commas, not {text!r}") \
            from None


weights_option = click.option(
    "--inception-weights", type=click.Path(path_type=Path),
    help="pt_inception-2015-12-05-6726825d.pth (default: $GANKIT_INCEPTION_WEIGHTS, the cache, "
         "or a download).")
fid_method_option = click.option(
    "--fid-method", type=click.Choice(["sqrtm", "svd"]), default="sqrtm", show_default=True,
    help="Matrix square root as pytorch-fid (sqrtm) or an exact, faster SVD form.")


@cli.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@weights_option
@fid_method_option
@click.option("--save-stats", type=click.Path(path_type=Path),
              help="Write A's mu/sigma .npz (not A or B, nor inside them; an existing file is "
                   "replaced, and the command says so on stderr).")
@click.option("--resize", type=click.Choice(["pytorch-fid", "clean"]), default="pytorch-fid",
              show_default=True, help="pytorch-fid bilinear resize, or clean-fid PIL bicubic.")
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True)
def fid(a, b, inception_weights, fid_method, save_stats, resize, batch_size) -> None:
    """FID between A and B (image folders or .npz statistics), as one JSON object."""
    from gankit.eval.api import fid_between

    replacing = save_stats is not None and save_stats.is_file()
    with _json_stdout():        # stdout holds only the JSON
        result = fid_between(a, b, weights=inception_weights, save_stats=save_stats,
                             resize=resize, batch_size=batch_size, fid_method=fid_method)
    _echo_json(result)
    if replacing:
        click.echo(f"gankit: replaced the existing {save_stats}", err=True)


def _metrics_help() -> str:
    from gankit.registry import METRICS

    return f"Comma-separated metrics (`gankit list`): {', '.join(METRICS.names())}."


@cli.command("eval")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--metrics", help=_metrics_help() + " Default: every metric that applies to RUN.")
@click.option("--n", "n", type=click.IntRange(2, MAX_N), default=10000, show_default=True,
              help="Samples per metric: N generated samples (and N real ones where a metric "
                   "compares with real data); for metrics of held-out data (nll, test-error) "
                   "N held-out examples are scored instead (all of them when there are fewer).")
@click.option("--seed", type=_SEED,
              help="Seed of the evaluation samples (default: each metric's fixed seed).")
@click.option("--best", is_flag=True, help="Use the best checkpoint (eval.best_metric).")
@weights_option
@fid_method_option
@click.option("--iw-samples", type=click.IntRange(min=1, max=1_000_000),
              help="Importance samples k of an estimated likelihood (nll of a VAE: the "
                   "IWAE bound, Burda et al. 2016); default: the model's own (vae: 5000). "
                   "Refused when no metric uses them (no nll, or an exact likelihood).")
@_model_device_option
def eval_(run, metrics, n, seed, best, inception_weights, fid_method, iw_samples,
          device) -> None:
    """Evaluate RUN's generator; prints one JSON object (values, then how each metric
    measured them under "protocol") and saves it as eval-STEP.json in the run folder
    (eval-STEP-2.json, ... when an earlier, different result is there). Needs only the run
    folder, except metrics that compare with real data (they read the run's data)."""
    from gankit import api

    names = None if metrics is None else [m.strip() for m in metrics.split(",") if m.strip()]
    with _json_stdout():        # notes (skipped metrics or checkpoints) go to stderr
        result = api.evaluate(run, names, n, seed, best=best,
                              inception_weights=inception_weights, fid_method=fid_method,
                              device=device, iw_samples=iw_samples)
        path = api.save_evaluation(run, result)
    _echo_json(result)
    click.echo(f"gankit: saved {path}", err=True)


def _echo_json(obj) -> None:
    """Print ``obj`` as one line of strict JSON: metric values are checked finite before
    they get here (gankit.metrics.finite), and ``allow_nan=False`` makes sure no NaN or
    Infinity token (not JSON) is ever printed."""
    click.echo(json.dumps(obj, allow_nan=False))


def _report(run, quiet: bool = False, as_json: bool = False) -> None:
    """The end of a run: a short summary (metrics rounded, figures, what to do next), or with
    ``--json`` the last value of every logged metric as one JSON object."""
    if os.environ.get("RANK", "0") != "0" or quiet:     # torchrun: rank 0 speaks for the run
        return
    from gankit.train.callbacks import loss_text, short

    last: dict = {}
    for r in run.read_metrics():
        last |= r
    last = {k: v for k, v in last.items() if not k.startswith("lr/")}
    if as_json:
        from gankit.run import _jsonable       # metrics.jsonl's convention: NaN -> "nan"
        _echo_json({k: _jsonable(v) for k, v in last.items()})
        return
    skip = {"step", "images_seen", "seconds", "skipped_updates"}
    scores = "  ".join(f"{k} {short(v)}" for k, v in last.items()
                       if k not in skip and not k.startswith(("loss/", "grad_norm", "D(", "D_")))
    click.echo(f"finished step {last.get('step', 0)} in {short(last.get('seconds', 0.0))} s: "
               f"{loss_text(last)}")
    if scores:
        click.echo(f"  metrics: {scores}")
    import shlex

    from gankit.translate import translates

    cfg = run.read_config()
    figures = sorted(p.name for p in (run.path / "plots").glob("*.png"))
    here = shlex.quote(str(run.path))       # commands to copy: a path with spaces stays one
    if figures:
        click.echo(f"  figures in {run.path / 'plots'}: {', '.join(figures)}")
    else:
        why = " (log.figures=false)" * (not cfg.log.figures)
        click.echo(f"  figures: none drawn{why}; gankit plot {here} draws them")
    if (run.path / "report.html").exists():
        click.echo(f"  report: {run.path / 'report.html'}")
    first = (f"gankit translate {here} --input FOLDER --out OUT" if translates(cfg.objective)
             else f"gankit sample {here} --out samples.png")
    click.echo(f"  next: {first} | gankit eval {here} | gankit resume {here} --steps N")


def main(argv: list[str] | None = None) -> None:
    from gankit.log import set_quiet

    set_quiet(False)                # each invocation starts talkative (--quiet turns it off)
    try:
        cli.main(args=argv, prog_name="gankit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("gankit: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"gankit: error: {e.format_message()}", err=True)
        sys.exit(2)
    except GankitError as e:
        msg = " ".join(str(e).split())       # always one line
        rank = os.environ.get("RANK", "0")     # torchrun: say which process failed
        click.echo(f"gankit: error: {'' if rank == '0' else f'[rank {rank}] '}{msg}", err=True)
        sys.exit(getattr(e, "exit_code", 2))
