"""Text data, the character-level language model's pieces and its metrics (issue 18).

The n-gram JS divergence against a hand computation, the word share, the gradient penalty on
one-hot / softmax text, the corpus reader (cut, pad, vocabulary, held-out lines), the Tiny
Shakespeare download with its published MD5 (a loopback server, never the network), and
``gankit sample RUN`` printing lines.
"""

from __future__ import annotations

import functools
import http.server
import math
import os
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cli_runner import run_cli
from gankit import api
from gankit.config import describe_preset, validate
from gankit.data.base import DataInfo
from gankit.data.text import CORPORA, UNKNOWN, Text, TextParams, one_hot, read_lines
from gankit.errors import DataError
from gankit.metrics import text as text_metric
from gankit.metrics.text import (MIN_WORDS, TextMetrics, js_divergence, ngram_counts,
                                 word_fraction, words_per_line)
from gankit.nn.text import TextConvParams, TextCritic, TextGenerator
from gankit.plots.text import TextView
from gankit.objectives.functional import gradient_penalty

SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"
TINY_MODEL = {"name": "textconv", "z_dim": 8, "dim": 8, "blocks": 1}


# ----------------------------------------------------------------------------- metrics
def test_ngram_js_equals_a_hand_computation():
    generated, heldout = ["ab", "aa"], ["bb"]
    # 1-grams: P = (a 3/4, b 1/4), Q = (b 1); M = (a 3/8, b 5/8)
    kl_pm = 3 / 4 * math.log2((3 / 4) / (3 / 8)) + 1 / 4 * math.log2((1 / 4) / (5 / 8))
    kl_qm = 1.0 * math.log2(1 / (5 / 8))
    p, q = ngram_counts(generated, 1), ngram_counts(heldout, 1)
    assert p == Counter({("a",): 3, ("b",): 1})
    assert js_divergence(p, q) == pytest.approx((kl_pm + kl_qm) / 2, abs=1e-12)
    # 2-grams {ab, aa} vs {bb}: disjoint supports, 1 bit; a table with itself: 0
    assert js_divergence(ngram_counts(generated, 2), ngram_counts(heldout, 2)) == 1.0
    assert js_divergence(p, p) == 0.0
    assert ngram_counts(["abc"], 4) == Counter()
    with pytest.raises(ValueError, match="empty"):
        js_divergence(Counter(), q)


def test_word_fraction_counts_words_of_two_or_more_letters():
    vocabulary = {"in", "the", "beginning"}
    # words: in, the, beginnin, xq, the (single letters and digits are not words)
    assert word_fraction(["In the beginnin", "a xq THE 12"], vocabulary, min_words=5) == 3 / 5
    assert words_per_line(["In the beginnin", "a xq THE 12"]) == 5 / 2
    assert words_per_line([]) == 0.0


def test_word_fraction_is_0_below_its_minimum_of_words():
    """Once 1.0 for blank lines with one real word: better than real text."""
    vocabulary = {"ed", "the"}
    assert MIN_WORDS == 20
    blank = [""] * 255 + ["ED"]
    assert word_fraction(blank, vocabulary) == 0.0                        # 1 word < 20
    assert word_fraction(["a 1 ;"], vocabulary) == 0.0                    # no words at all
    assert word_fraction(["ed the xq"] * 6, vocabulary) == 0.0            # 18 words
    assert word_fraction(["ed the xq"] * 7, vocabulary) == 14 / 21        # 21 words
    assert word_fraction(["ED"], vocabulary, min_words=1) == 1.0


def test_the_text_metric_reports_how_many_words_it_judged(tmp_path, monkeypatch):
    """A generator of blank lines and one word: word_fraction 0, words_generated 1, beside
    the words per held-out line (the corpus: 5 words a line)."""
    lines = [f"the cat sat on mat {i}" for i in range(400)]
    src = Text.build(TextParams(path=str(corpus(tmp_path, lines)), seq_len=24), seed=0)
    written = ["on"] + [""] * 15
    monkeypatch.setattr(text_metric, "generated_samples",
                        lambda trainer, n, seed: one_hot(src.info.encode(written[:n]),
                                                         src.info.shape[1]))
    values = TextMetrics.evaluate(SimpleNamespace(data=src), 16)
    assert set(values) == set(TextMetrics.keys())
    assert values["words_generated"] == 1.0 and values["word_fraction"] == 0.0
    assert values["words_per_line_floor"] == 5.0
    assert values["word_fraction_floor"] == 1.0
    assert TextMetrics.keys()["words_generated"] is None           # not a score
    # real text keeps its share with few words (2 lines: 10 words), and the protocol says
    # how the floor's lines were drawn when the corpus has fewer than n
    assert TextMetrics.evaluate(SimpleNamespace(data=src), 2)["word_fraction_floor"] == 1.0
    trainer = SimpleNamespace(data=src)
    held = len(src.heldout())
    assert TextMetrics.describe(trainer, 16)["floor"].startswith("16 training lines (seed")
    floor = TextMetrics.describe(trainer, 5000)["floor"]
    assert f"5000 held-out lines drawn with replacement from {held}" in floor
    assert f"5000 training lines drawn with replacement from {len(src)}" in floor


