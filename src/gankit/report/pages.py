"""The pages: ``report.html`` of one run, ``compare.html`` of several.

Both are single self-contained files rendered with Jinja2 from the package's templates
(``gankit/templates``): pictures inline as ``data:`` URIs, CSS inline, no script, and a
Content-Security-Policy that lets the page load nothing from anywhere, so that it opens the
same from a laptop, a mail attachment or a machine without network. Curves are drawn with
matplotlib (the library the run's figures use) into one inline PNG.
"""

from __future__ import annotations

import io
import os
import shlex
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from gankit.errors import GankitError
from gankit.fileio import atomic_write
from gankit.outputs import check_writable, refuse_overlap
from gankit.run import CONFIG_NAME
from gankit.report import collect
from gankit.report.collect import RunRecord, Series

REPORT_NAME = "report.html"
PANEL_INCHES = (3.2, 2.4)     # one curve panel
CURVE_DPI = 80
MAX_COLS = 4

_ENV: Environment | None = None


def env() -> Environment:
    """The templates' environment (built once per process; autoescaped HTML)."""
    global _ENV
    if _ENV is None:
        _ENV = Environment(loader=PackageLoader("gankit", "templates"),
                           autoescape=select_autoescape(["html"]), trim_blocks=True,
                           lstrip_blocks=True)
        _ENV.filters["num"] = number
    return _ENV


def number(value: Any) -> str:
    """4 significant digits for floats, integers with thousands separators, text as it is
    ('' for None)."""
    from gankit.train.callbacks import short

    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else short(value)


