"""``report.html`` after every run, ``gankit compare``, TensorBoard event files.

A tiny run of each data kind (2-D and 1-D toys, MNIST images, unpaired and paired
translation) is trained once for the module, with its figures; the report must show every
picture of the run, in a real browser with the network off (tests/browser.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import chrome, save_screenshot  # noqa: F401 - the fixture
from cli_runner import run_cli
from test_contract import tiny_config

from gankit import api
from gankit.errors import GankitError
from gankit.report import REPORT_NAME, pages
from gankit.report.collect import IMAGE_TYPES

KINDS = {"toy2d": "nonsaturating", "toy1d": "nonsaturating", "image": "nonsaturating",
         "unpaired": "cyclegan", "paired": "pix2pix"}
WITH_FIGURES = "image"      # the others skip their figures (seconds; the report's code is one)
LOG = {"progress": False, "sample_at": [1, 2], "n_fixed": 4, "every": 1}


def tiny(kind: str, objective: str | None = None, figures: bool = True, steps: int = 3, **log):
    cfg = tiny_config(objective or KINDS[kind], kind, log=LOG | {"figures": figures} | log)
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": steps})})


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root) -> dict[str, Path]:
    """{data kind: run folder} of 3-step runs (``WITH_FIGURES`` with its final figures)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANKIT_DATA", str(data_root))
        mp.setenv("GANKIT_OFFLINE", "1")
        return {kind: api.train(tiny(kind, figures=kind == WITH_FIGURES), root / kind).path
                for kind in KINDS}


class Images(HTMLParser):
    """The ``data-name`` and ``src`` of every <img>, and every href and src."""

    def __init__(self):
        super().__init__()
        self.names, self.links = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.names.append(a.get("data-name"))
        self.links += [a[k] for k in ("src", "href") if a.get(k)]


def parse(page: Path) -> Images:
    p = Images()
    p.feed(page.read_text())
    return p


def picture_files(run: Path) -> set[str]:
    return {p.relative_to(run).as_posix() for p in run.rglob("*")
            if p.suffix.lower() in IMAGE_TYPES}


@pytest.mark.parametrize("kind", list(KINDS))
def test_report_after_a_run_of_each_data_kind(runs, kind):
    run = runs[kind]
    page = parse(run / REPORT_NAME)
    files = picture_files(run)
    assert any(f.startswith("samples/step-") for f in files)
    assert any(f.startswith("plots/") for f in files) == (kind == WITH_FIGURES)
    assert files <= set(page.names), files - set(page.names)      # every picture is shown
    assert ("metrics.jsonl" in page.names) == (kind == WITH_FIGURES)     # the curves
    assert all(link.startswith(("data:", "checkpoints/")) for link in page.links), page.links
    assert all((run / link).is_file() for link in page.links if not link.startswith("data:"))
    text = (run / REPORT_NAME).read_text()
    assert "loss/D" in text and "objective:" in text and "not a score" in text


def test_report_opens_offline_in_a_browser_and_shows_every_picture(runs, chrome):  # noqa: F811
    chrome.set_network_conditions(offline=True, latency=0, download_throughput=0,
                                  upload_throughput=0)
    for kind, run in runs.items():
        chrome.get((run / REPORT_NAME).as_uri())
        shown = chrome.execute_script(
            "return [...document.images].map(i => [i.dataset.name, i.complete, i.naturalWidth])")
        assert all(done and width > 0 for _, done, width in shown), (kind, shown)
        assert picture_files(run) <= {name for name, _, _ in shown}, kind
        assert chrome.title.startswith(run.name)
        save_screenshot(chrome, f"report-{kind}")


