"""Character corpora for character-level language models: one example per line.

Each non-empty line of a UTF-8 text file is an example, cut or padded with a pad character to
``seq_len`` characters (the language model of Gulrajani et al. 2017, appendix; their code pads
with a backquote). The vocabulary is the pad character, an unknown token and the
``vocab_size`` most frequent characters of the training lines (ties broken by the character,
so it is the same on every machine). A sample is one-hot, ``(seq_len, V)`` floats: row i is
the i-th character. A fraction ``holdout`` of the lines is held out by the SHA-256 of the
line's text (``gankit.data.folder.path_position``), so repeated lines all fall on one side.

Corpora by name live in ``<data root>/text/<name>/`` (``GANKIT_DATA``; see
``gankit.data.download``): ``tinyshakespeare`` (``input.txt``, downloaded from the char-rnn
repository when missing, MD5-checked) and ``kjv`` (``verses.txt``, the King James Bible one
verse per line, placed by hand: no public URL serves it; its ``Corpus.by_hand`` says where
it comes from, and the error for a missing file repeats it). ``path`` reads any UTF-8 file
instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from gankit.data.base import DataInfo, HeldOut, lazy_heldout, make_generator
from gankit.data.download import Remote, data_root, ensure_file
from gankit.data.folder import percent, split_by_path
from gankit.errors import DataError
from gankit.params import Params, PathStr

UNKNOWN = "\ufffd"      # the unknown token's character (U+FFFD, the replacement character)

@dataclass(frozen=True)
class Corpus:
    """A named corpus under <data root>/text/<name>: its file (``remote``: name, MD5,
    mirrors), what a config with it needs (``needs``, for ``gankit list``), and for a file no
    URL serves, what it is and where it comes from (``by_hand``, for the missing-file error)."""

    remote: Remote
    needs: str
    by_hand: str | None = None


CORPORA: dict[str, Corpus] = {
    "tinyshakespeare": Corpus(
        Remote("input.txt", "6fb458f1232090904fb40fe944165e91",
               ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                "tinyshakespeare/",)),
        "Tiny Shakespeare, 1 MB download"),
    "kjv": Corpus(
        Remote("verses.txt", "0442864d38d37131885626cd0cfa2a12", ()),
        "KJV verses file, 4 MB, placed by hand (README: Text)",
        by_hand="the King James Bible one verse per line, Genesis 1:1 to Revelation 22:21 with "
                "the verse references removed, dumped from the Debian package bible-kjv-text "
                "4.38 (the Bible Retrieval System text, read by the bible program of package "
                "bible-kjv)"),
}


class TextParams(Params):
    """``corpus`` (a name under ``<data root>/text``) or ``path`` (any UTF-8 file)."""

    name: Literal["text"] = "text"
    corpus: Literal["kjv", "tinyshakespeare"] | None = "kjv"
    path: PathStr | None = None       # a UTF-8 text file; replaces ``corpus``
    root: PathStr | None = None       # data root (default $GANKIT_DATA or the user cache)
    seq_len: int = Field(32, ge=2, le=4096)
    vocab_size: int = Field(96, ge=1, le=65536)   # most frequent characters kept
    pad: str = Field("`", min_length=1, max_length=1)
    holdout: float = Field(0.1, ge=0.0, le=0.5)

    @model_validator(mode="after")
    def _one_source(self) -> TextParams:
        if self.path is not None:
            self.corpus = None
        if self.corpus is None and self.path is None:
            raise ValueError("give data.corpus (kjv or tinyshakespeare) or data.path")
        return self


@dataclass(frozen=True)
class TextInfo(DataInfo):
    """DataInfo of a character corpus: ``shape`` (seq_len, V), ``vocab`` the V characters
    (index 0 the pad, 1 the unknown token), kept with the run so samples decode to text
    without the corpus."""

    vocab: tuple[str, ...] = ()

    @property
    def pad(self) -> str:
        return self.vocab[0]

    def to_text(self, x: Tensor) -> list[str]:
        """Samples (n, seq_len, V) (one-hot, softmax or logits) or indices (n, seq_len) ->
        n strings, argmax-decoded, trailing pad characters removed."""
        idx = x.argmax(-1) if x.dim() == 3 else x
        return ["".join(self.vocab[i] for i in row).rstrip(self.pad) for row in idx.tolist()]

    def encode(self, lines: list[str]) -> Tensor:
        """Lines -> int64 indices (n, seq_len): cut or padded, unknown characters mapped to
        index 1."""
        index = {c: i for i, c in enumerate(self.vocab)}
        length = self.shape[0]
        rows = [[index.get(c, 1) for c in line[:length].ljust(length, self.pad)]
                for line in lines]
        return torch.tensor(rows, dtype=torch.int64).reshape(len(lines), length)


def corpus_file(params: TextParams, allow_download: bool = True) -> Path:
    """The text file of ``params``: its ``path``, or the named corpus's verified file
    (downloaded when missing and it has a public URL). DataError when it is missing."""
    if params.path is not None:
        path = Path(params.path).expanduser()
        if not path.is_file():
            raise DataError(f"data.path {path} is not a file")
        return path
    corpus = CORPORA[params.corpus]
    remote = corpus.remote
    folder = data_root(params.root) / "text" / params.corpus
    if not remote.mirrors and not (folder / remote.filename).is_file():
        raise DataError(f"{remote.filename} not found in {folder}: data.corpus={params.corpus} "
                        f"is {corpus.by_hand}; place that file there, or train on "
                        "data.corpus=tinyshakespeare (downloaded) or data.path=<a text file>")
    return ensure_file(remote, folder, allow_download=allow_download and bool(remote.mirrors))


def read_lines(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 file (line ends and trailing blanks removed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path} as UTF-8 text: {e}") from e
    return [s for s in (line.rstrip() for line in text.splitlines()) if s]


def build_vocab(lines: list[str], size: int, pad: str) -> tuple[str, ...]:
    """(pad, unknown, the ``size`` most frequent characters of ``lines``), ties by character."""
    counts = Counter(c for line in lines for c in line)
    counts.pop(pad, None)
    counts.pop(UNKNOWN, None)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    return (pad, UNKNOWN) + tuple(c for c, _ in ranked)


def one_hot(idx: Tensor, vocab: int) -> Tensor:
    """int64 indices (n, L) -> float one-hot (n, L, vocab)."""
    return torch.nn.functional.one_hot(idx, vocab).float()


class TextSource:
    """Lines of a corpus as one-hot samples (B, seq_len, V), drawn uniformly with
    replacement from the training lines by the source's own generator."""

    def __init__(self, params: TextParams, seed: int, device: torch.device | str = "cpu"):
        self.params, self.device = params, torch.device(device)
        path = corpus_file(params)
        train, held = split_by_path(read_lines(path), params.holdout, key=lambda s: s)
        if not train:
            raise DataError(f"{path} holds no training lines (holdout {percent(params.holdout)})")
        vocab = build_vocab(train, params.vocab_size, params.pad)
        self.info = TextInfo("text", (params.seq_len, len(vocab)), vocab=vocab)
        self.lines, self.held_lines = train, held
        self.x = self.info.encode(train)                            # (N, L) int64
        self.where = str(params.corpus or path.name)
        self.gen = make_generator(seed)
        self._heldout = lazy_heldout(self._load_heldout if held else None,
                                     f"{self.where} holds no held-out lines (data.holdout)")

    def __len__(self) -> int:
        return len(self.x)

    def next_batch(self, n: int) -> dict[str, Tensor]:
        idx = torch.randint(len(self.x), (n,), generator=self.gen)
        return {"x": one_hot(self.x[idx], self.info.shape[1]).to(self.device)}

    def sample(self, n: int, seed: int) -> Tensor:
        """n training lines (n, L, V) from stream ``seed`` (distinct while n <= lines)."""
        gen = make_generator(seed)
        idx = torch.randperm(len(self.x), generator=gen)[:n] if n <= len(self.x) else \
            torch.randint(len(self.x), (n,), generator=gen)
        return one_hot(self.x[idx], self.info.shape[1])

    def heldout(self) -> HeldOut:
        """The held-out lines, one-hot (their ``sample``/``batches`` give (n, L, V))."""
        return self._heldout()

    def _load_heldout(self) -> HeldOut:
        vocab = self.info.shape[1]
        return HeldOut(f"{len(self.held_lines):,} held-out lines of {self.where} "
                       f"({percent(self.params.holdout)} by line hash)",
                       {"x": self.info.encode(self.held_lines)},
                       transform=lambda idx: one_hot(idx, vocab), device=self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"].to(torch.uint8))


class Text:
    """Lines of a UTF-8 corpus (KJV verses, Tiny Shakespeare, a file) as one-hot characters."""

    kind: ClassVar[str] = "text"
    content: ClassVar[str] = "text"
    source: ClassVar[str] = "a text file (KJV verses placed by hand, Tiny Shakespeare downloaded)"
    Params = TextParams

    @classmethod
    def source_of(cls, params: TextParams) -> str:
        """What a config with these ``params`` needs (``gankit list``): its corpus's file."""
        if params.path is not None:
            return "your text file (data.path)"
        return CORPORA[params.corpus].needs

    @classmethod
    def build(cls, params: TextParams, *, seed: int, device="cpu") -> TextSource:
        return TextSource(params, seed, device)