def render(template: str, **context: Any) -> str:
    try:
        version = metadata.version("gankit")
    except metadata.PackageNotFoundError:
        version = "?"
    return env().get_template(template).render(
        version=version, generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"), **context)


# ---------------------------------------------------------------- curves
def curves_png(panels: list[tuple[str, dict[str, list[tuple[int, float]]]]],
               runs: list[str]) -> str | None:
    """One PNG (as a data URI) of small panels, one per (title, {run label: points}), each
    line coloured by its run's place in ``runs`` (a legend above when there are several).
    None when no panel has a point. A fixed layout on a bare ``Figure`` (no pyplot state,
    no constrained layout) keeps this to a few tenths of a second for a dozen panels."""
    fig = curves_figure(panels, runs)
    return None if fig is None else png_uri(fig)


def png_uri(fig) -> str:
    """A matplotlib figure rendered to PNG, as a data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=CURVE_DPI)
    return collect.encode(buf.getvalue(), "image/png")


def curves_figure(panels: list[tuple[str, dict[str, list[tuple[int, float]]]]],
                  runs: list[str]):
    """The matplotlib ``Figure`` of ``curves_png`` (None when no panel has a point)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from gankit.plots.common import plot_series

    panels = [(t, lines) for t, lines in panels if any(lines.values())]
    if not panels:
        return None
    ncols = min(MAX_COLS, len(panels))
    nrows = -(-len(panels) // ncols)
    head = 0.35 + (0.3 if len(runs) > 1 else 0.0)            # inches above the panels
    width, height = PANEL_INCHES[0] * ncols, PANEL_INCHES[1] * nrows + head
    fig = Figure(figsize=(width, height))
    ax = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.45 / height,
                        top=1 - head / height, wspace=0.35, hspace=0.55)
    for a, (title, lines) in zip(ax.flat, panels):
        for label, pts in lines.items():
            if pts:
                plot_series(a, pts)
                a.lines[-1].set_color(f"C{runs.index(label) % 10}")
        a.set_title(title, fontsize=9)
        a.tick_params(labelsize=7)
        a.locator_params(nbins=4)
        a.set_xlabel("generator step", fontsize=7)
    for a in ax.flat[len(panels):]:
        a.set_visible(False)
    if len(runs) > 1:
        handles = [Line2D([], [], color=f"C{i % 10}", label=r) for i, r in enumerate(runs)]
        fig.legend(handles=handles, loc="upper center", ncol=min(len(runs), 4), fontsize=8,
                   frameon=False)
    return fig


def panel_title(s: Series) -> str:
    return f"{s.key} ({s.direction_words})" if s.direction else s.key


# ---------------------------------------------------------------- one run
def write_report(path: Path | str, curves: bool = True) -> Path:
    """Write ``report.html`` into the run folder ``path`` and return its path: the resolved
    config, every logged key with its meaning, direction and protocol (final and best values),
    curves (``curves`` False: not drawn, e.g. for ``log.figures=false``), the fixed-noise
    samples over the steps, every other picture of the run, ``gankit eval`` results and
    relative links to the checkpoints. Reads only files (see ``collect``); GankitError when
    ``path`` is not a run folder."""
    rec = collect.load_run(path)
    root, name = rec.path, rec.path.name
    image = None
    if curves:
        image = curves_png([(panel_title(s), {name: s.points}) for s in rec.series.values()],
                           [name])
    page = render("report.html", run=rec, name=name, curves=image, curves_drawn=curves,
                  pictures=collect.pictures(root), checkpoints=collect.checkpoints(root),
                  evals=collect.eval_results(root), config_text=(root / CONFIG_NAME).read_text(),
                  caption=samples_caption(rec.config), tensorboard=collect.has_tensorboard(root),
                  logdir=shlex.quote(str(root.absolute())),
                  figures_off=(rec.config.get("log") or {}).get("figures") is False)
    out = root / REPORT_NAME
    atomic_write(out, page.encode("utf-8"))
    return out


def samples_caption(config: dict[str, Any]) -> str:
    """What the sample pictures show: the view of the run's data kind says it when it has a
    ``samples_caption(config)`` (e.g. translation columns), else a general sentence."""
    from gankit.plots import VIEWS
    from gankit.registry import DATASETS

    default = ("Fixed-noise samples at the sample steps (the same noise each time), "
               "oldest first.")
    try:
        kind = DATASETS.get(config["data"]["name"]).kind
        caption = getattr(VIEWS.get(kind), "samples_caption", None)
        return caption(config) if caption else default
    except (GankitError, KeyError, TypeError):      # e.g. a plug-in's data set not loaded
        return default


def write_report_quietly(path: Path, curves: bool) -> Path | None:
    """``write_report`` at the end of training: a report that cannot be written costs one
    line, never the run (the run's own files are already saved)."""
    from gankit.log import note

    try:
        return write_report(path, curves=curves)
    except Exception as e:           # noqa: BLE001 - the run is done; say it and go on
        if os.environ.get("GANKIT_STRICT_FIGURES"):
            raise
        note(f"report.html not written ({type(e).__name__}: {' '.join(str(e).split())[:200]})")
        return None


# ---------------------------------------------------------------- several runs
PAGE_TYPES = (".html", ".htm")
FIGURE_TYPES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")    # matplotlib writes each
FIGURE_DPI = 100


@dataclass(frozen=True)
class Comparison:
    """The files ``write_comparison`` wrote: the ``page``, the ``figure`` (None when not
    asked for), and those of them that ``replaced`` an existing file."""

    page: Path
    figure: Path | None
    replaced: tuple[Path, ...]


def write_compare(paths: list[Path | str], out: Path | str,
                  figure: Path | str | None = None) -> Path:
    """``write_comparison``, with one note per existing file it replaced ("replaced the
    existing file ..."); returns the page's path."""
    from gankit.log import note

    written = write_comparison(paths, out, figure)
    for path in written.replaced:
        note(f"replaced the existing file {path}")
    return written.page


def write_comparison(paths: list[Path | str], out: Path | str,
                     figure: Path | str | None = None) -> Comparison:
    """Write one page comparing the runs in ``paths`` (two or more, all different) to
    ``out``: their curves overlaid (one panel per logged key, one line per run), a table with
    a column per logged key (final value; best value and its step for scores, by the key's
    declared direction, the best run marked), steps, images seen and training time, a table
    of their ``gankit eval`` results (test NLL, cfd, precision/recall, samples/s, ... with
    how many samples; ``collect.latest_evals`` picks one per key), the newest sample grid of
    each side by side (also written to ``figure``, in the format its suffix names:
    ``FIGURE_TYPES``), and their resolved configs (the keys that differ, and all of them in
    a folded section). An existing file at ``out`` or ``figure`` is replaced (whole or not
    at all; ``gankit.outputs`` rule 4).

    GankitError (one line), before anything is written, for fewer than two runs, a run given
    twice, a folder that is not a run, an output inside a run folder (``gankit.outputs``
    rule 1: compare never writes into its inputs), a folder, an unknown suffix, a ``figure``
    when no run has a sample grid, or an output that cannot be written."""
    records = collect.require_runs([Path(p) for p in paths])
    out, figure = Path(out), None if figure is None else Path(figure)
    check_outputs(records, out, figure)
    names = collect.labels(records)
    keys = _union_keys(records)
    panels = [(panel_title(s), {n: r.series[k].points if k in r.series else []
                                for n, r in zip(names, records)})
              for k, s in keys.items()]
    runs = [{"name": n, "record": r, "link": _link(r, out)} for n, r in zip(names, records)]
    fig = samples_figure(records, names)
    if fig is None and figure is not None:
        raise GankitError(f"--figure {figure}: none of the runs has a sample grid "
                          "(samples/step-N.png) to show")
    page = render("compare.html", runs=runs, columns=_columns(records, keys),
                  evals=eval_columns(records), samples=None if fig is None else png_uri(fig),
                  curves=curves_png(panels, names), config_rows=collect.config_rows(records))
    replaced = {}                                     # path -> whether a file was there
    if figure is not None:
        replaced[figure] = _write(figure, _figure_bytes(fig, figure.suffix))
    replaced[out] = _write(out, page.encode("utf-8"))
    return Comparison(out, figure, tuple(p for p, was in replaced.items() if was))


def check_outputs(records: list[RunRecord], out: Path, figure: Path | None) -> None:
    """GankitError (one line) unless ``out`` (a ``PAGE_TYPES`` file) and ``figure`` (None,
    or a ``FIGURE_TYPES`` file: never the page's) are files outside every run folder."""
    for flag, path, types in (("--out", out, PAGE_TYPES), ("--figure", figure, FIGURE_TYPES)):
        if path is None:
            continue
        for record in records:
            refuse_overlap(path, {"the run folder": record.path}, flag)
        if path.is_dir():
            raise GankitError(f"{flag} {path} is a folder; name the file to write")
        if path.suffix.lower() not in types:
            raise GankitError(f"{flag} must end in {', '.join(types[:-1])} or {types[-1]}, "
                              f"not {path.suffix or '(none)'}")
        check_writable(path, flag)                  # both, before either is written


def _write(path: Path, data: bytes) -> bool:
    """``data`` written whole to ``path`` (``atomic_write``); returns whether an existing
    file was replaced. GankitError (one line) when it cannot be written."""
    existed = path.exists()
    try:
        atomic_write(path, data)
        return existed
    except OSError as e:
        raise GankitError(f"cannot write {path}: {e.strerror or e}") from None


def _figure_bytes(fig, suffix: str, dpi: int = FIGURE_DPI) -> bytes:
    """``fig`` rendered in the format ``suffix`` names ('.png', '.jpg', '.pdf', ...)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=suffix.lower().lstrip("."), dpi=dpi)
    return buf.getvalue()


def eval_columns(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One column per key of the runs' ``gankit eval`` results
    (``collect.latest_evals``): {"key", "direction", "cells": per run {"value", "how",
    "step", "top": the best run by the key's direction}}."""
    evals = [collect.latest_evals(r.path) for r in records]
    keys = list(dict.fromkeys(k for e in evals for k in e))
    columns = []
    for key in keys:
        entry = collect.catalog_entry(key)
        direction = entry[1] if entry else None
        cells = [dict(e[key], top=False) if key in e else None for e in evals]
        present = [c for c in cells if c is not None]
        if direction and present:
            best = (min if direction == "min" else max)(c["value"] for c in present)
            for c in present:
                c["top"] = c["value"] == best
        columns.append({"key": key, "direction": protocol_words(direction), "cells": cells})
    return columns


def protocol_words(direction: str | None) -> str:
    from gankit.metrics.protocol import DIRECTION_WORDS
    return DIRECTION_WORDS[direction] if direction else ""


def newest_samples(record: RunRecord) -> tuple[int, Path] | None:
    """(step, path) of the run's newest sample grid (samples/step-N.png), or None."""
    grids = [(int(m.group(1)), p) for p in (record.path / "samples").glob("step-*.png")
             if (m := collect.SAMPLE_FILE.match(p.name))]
    return max(grids) if grids else None


def samples_figure(records: list[RunRecord], names: list[str]):
    """A matplotlib Figure with each run's newest sample grid side by side, titled with the
    run, its objective and the step; None when no run has one."""
    from matplotlib.figure import Figure
    from PIL import Image

    grids = [(n, r, newest_samples(r)) for n, r in zip(names, records)]
    grids = [(n, r, g) for n, r, g in grids if g is not None]
    if not grids:
        return None
    fig = Figure(figsize=(4.2 * len(grids), 4.8), layout="constrained")
    for a, (name, record, (step, path)) in zip(fig.subplots(1, len(grids), squeeze=False)[0],
                                                grids):
        with Image.open(path) as im:
            a.imshow(im.convert("RGB"), interpolation="nearest")
        a.set_title(f"{name}\n{record.section_name('objective')}, step {step:,}", fontsize=9)
        a.axis("off")
    return fig


def compare_table(paths: list[Path | str]) -> str:
    """A Markdown table of the runs in ``paths``: objective, data, steps, training time and
    their ``gankit eval`` values (``collect.latest_evals``, with n / k, and the step measured
    at when older than the run's newest: ``table_cell``), one row per run."""
    records = collect.require_runs([Path(p) for p in paths])
    names = collect.labels(records)
    columns = eval_columns(records)
    head = ["run", "objective", "data", "steps", "training time (s)"]
    head += [f"{c['key']} ({c['direction']})" if c["direction"] else c["key"] for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, (name, r) in enumerate(zip(names, records)):
        newest = r.counter("step", 0)
        row = [name, r.section_name("objective"), r.section_name("data"), number(newest),
               number(r.counter("seconds"))]
        row += [table_cell(c["cells"][i], newest) for c in columns]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def table_cell(cell: dict[str, Any] | None, newest: int) -> str:
    """A ``gankit eval`` value of ``eval_columns`` as text: '81.2 (step 100, n=256, k=50)',
    with the step it was measured at when that is not the run's ``newest`` step (an older
    result, e.g. of before a resume); '' for no value."""
    if cell is None:
        return ""
    how = [f"step {number(cell['step'])}"] if cell["step"] not in (None, newest) else []
    how += [cell["how"]] if cell["how"] else []
    return number(cell["value"]) + (f" ({', '.join(how)})" if how else "")


def _union_keys(records: list[RunRecord]) -> dict[str, Series]:
    """Every key any run logged, in the report's order (a representative Series each)."""
    keys: dict[str, Series] = {}
    for r in records:
        for k, s in r.series.items():
            keys.setdefault(k, s)
    return dict(sorted(keys.items(), key=lambda item: collect.group_rank(item[1])))


def _columns(records: list[RunRecord], keys: dict[str, Series]) -> list[dict[str, Any]]:
    """One column per key: {"key", "direction", "meaning", "cells": per run {"final",
    "best", "best_step", "top": the best run of a score}}."""
    columns = []
    for key, rep in keys.items():
        cells = []
        for r in records:
            s = r.series.get(key)
            best_step, best = (s.best if s and s.best else (None, None))
            cells.append({"final": s.last if s else None, "best": best,
                          "best_step": best_step, "top": False})
        scored = [c for c in cells if c["best"] is not None]
        if rep.direction and scored:
            pick = min if rep.direction == "min" else max
            top = pick(c["best"] for c in scored)
            for c in scored:
                c["top"] = c["best"] == top
        columns.append({"key": key, "direction": rep.direction_words if rep.direction else "",
                        "meaning": rep.meaning, "scored": rep.direction is not None,
                        "cells": cells})
    return columns


def _link(record: RunRecord, out: Path) -> str | None:
    """The run's report.html relative to the compare page (None when it has none)."""
    report = record.path / REPORT_NAME
    if not report.exists():
        return None
    return Path(os.path.relpath(report.resolve(), out.resolve().parent)).as_posix()
