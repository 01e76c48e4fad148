"""MNIST with captions: canvases of one or two MNIST digits described by a sentence.

The protocol of alignDRAW (Mansimov et al. 2016, "Generating images from captions with
attention", section 5.1): a square canvas (60 x 60 in the paper) holds one or two 28 x 28
MNIST digits at positions a caption names, from a fixed set of sentence templates; some
combinations of digit and template are held out of training, to see whether a model
composes what it learnt ("the digit 3 is at the top left of the image" when training showed
other digits there, and 3 elsewhere).

Here eight templates, four with one digit and four with two:

=====================================================  ===============================
template                                               slots (digit a, then b)
=====================================================  ===============================
the digit {a} is at the top left of the image          a: top left
the digit {a} is at the top right of the image         a: top right
the digit {a} is at the bottom left of the image       a: bottom left
the digit {a} is at the bottom right of the image      a: bottom right
the digit {a} is on the left of the digit {b}          a: middle left,  b: middle right
the digit {a} is on the right of the digit {b}         a: middle right, b: middle left
the digit {a} is at the top of the digit {b}           a: top centre,   b: bottom centre
the digit {a} is at the bottom of the digit {b}        a: bottom centre, b: top centre
=====================================================  ===============================

A caption is a *combination* (template t, first digit a) plus, for two-digit templates, a
second digit b. ``heldout_per_template`` first digits of every template (chosen by
``heldout_seed``, saved with the run in ``CaptionInfo``) never appear in training; metrics
measure them apart. Digits keep MNIST's 28 pixels on canvases of 56 or more (the paper's 60)
and are shrunk to half the canvas on smaller ones (48, 32: a CPU's budget). Canvases are composed on the
fly from the split's digits with the source's own generator (resumable, deterministic for a
seed); the held-out set is a fixed draw of canvases from the other split's digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor

from gankit.data.base import (DataInfo, HeldOut, generator_state, lazy_heldout,
                              make_generator)
from gankit.data.idx import load_mnist
from gankit.data.images import fit_size, other_split
from gankit.errors import ConfigError, DataError
from gankit.params import Params, PathStr

# (words with {a} / {b} for the digits, the slot of each digit)
TEMPLATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("the digit {a} is at the top left of the image", ("top left",)),
    ("the digit {a} is at the top right of the image", ("top right",)),
    ("the digit {a} is at the bottom left of the image", ("bottom left",)),
    ("the digit {a} is at the bottom right of the image", ("bottom right",)),
    ("the digit {a} is on the left of the digit {b}", ("middle left", "middle right")),
    ("the digit {a} is on the right of the digit {b}", ("middle right", "middle left")),
    ("the digit {a} is at the top of the digit {b}", ("top centre", "bottom centre")),
    ("the digit {a} is at the bottom of the digit {b}", ("bottom centre", "top centre")),
)
# slot -> (row, column) of its top-left corner in units of (canvas - digit size)
SLOTS = {"top left": (0, 0), "top right": (0, 1), "bottom left": (1, 0),
         "bottom right": (1, 1), "middle left": (0.5, 0), "middle right": (0.5, 1),
         "top centre": (0, 0.5), "bottom centre": (1, 0.5)}
TEMPLATE_SETS = {"one": (0, 1, 2, 3), "two": (4, 5, 6, 7), "both": tuple(range(8))}
PAD = "<pad>"
DIGITS = tuple(str(d) for d in range(10))
HELDOUT_SEED = 20160101          # the fixed draw of the held-out canvases


def vocabulary() -> tuple[str, ...]:
    """The caption vocabulary: the padding token (id 0), the digits, the templates' words."""
    words = sorted({w for text, _ in TEMPLATES for w in text.split() if "{" not in w})
    return (PAD, *DIGITS, *words)