# ----------------------------------------------------------------------------- networks
def test_gradient_penalty_on_one_hot_and_softmax_text():
    torch.manual_seed(0)
    B, L, V = 4, 6, 5
    p = TextConvParams(dim=8, blocks=1)
    G, D = TextGenerator(p, 3, L, V), TextCritic(p, L, V)
    fake = G(torch.randn(B, 3))                                   # softmax (B, L, V)
    real = torch.nn.functional.one_hot(torch.randint(V, (B, L)), V).float()
    assert fake.shape == real.shape == (B, L, V)
    assert torch.allclose(fake.sum(-1), torch.ones(B, L))
    seen = []
    gp, norm = gradient_penalty(lambda x: (seen.append(x), D(x))[1], real, fake, None)
    assert gp.shape == () and norm.shape == () and torch.isfinite(gp)
    (x_hat,) = seen
    assert x_hat.shape == (B, L, V)
    assert torch.allclose(x_hat.sum(-1), torch.ones(B, L))       # on the simplex
    eps = (x_hat - fake.detach()) / (real - fake.detach())        # one mixing weight per line
    assert torch.allclose(eps, eps[:, :1, :1].expand_as(eps), atol=1e-4)
    gp.backward()         # twice differentiable (biases before linear maps do not move grad_x D)
    assert all(w.grad is not None for k, w in D.named_parameters() if k.endswith("weight"))


