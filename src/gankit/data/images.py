"""Image data held as one uint8 array, served as shuffled float batches.

Every image data set (MNIST, CIFAR-10, image folders) is decoded once into a uint8 cache of
shape (N, C, H, W): 4x smaller than float, so it fits in memory (or on the accelerator) far more
often. A batch is drawn by indexing that cache with a slice of the epoch's permutation and
converting the whole batch at once; there is no per-sample Python work on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator

from gankit.data.base import (DataInfo, HeldOut, draw_indices, generator_state, lazy_heldout,
                              make_generator, take_rows)
from gankit.errors import DataError
from gankit.params import Params, PathStr

_RESIZE_CHUNK = 2048  # images per F.interpolate call: bounds the float temporary (~100 MB at 64px)


@dataclass
class ImageSet:
    """Decoded images: uint8 (N, C, H, W) as a tensor, or a numpy memmap for on-disk caches."""

    images: torch.Tensor | np.ndarray
    labels: torch.Tensor | None = None   # (N,) int64
    class_names: tuple[str, ...] = ()
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (image folders)

    def __len__(self) -> int:
        return int(self.images.shape[0])


def fit_size(images: torch.Tensor, size: int,
             mode: Literal["resize", "pad"] = "resize") -> torch.Tensor:
    """Bring square uint8 images (N, C, H, H) to (N, C, size, size), once at load time.

    ``"resize"`` interpolates bilinearly (antialiased when shrinking); ``"pad"`` adds a black
    border, e.g. 28 -> 32 for MNIST without resampling the strokes.
    """
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    if mode == "pad":
        if size < h or size < w:
            raise DataError(f"cannot pad {h}x{w} images down to {size}x{size}; use mode 'resize'")
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(images, (left, size - w - left, top, size - h - top))  # zeros = black
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    antialias = size < max(h, w)
    for start in range(0, n, _RESIZE_CHUNK):
        chunk = images[start:start + _RESIZE_CHUNK].float()  # (B, C, H, W)
        chunk = F.interpolate(chunk, size=(size, size), mode="bilinear",
                              align_corners=False, antialias=antialias)
        out[start:start + _RESIZE_CHUNK] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether a cache of ``nbytes`` can live on ``device`` with room left for training."""
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return nbytes < free // 4
    return nbytes < 1 << 30  # other accelerators (mps, ...): no free-memory query; be modest