def digit_size(canvas: int) -> int:
    """The side of a digit on a ``canvas``-pixel canvas: MNIST's 28 on the paper's 60 (and on
    56, where slots abut), half the canvas below that. The shipped classifier reads digits
    shrunk below 28 pixels less well (real canvases, two digits: 96 % at 48, 77 % at 32)."""
    return min(28, canvas // 2)


@dataclass(frozen=True)
class CaptionInfo(DataInfo):
    """DataInfo of captioned canvases: the tokenizer and the protocol a run trained with.

    ``vocab``: the words (id = position, 0 the padding); ``length``: tokens per caption;
    ``canvas`` / ``digit``: sides in pixels; ``templates``: the template ids in use;
    ``heldout``: the held-out combinations as ``10 * template + digit``."""

    vocab: tuple[str, ...] = ()
    length: int = 0
    canvas: int = 0
    digit: int = 0
    templates: tuple[int, ...] = ()
    heldout: tuple[int, ...] = ()

    # ---- text ---------------------------------------------------------------------
    def encode(self, caption: str) -> Tensor:
        """A caption -> token ids (length,) int64, padded with 0. Case and a final full
        stop are ignored. ConfigError (one line, the vocabulary listed) for an unknown
        word; ConfigError for a caption longer than ``length`` words or an empty one."""
        words = caption.lower().strip().rstrip(".").split()
        unknown = [w for w in words if w not in self.vocab or w == PAD]
        if unknown:
            raise ConfigError(f"unknown word{'s' * (len(unknown) > 1)} "
                              f"{', '.join(map(repr, unknown))} in the caption; the vocabulary "
                              f"is: {' '.join(self.vocab[1:])}")
        if not words or len(words) > self.length:
            raise ConfigError(f"a caption has 1 to {self.length} words, not {len(words)}")
        ids = [self.vocab.index(w) for w in words]
        return torch.tensor(ids + [0] * (self.length - len(ids)), dtype=torch.int64)

    def unlike_training(self, caption: str) -> str | None:
        """None when ``caption`` (a valid one, see ``encode``) follows one of the run's
        templates with digits in its slots; else one line saying the model never saw such a
        caption (more digits than a template has, none at all, another word order): it is
        drawn all the same, as the network reads it."""
        words = caption.lower().strip().rstrip(".").split()
        for t in self.templates:
            pattern = TEMPLATES[t][0].split()
            if len(pattern) == len(words) and all(
                    w in DIGITS if p in ("{a}", "{b}") else w == p
                    for p, w in zip(pattern, words)):
                return None
        return (f"the caption {caption!r} follows none of the run's {len(self.templates)} "
                "templates (e.g. " + repr(TEMPLATES[self.templates[0]][0].format(a=7, b=2))
                + "); the model never saw one like it: its images may not show it")

    @property
    def content_ids(self) -> tuple[int, ...]:
        """The ids of the words that name what is drawn (the digits); the other words say
        where. A what/where factorised network (``model.slots``) reads them apart."""
        return tuple(self.vocab.index(d) for d in DIGITS if d in self.vocab)

    def sentences(self, tokens: Tensor) -> list[str]:
        """Token ids (n, length) -> the captions as text (padding dropped)."""
        return [" ".join(self.vocab[i] for i in row if i) for row in tokens.tolist()]

    def near_misses(self, tokens: Tensor, gen: torch.Generator | None) -> Tensor:
        """The captions ``tokens`` (n, length) with every digit replaced by another one
        (uniform over the other nine, from ``gen``): mismatched captions that differ from
        the right ones in the digits only, the hardest negatives of a matching-aware
        discriminator (a rolled batch mostly differs in the template, i.e. the places)."""
        first = self.vocab.index(DIGITS[0])                  # digits have ids first..first+9
        is_digit = (tokens >= first) & (tokens < first + 10)
        shift = torch.randint(1, 10, tokens.shape, generator=gen, device=tokens.device)
        return torch.where(is_digit, (tokens - first + shift) % 10 + first, tokens)

    # ---- combinations -------------------------------------------------------------
    def first_digits(self, heldout: bool) -> Tensor:
        """(len(templates), m) int64: per template in use, the first digits of its seen
        (or held-out) combinations, m the same for every template."""
        held = set(self.heldout)
        rows = [[d for d in range(10) if ((10 * t + d) in held) == heldout]
                for t in self.templates]
        if not rows[0]:
            raise DataError("this data set holds no held-out combinations "
                            "(data.heldout_per_template is 0)")
        return torch.tensor(rows, dtype=torch.int64)

    def slots(self, template: int) -> list[tuple[int, int]]:
        """The (top, left) pixel corner of each digit slot of ``template``."""
        free = self.canvas - self.digit
        return [(round(SLOTS[s][0] * free), round(SLOTS[s][1] * free))
                for s in TEMPLATES[template][1]]


def draw_specs(info: CaptionInfo, n: int, gen: torch.Generator | None,
               heldout: bool = False) -> Tensor:
    """``n`` random captions as (n, 3) int64 rows (template, a, b): templates uniform over
    those in use, the first digit uniform over the template's seen (``heldout``: held-out)
    combinations, the second uniform over 0..9 (unused by one-digit templates). Drawn on the
    generator's device (CPU when ``gen`` is None), returned on the CPU."""
    device = gen.device if gen is not None else torch.device("cpu")
    table = info.first_digits(heldout).to(device)                      # (T, m)
    t = torch.randint(table.shape[0], (n,), generator=gen, device=device)
    a = table[t, torch.randint(table.shape[1], (n,), generator=gen, device=device)]
    b = torch.randint(10, (n,), generator=gen, device=device)
    templates = torch.tensor(info.templates, dtype=torch.int64, device=device)
    return torch.stack([templates[t], a, b], 1).cpu()


def spec_text(spec: list[int] | Tensor) -> str:
    """(template, a, b) -> the caption's sentence."""
    t, a, b = (int(v) for v in spec)
    return TEMPLATES[t][0].format(a=a, b=b)


def spec_tokens(info: CaptionInfo, specs: Tensor) -> Tensor:
    """(n, 3) caption rows -> token ids (n, length) int64."""
    if len(specs) == 0:
        return torch.zeros(0, info.length, dtype=torch.int64)
    return torch.stack([info.encode(spec_text(s)) for s in specs.tolist()])


def compose(info: CaptionInfo, specs: Tensor, by_class: list[Tensor],
            gen: torch.Generator) -> Tensor:
    """Canvases uint8 (n, 1, canvas, canvas) for caption rows (n, 3): each named digit is a
    random image of its class from ``by_class`` (10 uint8 stacks (m_d, 1, digit, digit)),
    pasted into its slot (slots never overlap; pixels combine by maximum)."""
    n = len(specs)
    out = torch.zeros(n, 1, info.canvas, info.canvas, dtype=torch.uint8)
    d = info.digit
    for t in specs[:, 0].unique().tolist():
        rows = (specs[:, 0] == t).nonzero().squeeze(1)
        for k, (top, left) in enumerate(info.slots(t)):
            digits = specs[rows, 1 + k]
            images = torch.empty(len(rows), 1, d, d, dtype=torch.uint8)
            for c in digits.unique().tolist():
                sel = (digits == c).nonzero().squeeze(1)
                pick = torch.randint(len(by_class[c]), (len(sel),), generator=gen)
                images[sel] = by_class[c][pick]
            region = out[rows, :, top:top + d, left:left + d]
            out[rows, :, top:top + d, left:left + d] = torch.maximum(region, images)
    return out


def to_unit(images: Tensor) -> Tensor:
    """uint8 -> float in [-1, 1]."""
    return images.float() / 127.5 - 1


class MNISTCaptionsParams(Params):
    name: Literal["mnist-captions"] = "mnist-captions"
    root: PathStr | None = None
    split: Literal["train", "test"] = "train"
    canvas: int = Field(60, ge=24, le=128)     # the paper's 60; 48 or 32 on a CPU
    digits: Literal["one", "two", "both"] = "both"      # templates with one / two digits
    heldout_per_template: int = Field(2, ge=1, le=5)   # first digits held out per template
    heldout_seed: int = Field(0, ge=0)
    heldout_size: int = Field(2000, ge=1, le=100000)   # canvases of the held-out set

    @field_validator("canvas")
    @classmethod
    def _multiple_of_4(cls, v: int) -> int:
        if v % 4:
            raise ValueError(f"must be a multiple of 4 (generators double a canvas/4 map "
                             f"twice), e.g. 32, 48 or 60; not {v}")
        return v


def heldout_combinations(params: MNISTCaptionsParams) -> tuple[int, ...]:
    """``heldout_per_template`` first digits of each of the 8 templates, drawn by
    ``heldout_seed`` (a fixed set for a seed, whatever ``digits`` selects), as 10 t + d."""
    gen = make_generator(params.heldout_seed)
    out = []
    for t in range(len(TEMPLATES)):
        digits = torch.randperm(10, generator=gen)[:params.heldout_per_template]
        out += [10 * t + int(d) for d in sorted(digits.tolist())]
    return tuple(out)


class CaptionSource:
    """Captioned canvases composed on the fly: batches ``{"x": (n, 1, C, C) in [-1, 1],
    "tokens": (n, length) int64}`` of seen combinations; ``heldout()``: a fixed draw of
    ``heldout_size`` canvases (seen combinations) from the other split's digits."""

    def __init__(self, info: CaptionInfo, by_class: list[Tensor], seed: int,
                 device: torch.device, heldout) -> None:
        self.info, self.by_class, self.device = info, by_class, torch.device(device)
        self._gen = make_generator(seed)
        self._heldout = lazy_heldout(heldout)
        self.size = sum(len(c) for c in by_class)

    def __len__(self) -> int:
        return self.size

    def draw(self, n: int, gen: torch.Generator, heldout: bool = False) -> dict[str, Tensor]:
        """``n`` captioned canvases from ``gen``: x, tokens and the caption rows ``specs``."""
        specs = draw_specs(self.info, n, gen, heldout)
        x = to_unit(compose(self.info, specs, self.by_class, gen))
        return {"x": x, "tokens": spec_tokens(self.info, specs), "specs": specs}

    def next_batch(self, n: int) -> dict[str, Tensor]:
        if n <= 0:
            raise DataError(f"batch size must be positive, got {n}")
        batch = self.draw(n, self._gen)
        return {"x": batch["x"].to(self.device), "tokens": batch["tokens"].to(self.device)}

    def sample(self, n: int, seed: int) -> Tensor:
        """``n`` real canvases (n, 1, C, C) from stream ``seed`` (training untouched)."""
        return self.draw(n, make_generator(seed))["x"].to(self.device)

    def heldout(self) -> HeldOut:
        return self._heldout()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": generator_state(self._gen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._gen.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8).cpu())


def digits_by_class(split: str, params: MNISTCaptionsParams, size: int) -> list[Tensor]:
    """The split's MNIST digits at ``size`` pixels, one uint8 stack per class."""
    data = load_mnist(split, params.root)
    images = fit_size(data.images, size)
    return [images[data.labels == c] for c in range(10)]


class MNISTCaptions:
    """MNIST with captions (Mansimov et al. 2016): 1-2 digits placed as 8 templates say."""

    kind: ClassVar[str] = "image"
    channels: ClassVar[int] = 1
    content: ClassVar[str] = "captioned digits"
    classifier: ClassVar[str | None] = None       # whole canvases are not MNIST digits
    source: ClassVar[str] = "MNIST files (12 MB download)"
    Params = MNISTCaptionsParams

    @classmethod
    def describe(cls, params: MNISTCaptionsParams) -> CaptionInfo:
        """Everything but the images follows from the config: sizes, vocabulary, the
        templates in use and the held-out combinations."""
        vocab = vocabulary()
        length = max(len(text.split()) for text, _ in TEMPLATES)
        return CaptionInfo("image", (1, params.canvas, params.canvas), vocab=vocab,
                           length=length, canvas=params.canvas,
                           digit=digit_size(params.canvas),
                           templates=TEMPLATE_SETS[params.digits],
                           heldout=heldout_combinations(params))

    @classmethod
    def build(cls, params: MNISTCaptionsParams, *, seed: int, device="cpu") -> CaptionSource:
        """Trains on ``params.split``'s digits; the held-out canvases use the other split's
        (read on first use). DataError when MNIST cannot be read."""
        info = cls.describe(params)
        other = other_split(params.split)

        def heldout() -> HeldOut:
            digits = digits_by_class(other, params, info.digit)
            batch = CaptionSource(info, digits, HELDOUT_SEED, "cpu", None).draw(
                params.heldout_size, make_generator(HELDOUT_SEED))
            return HeldOut(f"{params.heldout_size:,} captioned canvases of MNIST {other} "
                           f"digits (seed {HELDOUT_SEED})",
                           {"x": batch["x"], "tokens": batch["tokens"]}, device=device)

        return CaptionSource(info, digits_by_class(params.split, params, info.digit), seed,
                             device, heldout)