def test_compare_two_objectives_overlays_both_curves(runs, tmp_path, monkeypatch):
    wgan = api.train(tiny("toy2d", "wgan-gp", figures=False), tmp_path / "wgan").path
    drawn = []
    real = pages.curves_png
    monkeypatch.setattr(pages, "curves_png", lambda p, r: drawn.append((p, r)) or real(p, r))
    out = tmp_path / "pages" / "compare.html"
    code, stdout, err = run_cli(["compare", str(runs["toy2d"]), str(wgan), "--out", str(out)])
    assert code == 0 and stdout.strip() == str(out), err
    (panels, names), = drawn
    assert names == ["toy2d", "wgan"]
    lines = dict(panels)["loss/D"]
    assert all(lines[n] for n in names)                       # one line per run, same axes
    assert dict(panels)["W1_estimate"]["toy2d"] == []        # a key only one run logged
    page = out.read_text()
    assert page.count('data-name="metrics.jsonl"') == 1
    assert 'href="/' not in page and f'href="../wgan/{REPORT_NAME}"' in page     # relative
    diff = re.search(r'<tr class="diff"><td class="key">objective.name</td>', page)
    assert diff, "differing config keys are highlighted"
    assert "All config keys" in page and "training time" in page


def test_compare_and_report_refuse_what_is_not_a_run(runs, tmp_path):
    a, b, page = str(runs["toy2d"]), str(runs["toy1d"]), str(tmp_path / "c.html")
    for args in (["compare", a, str(tmp_path), "--out", page], ["compare", a, "--out", page],
                 ["compare", a, b, "--out", str(tmp_path)], ["report", str(tmp_path / "no")]):
        code, out, err = run_cli(args)
        assert code == 2 and err.count("\n") == 1 and "gankit: error:" in err, (args, err)
    assert not (tmp_path / "c.html").exists()


def test_report_without_figures_on_resume_and_with_eval_results(tmp_path):
    cfg = tiny("toy2d", figures=False, steps=4)
    run = api.train(cfg, tmp_path / "run", until=2).path
    first = (run / REPORT_NAME).read_text()
    assert "step 2 of 4" in first and "Curves not drawn" in first and "step-00000002.png" in first
    assert "No figures (<code>log.figures=false</code> skips them)" in first
    api.resume(run)
    again = (run / REPORT_NAME).read_text()
    assert "step 4 of 4" in again and "step-00000004.png" in again
    api.evaluate(run, ["toy2d"], n=200, save=True)                 # eval-00000004.json
    code, out, err = run_cli(["report", str(run)])
    page = (run / REPORT_NAME).read_text()
    assert code == 0 and out.strip() == str(run / REPORT_NAME), err
    assert "eval-00000004.json" in page and "n_generated" in page and "higher is better" in page
    # a second result at the step (another seed: eval-00000004-2.json) is shown too; it was
    # left out while `gankit compare` read it
    api.evaluate(run, ["toy2d"], n=200, seed=5, save=True)
    assert run_cli(["report", str(run)])[0] == 0
    page = (run / REPORT_NAME).read_text()
    assert page.index("eval-00000004.json") < page.index("eval-00000004-2.json")
    from gankit.report.collect import latest_evals
    assert latest_evals(run)["modes"]["how"] == "n=200, seed=5"
    assert 'data-name="metrics.jsonl"' in page                    # gankit report draws curves


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = api.train(tiny("toy2d", figures=False, tensorboard=True), tmp_path / "run").path
    events = EventAccumulator(str(run))
    events.Reload()
    tags = events.Tags()
    assert [e.step for e in events.Scalars("loss/D")] == [1, 2, 3]
    assert "samples" in tags["images"] and "config/text_summary" in tags["tensors"]
    page = (run / REPORT_NAME).read_text()
    assert f"TensorBoard logs are in this folder: <code>tensorboard --logdir {run.absolute()}" \
        in page                                   # a path that works from anywhere


def test_tensorboard_true_needs_the_package(tmp_path, monkeypatch):
    from gankit.train import tensorboard
    monkeypatch.setattr(tensorboard, "installed", lambda: False)
    with pytest.raises(GankitError, match="tensorboard"):
        api.train(tiny("toy2d", figures=False, tensorboard=True), tmp_path / "a")
    assert not (tmp_path / "a").exists()
    run = api.train(tiny("toy2d", figures=False), tmp_path / "b").path     # auto: off
    assert not list(run.glob("events.out.tfevents.*"))
