"""Measuring generated text: n-gram Jensen-Shannon divergences and the share of real words.

The protocol of Gulrajani et al. 2017's language model (their ``language_helpers.py``): each
line, as the fixed-length sequence of characters the model sees (pad characters included),
gives its character n-grams (every window of n positions); an n-gram model is the empirical
distribution of those n-grams over a set of lines. JS-n is the Jensen-Shannon divergence, in
bits (so in [0, 1]), between the n-gram models of n generated lines (argmax-decoded) and of
the held-out lines. The n-gram models of finite samples differ even between two samples of
the same text, so the *floor* is JS-n between n training lines and the held-out lines: a
model cannot be expected below it with n lines.

``word_fraction``: among the words of the generated lines (maximal runs of 2 or more letters;
case ignored), the share that are words of the training lines. Its reference
(``word_fraction_floor``): the same share for n held-out lines, cut like the generated ones
(a word cut at the end of a line is usually no word). A share says nothing about how much was
written: a generator of blank lines with one real word among them would score 1.0, above real
text. So beside it: ``words_generated``, the number of words in the n generated lines, and
``words_per_line_floor``, the words per held-out line (n lines of real text hold about n times
that many); and generated lines holding fewer than ``MIN_WORDS`` (20) words score 0: no
credit for writing (almost) nothing (one word would give 0 or 1; at 20 the share's standard
error is still up to 0.11), so such a checkpoint is never a best value
(``eval.best_metric``). The floor's share is taken however few words its lines hold.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from gankit.metrics.protocol import (Direction, EvalOptions, Metric, RunFacts,
                                     generated_samples, per_source)

ORDERS = (1, 2, 3, 4)
REAL_SEED = 54321                # the training lines of the floor
WORD = re.compile(r"[^\W\d_]{2,}")   # runs of 2+ letters (any alphabet), digits and _ excluded
MIN_WORDS = 20                   # fewer words than this: word_fraction is 0 (no credit)


def ngram_counts(rows: Iterable[Sequence[Any]], n: int) -> Counter:
    """Counts of the n-grams (tuples of n consecutive tokens) of every row."""
    counts: Counter = Counter()
    for row in rows:
        row = tuple(row)
        counts.update(row[i:i + n] for i in range(len(row) - n + 1))
    return counts


def js_divergence(p: Counter, q: Counter) -> float:
    """Jensen-Shannon divergence in bits between the distributions of two count tables:
    (KL(P || M) + KL(Q || M)) / 2 with M = (P + Q) / 2, over the union of their keys.
    0 for equal distributions, 1 for disjoint ones. ValueError for an empty table."""
    tp, tq = sum(p.values()), sum(q.values())
    if tp == 0 or tq == 0:
        raise ValueError("an n-gram table is empty (lines shorter than n?)")
    total = 0.0
    for key in p.keys() | q.keys():
        a, b = p.get(key, 0) / tp, q.get(key, 0) / tq
        m = (a + b) / 2
        total += (a * math.log2(a / m) if a else 0.0) + (b * math.log2(b / m) if b else 0.0)
    return total / 2


def words(lines: Iterable[str]) -> list[str]:
    """The words of 2 or more letters in ``lines``, lower-cased."""
    return [w.lower() for line in lines for w in WORD.findall(line)]


def word_fraction(lines: Iterable[str], vocabulary: set[str],
                  min_words: int = MIN_WORDS) -> float:
    """Share of the words of ``lines`` (2+ letters) in ``vocabulary``; 0 when there are
    fewer than ``min_words`` of them (no credit for writing almost nothing; none at all
    included)."""
    found = words(lines)
    if len(found) < max(min_words, 1):
        return 0.0
    return sum(w in vocabulary for w in found) / len(found)


def words_per_line(lines: Sequence[str]) -> float:
    """The mean number of words (2+ letters) in a line of ``lines``; 0 for no lines."""
    return len(words(lines)) / len(lines) if lines else 0.0


def js_scores(rows: torch.Tensor, held: list[Counter], suffix: str = "") -> dict[str, float]:
    """``{"js1" + suffix: ..., ..., "js4" + suffix}``: JS-n of token rows (n, L) against the
    held-out n-gram tables ``held`` (orders 1-4)."""
    listed = rows.tolist()
    return {f"js{n}{suffix}": js_divergence(ngram_counts(listed, n), table)
            for n, table in zip(ORDERS, held)}


class TextMetrics(Metric, name="text"):
    """Character 1-4-gram JS divergence, generated vs held-out lines; share of real words.

    Beside each JS-n its floor (n training lines vs the held-out lines), and beside the share
    of generated words of 2+ letters found in the training lines the share for n held-out
    lines (Gulrajani et al. 2017, language model; 640 lines in the paper), the number of
    generated words and the words per held-out line. The share is 0 below ``MIN_WORDS``
    generated words."""

    kinds = frozenset({"text"})
    smoke_config = {"data": {"name": "text", "corpus": "kjv"},
                    "model": {"name": "textconv", "z_dim": 8, "dim": 8, "blocks": 1},
                    "objective": {"name": "wgan-gp"}}

    @classmethod
    def keys(cls, facts: RunFacts | None = None) -> dict[str, Direction | None]:
        scores: dict[str, Direction | None] = {f"js{n}": "min" for n in ORDERS}
        scores["word_fraction"] = "max"
        return (scores | {f"{k}_floor": None for k in list(scores)}
                | {"words_generated": None, "words_per_line_floor": None})

    @classmethod
    def evaluate(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, float]:
        """``keys`` from n generated lines (seed 12345 by default) and n training lines
        (seed 54321) against every held-out line."""
        data = trainer.data
        held, vocabulary = per_source(data, ("text-reference",), lambda: reference(data))
        gen = generated_samples(trainer, n, cls.seed(seed)).argmax(-1)          # (n, L)
        real = data.sample(n, seed=REAL_SEED).argmax(-1)                          # (n, L)
        gen_lines = data.info.to_text(gen)
        held_lines = data.info.to_text(data.heldout().sample(n, seed=REAL_SEED))
        return (js_scores(gen, held) | js_scores(real, held, "_floor")
                | {"word_fraction": word_fraction(gen_lines, vocabulary),
                   # real text gets its share however few words it holds
                   "word_fraction_floor": word_fraction(held_lines, vocabulary, min_words=1),
                   "words_generated": float(len(words(gen_lines))),
                   "words_per_line_floor": words_per_line(held_lines)})

    @classmethod
    def describe(cls, trainer, n: int, seed: int | None = None,
                 options: EvalOptions | None = None) -> dict[str, Any]:
        data = trainer.data
        train, held = _drawn(n, len(data), "training"), _drawn(n, len(data.heldout()), "held-out")
        return {"n_generated": n, "seed_generated": cls.seed(seed),
                "reference": data.heldout().description,
                "floor": f"{train} (seed {REAL_SEED}) vs the held-out lines; "
                         f"word_fraction_floor: {held}",
                "ngrams": "characters of the padded fixed-length lines, JS in bits",
                "words": "runs of 2+ letters, lower-cased, looked up in the training lines",
                "word_fraction": f"0 when the generated lines hold fewer than {MIN_WORDS} "
                                 "words (words_generated): no credit for writing nothing"}


def _drawn(n: int, have: int, what: str) -> str:
    """How n lines were drawn from ``have``: distinct, or with replacement when too few."""
    if n <= have:
        return f"{n} {what} lines"
    return f"{n} {what} lines drawn with replacement from {have}"


def reference(data) -> tuple[list[Counter], set[str]]:
    """The held-out lines' n-gram tables (orders 1-4) and the training lines' words."""
    rows: list[list[int]] = []
    for batch in data.heldout().batches(4096):
        rows += batch["x"].argmax(-1).tolist()
    return [ngram_counts(rows, n) for n in ORDERS], set(words(data.lines))