# ----------------------------------------------------------------------------- data
def corpus(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_lines_are_cut_padded_and_held_out_by_content(tmp_path):
    lines = [f"line {i} " + "x" * (i % 7) for i in range(200)] + ["", "  "]
    params = TextParams(path=str(corpus(tmp_path, lines)), seq_len=8, vocab_size=3,
                        holdout=0.25)
    src = Text.build(params, seed=0)
    info = src.info
    assert params.corpus is None and info.kind == "text"
    assert info.vocab[:2] == ("`", UNKNOWN) and len(info.vocab) == 5 and info.shape == (8, 5)
    assert info.vocab[2:] == ("x", " ", "e")       # by frequency; e, i, l, n tie: by character
    assert len(src) + len(src.held_lines) == 200                  # blank lines dropped
    assert 20 < len(src.held_lines) < 80 and not set(src.held_lines) & set(src.lines)
    again = Text.build(params, seed=1)
    assert again.held_lines == src.held_lines                     # not the run's seed
    x = src.next_batch(3)["x"]
    assert x.shape == (3, 8, 5) and torch.equal(x.sum(-1), torch.ones(3, 8))
    idx = info.encode(["ab", "line 1234567"])
    assert idx.shape == (2, 8) and idx[0, 2:].eq(0).all() and idx[0, :2].eq(1).all()
    assert info.to_text(idx) == [UNKNOWN * 2, UNKNOWN * 3 + "e " + UNKNOWN * 3]
    assert DataInfo.from_state(info.to_state()) == info
    assert src.heldout().sample(4, seed=0).shape == (4, 8, 5)


def test_an_empty_or_missing_corpus_is_one_line(tmp_path):
    with pytest.raises(DataError, match="no training lines"):
        Text.build(TextParams(path=str(corpus(tmp_path, ["", " "]))), seed=0)
    with pytest.raises(DataError, match="is not a file"):
        Text.build(TextParams(path=str(tmp_path / "absent.txt")), seed=0)
    with pytest.raises(DataError, match="verses.txt not found"):
        Text.build(TextParams(corpus="kjv", root=str(tmp_path)), seed=0)


def test_a_missing_kjv_file_says_where_it_comes_from(tmp_path):
    code, _, err = run_cli(["train", "wgangp-text-kjv", "--steps", "1", "--out",
                            str(tmp_path / "run"), "--set", f"data.root={tmp_path}"])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    folder = tmp_path / "text" / "kjv"
    for words in (f"verses.txt not found in {folder}", "Debian package bible-kjv-text 4.38",
                  "data.corpus=tinyshakespeare (downloaded) or data.path="):
        assert words in err
    assert not (tmp_path / "run").exists()


def test_gankit_list_names_the_corpus_a_preset_reads():
    """Once 'a text file (Tiny Shakespeare: 1 MB download)' for the KJV presets."""
    for preset in ("wgangp-text-kjv", "gan-text-kjv"):
        text = describe_preset(preset)
        assert "[data: KJV verses file, 4 MB, placed by hand" in text and "Shakespeare" not in text
    shakespeare = TextParams(corpus="tinyshakespeare")
    assert Text.source_of(shakespeare) == "Tiny Shakespeare, 1 MB download"
    assert Text.source_of(TextParams(path="my.txt")) == "your text file (data.path)"


# ----------------------------------------------------------------------------- download
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass                                      # keep pytest output clean


@pytest.fixture
def loopback(monkeypatch, tmp_path):
    """(base URL, folder it serves) of a loopback HTTP server of static files."""
    monkeypatch.delenv("GANKIT_OFFLINE", raising=False)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    httpd.shutdown()
    httpd.server_close()


def test_tiny_shakespeare_downloads_with_its_published_md5(loopback, tmp_path, monkeypatch):
    original = SHARED_TEXT / "tinyshakespeare" / "input.txt"
    if not original.is_file():
        pytest.skip("../shared/data/text not available")
    url, served = loopback
    body = original.read_bytes()
    for sub, payload in (("good", body), ("bad", body[:-1] + b"!")):
        (served / sub).mkdir()
        (served / sub / "input.txt").write_bytes(payload)
    corpus = CORPORA["tinyshakespeare"]
    remote = corpus.remote
    monkeypatch.setitem(CORPORA, "tinyshakespeare", replace(corpus, remote=type(remote)(
        remote.filename, remote.md5, (f"{url}/bad/", f"{url}/good/"))))
    params = TextParams(corpus="tinyshakespeare", root=str(tmp_path))
    src = Text.build(params, seed=0)
    assert (tmp_path / "text" / "tinyshakespeare" / "input.txt").read_bytes() == body
    assert len(src) + len(src.held_lines) == len(read_lines(original))
    monkeypatch.setitem(CORPORA, "tinyshakespeare", replace(corpus, remote=type(remote)(
        remote.filename, remote.md5, (f"{url}/bad/",))))
    with pytest.raises(DataError, match="MD5 mismatch"):
        Text.build(TextParams(corpus="tinyshakespeare", root=str(tmp_path / "b")), seed=0)
    assert not (tmp_path / "b" / "text" / "tinyshakespeare" / "input.txt").exists()


# ----------------------------------------------------------------------------- CLI
def tiny_text_run(tmp_path: Path) -> Path:
    cfg = validate({"data": {"name": "text", "path": str(corpus(tmp_path, [
        "In the beginning God created the heaven and the earth.",
        "And the earth was without form, and void."] * 20))},
        "model": TINY_MODEL, "objective": {"name": "wgan-gp"},
        "train": {"steps": 2, "batch_size": 4, "d_steps": 1},
        "log": {"progress": False, "figures": False, "sample_at": [], "n_fixed": 4}})
    api.train(cfg, tmp_path / "run")
    return tmp_path / "run"


def test_sample_prints_lines_of_text(tmp_path):
    run = tiny_text_run(tmp_path)
    code, out, err = run_cli(["sample", str(run), "--n", "3", "--seed", "1"])
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and all(len(s) <= 32 for s in lines)
    assert lines == run_cli(["sample", str(run), "--n", "3", "--seed", "1"])[1].splitlines()


def test_a_run_keeps_its_corpus_safe_and_readable_from_anywhere(tmp_path, monkeypatch):
    """--out never replaces the corpus the run trained on; a run trained with a relative
    data.path is read from another folder; huge --n is refused before drawing."""
    monkeypatch.chdir(tmp_path)
    corpus(tmp_path, [f"In the beginning God created the heaven {i}." for i in range(60)])
    cfg = validate({"data": {"name": "text", "path": "corpus.txt"},        # relative
                    "model": TINY_MODEL, "objective": {"name": "wgan-gp"},
                    "train": {"steps": 2, "batch_size": 4, "d_steps": 1},
                    "log": {"progress": False, "figures": False, "sample_at": [], "n_fixed": 4}})
    api.train(cfg, tmp_path / "run")
    before = (tmp_path / "corpus.txt").read_bytes()
    code, _, err = run_cli(["sample", "run", "--n", "3", "--out", "corpus.txt"])
    assert code == 2 and "its data.path" in err, err
    assert (tmp_path / "corpus.txt").read_bytes() == before
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = run_cli(["eval", str(tmp_path / "run"), "--metrics", "text", "--n", "8"])
    assert code == 0, err
    monkeypatch.setattr(os, "sysconf", lambda name: 4096)     # 4096 pages of 4 KiB: 16 MiB
    code, _, err = run_cli(["sample", str(tmp_path / "run"), "--n", "100000"])
    assert code == 2 and "GiB, more than half of this machine's" in err, err


def test_text_pictures_draw_dollar_signs_as_characters(tmp_path):
    path = TextView.draw_lines(["a $^$ b", "cost $5"], tmp_path / "t.png", "a $ title")
    assert path.stat().st_size > 0