class ImageTensorSource:
    """A DataSource over a uint8 image cache: shuffled epochs, optional flips, resumable.

    Batches may straddle an epoch boundary: the tail of one permutation is followed by the
    head of the next, so every image is seen exactly once per epoch whatever the batch size.
    """

    def __init__(
        self,
        images: torch.Tensor | np.ndarray,
        labels: torch.Tensor | None = None,
        *,
        class_names: tuple[str, ...] | list[str] = (),
        seed: int = 0,
        flip: bool = False,
        device: str | torch.device = "cpu",
        kind: str = "image",
        heldout: Callable[[], HeldOut] | None = None,
        binarize: bool = False,
        perturb: float = 0.0,
    ) -> None:
        if images.ndim != 4 or len(images) == 0:
            raise DataError(f"expected a non-empty (N, C, H, W) image array, "
                            f"got shape {tuple(images.shape)}")
        if str(images.dtype) not in ("torch.uint8", "uint8"):
            raise DataError(f"expected uint8 images, got {images.dtype}")
        if labels is not None and len(labels) != len(images):
            raise DataError(f"{len(labels)} labels for {len(images)} images")
        self.device = torch.device(device)
        self.flip, self.binarize, self.perturb = flip, binarize, perturb
        self.size = int(images.shape[0])
        if isinstance(images, np.ndarray) and not isinstance(images, np.memmap):
            images = torch.from_numpy(np.ascontiguousarray(images))
        # Where the cache lives: on the device when it fits, else on the host (memmaps stay
        # on disk) and each batch is copied over as uint8, 4x less traffic than float.
        fits = isinstance(images, torch.Tensor) and _fits_on(self.device, images.numel())
        self.store_device = self.device if fits else torch.device("cpu")
        self.images = images.to(self.store_device) if isinstance(images, torch.Tensor) else images
        self.labels = None if labels is None else labels.to(self.store_device, torch.int64)
        num_classes = len(class_names) or (int(labels.max()) + 1 if labels is not None else 0)
        self.info = DataInfo(kind=kind, shape=tuple(int(s) for s in images.shape[1:]),
                             num_classes=num_classes, class_names=tuple(class_names))
        # The permutation and flips come from a CPU generator so its state is portable.
        self._gen = make_generator(seed)
        self.epoch = 0
        self.position = 0
        self._perm = torch.randperm(self.size, generator=self._gen)
        # ``heldout`` is only called on first use: loading another split must not slow builds.
        self._heldout = lazy_heldout(heldout, "this image source holds no held-out data")

    def heldout(self) -> HeldOut:
        """The held-out examples (loaded on the first call, then kept); DataError if none."""
        return self._heldout()

    def __len__(self) -> int:
        return self.size

    def _take_indices(self, n: int) -> torch.Tensor:
        parts = []
        while n > 0:
            if self.position == self.size:
                self.epoch += 1
                self.position = 0
                self._perm = torch.randperm(self.size, generator=self._gen)
            step = min(n, self.size - self.position)
            parts.append(self._perm[self.position:self.position + step])
            self.position += step
            n -= step
        return torch.cat(parts)

    def _gather(self, idx: torch.Tensor) -> torch.Tensor:
        return take_rows(self.images, idx)  # a memmap reads only the rows asked for

    def next_batch(self, n: int, rows: slice | None = None) -> dict[str, torch.Tensor]:
        """The next ``n`` images of the stream. ``rows`` (data-parallel training): advance the
        stream by all ``n`` but return only those rows of the batch, so that every rank keeps
        the same position and takes its own share of the epoch's permutation."""
        if n <= 0:
            raise DataError(f"batch size must be positive, got {n}")
        idx = self._take_indices(n)  # (n,) on CPU
        if rows is not None:
            idx = idx[rows]
        batch = self._gather(idx)
        if batch.device.type == "cpu" and self.device.type == "cuda":
            batch = batch.pin_memory()  # lets the copy below run asynchronously
        batch = batch.to(self.device, non_blocking=True)  # (m, C, H, W) uint8
        if self.perturb:  # before binarising: a replaced pixel then draws a random bit
            batch = perturb_images(batch, self.perturb, self._gen)
        if self.binarize:  # a fresh draw every time an image is used, from the stream's RNG
            batch = binarize_images(batch, self._gen)
        x = batch.float() / 127.5 - 1  # (m, C, H, W) in [-1, 1]
        if self.flip:
            mask = torch.rand(n, generator=self._gen) < 0.5  # (n,): drawn for the whole batch
            mask = mask[rows] if rows is not None else mask
            mask = mask.to(self.device).view(-1, 1, 1, 1)
            x = torch.where(mask, x.flip(-1), x)
        out = {"x": x}
        if self.labels is not None:
            out["y"] = self.labels[idx.to(self.store_device)].to(self.device)
        return out

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """``n`` real images (distinct while ``n <= len``) from a separate stream, for
        evaluation; the training stream is left alone. No flips."""
        idx = draw_indices(self.size, n, seed)
        images = self._gather(idx).to(self.device)
        if self.binarize:
            images = binarize_images(images, make_generator(seed + 1))
        return images.float() / 127.5 - 1  # (n, C, H, W)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "generator": generator_state(self._gen),
            "permutation": self._perm.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        perm = torch.as_tensor(state["permutation"], dtype=torch.int64)
        if perm.numel() != self.size:
            raise DataError(
                f"data state is for {perm.numel()} images but this data set has {self.size}"
            )
        position = int(state["position"])
        if not 0 <= position <= self.size:
            raise DataError(f"data state position {position} is outside 0..{self.size}")
        self._gen.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8).cpu())
        self._perm = perm.cpu().clone()
        self.epoch = int(state["epoch"])
        self.position = position


class ImageParams(Params):
    """Options shared by the image data sets (each builder adds its own ``name``).

    ``binarize: dynamic`` serves binary images (pixels 0 or 255, i.e. -1 or 1) drawn as
    Bernoulli(grey level / 255), a fresh draw every time an image is used (dynamic
    binarisation, Salakhutdinov & Murray 2008; Burda et al. 2016): the training stream draws
    from its own resumable generator; the held-out set is binarised once with the fixed seed
    ``HELDOUT_BINARIZE_SEED``, so that a test likelihood is deterministic and comparable
    between runs.

    ``labelled_per_class: n`` makes the source semi-supervised: every training image is served
    unlabelled as ``x``, and a fixed labelled subset of n images per class (chosen by
    ``labelled_seed``, the same subset on every run with that seed) beside it as ``x_lab``,
    ``y_lab`` (``SemiSupervisedSource``); the held-out split keeps all its labels.

    ``classes: [1]`` keeps only the images of those labels, in training and held-out data
    (the one-class protocol of Ruff et al. 2018, Deep SVDD: one class is normal).
    ``perturb: r`` replaces each pixel of each training batch, with probability r, by a
    uniformly drawn level of 0..255, afresh every time an image is used (before binarising):
    the background model of Ren et al. 2019 (likelihood ratios; they take r in 0.1..0.3).
    Held-out data and evaluation samples are never perturbed."""

    num_classes: ClassVar[int] = 10                 # the labels a data set of this kind has
    root: PathStr | None = None
    split: Literal["train", "test"] = "train"
    flip: bool = False
    labels: bool = True
    binarize: Literal["none", "dynamic"] = "none"
    classes: list[int] | None = None
    perturb: float = Field(0.0, ge=0.0, le=1.0)
    # semi-supervised learning (Salimans et al. 2016, section 5): only this many training
    # images per class keep their labels (chosen by labelled_seed); see SemiSupervisedSource
    labelled_per_class: int | None = Field(None, ge=1, le=1_000_000)
    labelled_seed: int = Field(0, ge=0)

    @field_validator("classes")
    @classmethod
    def _classes(cls, v: list[int] | None) -> list[int] | None:
        """None (all classes) or a non-empty list of distinct labels of 0..num_classes-1."""
        if v is None:
            return v
        bad = [c for c in v if not 0 <= c < cls.num_classes]
        if not v or bad or len(set(v)) != len(v):
            raise ValueError(f"must be a non-empty list of distinct labels of "
                             f"0..{cls.num_classes - 1}, not {v}")
        return sorted(v)

    @model_validator(mode="after")
    def _labelled_needs_labels(self) -> "ImageParams":
        if self.labelled_per_class is not None and not self.labels:
            raise ValueError("data.labelled_per_class needs data.labels=true")
        return self


HELDOUT_BINARIZE_SEED = 20140101   # the one fixed draw of a binarised held-out set


def binarize_images(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> uint8 images of 0 or 255, each pixel 255 with
    probability (grey level / 255). The uniforms are drawn on the CPU from ``gen`` (a CPU
    generator, so that its state is portable), then moved to the images' device."""
    u = torch.rand(images.shape, generator=gen).to(images.device)
    return torch.where(u * 255 < images.float(), 255, 0).to(torch.uint8)


def perturb_images(images: torch.Tensor, rate: float, gen: torch.Generator) -> torch.Tensor:
    """uint8 images (N, C, H, W) with each value replaced, with probability ``rate``, by a
    level drawn uniformly from 0..255 (Ren et al. 2019, "Likelihood Ratios for
    Out-of-Distribution Detection", section 4: the input perturbation of the background
    model). Uniforms drawn on the CPU from ``gen`` (portable state), moved to the images'
    device."""
    u = torch.rand(images.shape, generator=gen).to(images.device)
    levels = torch.randint(0, 256, images.shape, generator=gen,
                           dtype=torch.uint8).to(images.device)
    return torch.where(u < rate, levels, images)


def keep_classes(data: ImageSet, classes: list[int] | None, what: str) -> ImageSet:
    """``data`` with only the images whose label is in ``classes`` (None: all of them).
    DataError (one line) when ``data`` has no labels or none of them is in ``classes``."""
    if classes is None:
        return data
    if data.labels is None:
        raise DataError(f"data.classes: {what} has no labels to select by")
    keep = torch.isin(data.labels, torch.tensor(classes))
    if not bool(keep.any()):
        raise DataError(f"data.classes: {what} has no images of classes {classes}")
    idx = keep.nonzero()[:, 0]
    return ImageSet(take_rows(data.images, idx), data.labels[idx], data.class_names,
                    data.skipped)


def binarized_once(images: torch.Tensor) -> torch.Tensor:
    """A fixed binarisation of held-out images (seed ``HELDOUT_BINARIZE_SEED``), in chunks so
    the float temporaries stay small."""
    gen = make_generator(HELDOUT_BINARIZE_SEED)
    return torch.cat([binarize_images(images[i:i + _RESIZE_CHUNK], gen)
                      for i in range(0, len(images), _RESIZE_CHUNK)])


def source_from_set(data: ImageSet, *, seed: int, device: str | torch.device, flip: bool,
                    labels: bool,
                    heldout: Callable[[], HeldOut] | None = None,
                    binarize: bool = False, perturb: float = 0.0) -> ImageTensorSource:
    """Wrap a decoded set as a DataSource; ``labels=False`` makes it unconditional.
    ``heldout`` builds its held-out set on the first ``heldout()`` call; ``binarize``: serve
    dynamically binarised images (see :class:`ImageParams`)."""
    return ImageTensorSource(
        data.images,
        data.labels if labels else None,
        class_names=data.class_names if labels else (),
        seed=seed,
        flip=flip,
        device=device,
        heldout=heldout,
        binarize=binarize,
        perturb=perturb,
    )


def uint8_to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) in 0..255 -> float32 in [-1, 1], as every image batch is."""
    return images.float() / 127.5 - 1


def heldout_of_set(data: ImageSet, description: str, *, labels: bool,
                   device: str | torch.device) -> HeldOut:
    """Held-out images served like the training ones: ``{"x": (m, C, H, W) in [-1, 1]}`` plus
    ``"y"`` (int64) when ``labels`` and the set is labelled. Images stay on the host (a memmap
    stays on disk); each batch is moved to ``device`` as uint8."""
    columns: dict[str, Any] = {"x": data.images}
    if labels and data.labels is not None:
        columns["y"] = data.labels
    return HeldOut(description, columns, transform=uint8_to_unit, device=device)


Split = Literal["train", "test"]


def other_split(split: Split) -> Split:
    """The official split a model trained on ``split`` never saw."""
    return "test" if split == "train" else "train"


def split_source(load: Callable[[Split], ImageSet], name: str, params: Any, *, seed: int,
                 device: str | torch.device) -> ImageTensorSource:
    """A source over ``load(params.split)`` whose held-out set is the other official split
    (test when training on train, train when training on test), loaded on the first
    ``heldout()`` call and brought to ``params.size`` exactly as the training images are.

    ``params`` carries ``split``, ``size``, ``flip``, ``labels`` and ``binarize`` (see
    :class:`ImageParams`; a binarised held-out set is drawn once, with a fixed seed);
    ``name`` names the data set in the held-out description. Raises DataError from ``load``.
    """
    data = keep_classes(load(params.split), params.classes, f"{name} {params.split} split")
    data.images = fit_size(data.images, params.size)
    other = other_split(params.split)
    dynamic = params.binarize == "dynamic"

    def heldout() -> HeldOut:
        held = keep_classes(load(other), params.classes, f"{name} {other} split")
        held.images = fit_size(held.images, params.size)
        what = f"{name} {other} split ({len(held):,} images)"
        if params.classes is not None:
            what += f", classes {params.classes}"
        if dynamic:
            held.images = binarized_once(held.images)
            what += f", binarised once (seed {HELDOUT_BINARIZE_SEED})"
        return heldout_of_set(held, what, labels=params.labels, device=device)

    if params.labelled_per_class is not None:
        return semi_supervised(data, params, seed=seed, device=device, heldout=heldout)
    return source_from_set(data, seed=seed, device=device, flip=params.flip,
                           labels=params.labels, heldout=heldout, binarize=dynamic,
                           perturb=params.perturb)


def labelled_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """(K * per_class,) sorted indices: ``per_class`` examples of each of the K classes in
    ``labels`` (N,), drawn from stream ``seed`` (the same subset for the same labels and
    seed). Raises DataError when a class has fewer than ``per_class`` examples."""
    gen = make_generator(seed)
    picked = []
    for k in labels.unique().tolist():
        members = (labels == k).nonzero().flatten()                     # (N_k,)
        if len(members) < per_class:
            raise DataError(f"data.labelled_per_class={per_class}, but class {k} has only "
                            f"{len(members)} training images")
        picked.append(members[torch.randperm(len(members), generator=gen)[:per_class]])
    return torch.cat(picked).sort().values


class SemiSupervisedSource:
    """Batches for semi-supervised learning (Salimans et al. 2016, section 5): ``{"x"}``, every
    training image with its label dropped, plus ``{"x_lab", "y_lab"}``, as many rows again from
    a fixed labelled subset, cycled in shuffled epochs of its own (the authors' code repeats
    the labelled images to the length of an unlabelled epoch). Both streams are resumable;
    ``sample`` and ``heldout`` are the unlabelled stream's (the held-out set keeps its
    labels). ``info.labelled`` counts the labelled subset."""

    def __init__(self, unlabelled: ImageTensorSource, labelled: ImageTensorSource,
                 indices: torch.Tensor, class_names: tuple[str, ...]):
        self.unlabelled, self.labelled, self.indices = unlabelled, labelled, indices
        self.info = replace(labelled.info, labelled=len(indices), class_names=class_names)

    def __len__(self) -> int:
        return len(self.unlabelled)

    def next_batch(self, n: int, rows: slice | None = None) -> dict[str, torch.Tensor]:
        """``{"x": (m, C, H, W), "x_lab": (m, C, H, W), "y_lab": (m,)}`` (``rows``: this
        rank's share of both streams, as ``ImageTensorSource.next_batch``)."""
        lab = self.labelled.next_batch(n, rows)
        return {"x": self.unlabelled.next_batch(n, rows)["x"], "x_lab": lab["x"],
                "y_lab": lab["y"]}

    def sample(self, n: int, seed: int) -> torch.Tensor:
        return self.unlabelled.sample(n, seed)

    def heldout(self) -> HeldOut:
        return self.unlabelled.heldout()

    def state_dict(self) -> dict[str, Any]:
        return {"unlabelled": self.unlabelled.state_dict(),
                "labelled": self.labelled.state_dict(), "labelled_indices": self.indices}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Raises DataError when the checkpoint's labelled subset is not this one (another
        ``labelled_seed``, ``labelled_per_class`` or data set)."""
        saved = torch.as_tensor(state.get("labelled_indices", torch.empty(0)))
        if not torch.equal(saved.cpu().long(), self.indices.cpu()):
            raise DataError("the checkpoint was trained on another labelled subset (see "
                            "data.labelled_per_class / data.labelled_seed)")
        self.unlabelled.load_state_dict(state["unlabelled"])
        self.labelled.load_state_dict(state["labelled"])


def semi_supervised(data: ImageSet, params: Any, *, seed: int, device: str | torch.device,
                    heldout: Callable[[], HeldOut]) -> SemiSupervisedSource:
    """The semi-supervised source of ``data`` (``params.labelled_per_class`` labelled images
    per class, chosen by ``params.labelled_seed``); DataError for an unlabelled set."""
    if data.labels is None:
        raise DataError("data.labelled_per_class needs a labelled data set")
    idx = labelled_subset(data.labels, params.labelled_per_class, params.labelled_seed)
    images = torch.as_tensor(np.asarray(take_rows(data.images, idx)))   # (K n, C, H, W)
    dynamic = params.binarize == "dynamic"
    unlabelled = source_from_set(data, seed=seed, device=device, flip=params.flip,
                                 labels=False, heldout=heldout, binarize=dynamic,
                                 perturb=params.perturb)
    labelled = ImageTensorSource(images, data.labels[idx], class_names=data.class_names,
                                 seed=seed + 1, flip=params.flip, device=device,
                                 binarize=dynamic, perturb=params.perturb)
    return SemiSupervisedSource(unlabelled, labelled, idx, data.class_names)


def labelled_count(params: Any, num_classes: int) -> int:
    """How many labelled examples a semi-supervised source of ``params`` serves (0: none):
    ``labelled_per_class`` of each of its classes (``classes`` when it keeps only those)."""
    kept = len(params.classes) if params.classes else num_classes
    return (params.labelled_per_class or 0) * kept
