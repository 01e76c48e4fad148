"""Small CNN classifiers for 28x28 digits and clothes, shipped with gankit for offline metrics.

The weights (``gankit/weights/<name>_classifier.safetensors``) are trained by
``scripts/train_classifiers.py``; each file's safetensors metadata holds a JSON entry
``gankit_classifier`` with the architecture, the measured test accuracy and the exact training
command, so a number computed with these networks can always be traced back to how they were
made. Nothing is downloaded.

Inputs follow the generator convention: float images in [-1, 1], shape (B, C, H, W). Other
sizes are resized to 28x28 with ``F.interpolate`` (bilinear, antialiased when shrinking); three
channels are averaged to one. Stacked-MNIST splits its channels *before* calling the network.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor, nn

from gankit.errors import GankitError
from gankit.metrics.finite import check_finite

SIZE = 28
META_KEY = "gankit_classifier"
WEIGHT_FILES = {
    "mnist": "mnist_classifier.safetensors",
    "fashion-mnist": "fashion_mnist_classifier.safetensors",
}
DEFAULT_ARCH: dict[str, Any] = {"channels": [32, 64, 128], "pool": 3, "feature_dim": 128,
                                "num_classes": 10}


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """conv-pool, conv-pool, conv, average pool to pool x pool, FC (features), FC (logits).

    The final pooling keeps a coarse layout (a global average would lose it: sleeves and
    collars tell Fashion-MNIST's shirts from pullovers and coats). About 8M multiply-adds per
    image, so 10k test images take a few seconds on one CPU core.
    """

    def __init__(self, channels: list[int] = (32, 64, 128), pool: int = 3,
                 feature_dim: int = 128, num_classes: int = 10, dropout: float = 0.0):
        super().__init__()
        c1, c2, c3 = channels
        self.body = nn.Sequential(
            *_conv(1, c1), nn.MaxPool2d(2),            # (B, c1, 14, 14)
            *_conv(c1, c2), nn.MaxPool2d(2),           # (B, c2, 7, 7)
            *_conv(c2, c3),                            # (B, c3, 7, 7)
            nn.AdaptiveAvgPool2d(pool), nn.Flatten(),  # (B, c3 * pool * pool)
            nn.Linear(c3 * pool * pool, feature_dim), nn.ReLU(inplace=True),   # (B, feature_dim)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    @staticmethod
    def prepare(x: Tensor) -> Tensor:
        """Float images in [-1, 1] of any size / 1 or 3 channels -> (B, 1, 28, 28)."""
        if x.ndim != 4:
            raise GankitError(f"classifier expects images (B, C, H, W), got shape {tuple(x.shape)}")
        x = x.float()
        if x.shape[1] != 1:
            x = x.mean(dim=1, keepdim=True)
        if x.shape[-2:] != (SIZE, SIZE):
            shrink = x.shape[-1] > SIZE or x.shape[-2] > SIZE
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False,
                              antialias=shrink)
        return x

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (B, feature_dim): the space of the Fréchet distance."""
        return self.body(self.prepare(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))      # (B, num_classes) logits


# ---------------------------------------------------------------- shipped weights
def weights_path(name: str) -> Path:
    if name not in WEIGHT_FILES:
        raise GankitError(f"no shipped classifier {name!r}; choose one of: "
                          f"{', '.join(sorted(WEIGHT_FILES))}")
    return Path(str(resources.files("gankit") / "weights" / WEIGHT_FILES[name]))


def read_info(path: str | Path) -> dict[str, Any]:
    """The JSON metadata entry of a classifier weights file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (OSError, SafetensorError) as e:
        raise GankitError(f"cannot read classifier weights {path}: {e}") from None
    if META_KEY not in meta:
        raise GankitError(f"{path} is not a gankit classifier (no {META_KEY} metadata)")
    return json.loads(meta[META_KEY])


def classifier_info(name: str) -> dict[str, Any]:
    """Architecture, data set, test accuracy and training command of a shipped classifier."""
    return read_info(weights_path(name))


def save_classifier(path: str | Path, model: SmallCNN, info: dict[str, Any]) -> None:
    from safetensors.torch import save_file
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={META_KEY: json.dumps(info, sort_keys=True)})


def load_classifier_file(path: str | Path, device: str | torch.device = "cpu") -> SmallCNN:
    info = read_info(path)
    arch = {**DEFAULT_ARCH, **info.get("arch", {})}
    model = SmallCNN(arch["channels"], arch["pool"], arch["feature_dim"], arch["num_classes"])
    try:
        model.load_state_dict(load_file(str(path)))
    except (RuntimeError, SafetensorError) as e:
        raise GankitError(f"classifier weights {path} do not fit the network: "
                          f"{str(e).splitlines()[0]}") from None
    model.requires_grad_(False)
    return model.eval().to(device)


@lru_cache(maxsize=8)
def _cached(name: str, device: str) -> SmallCNN:
    return load_classifier_file(weights_path(name), device)


def load_classifier(name: str, device: str | torch.device = "cpu") -> SmallCNN:
    """A shipped classifier in eval mode, frozen. ``name``: ``mnist`` or ``fashion-mnist``.

    Cached per process and device (metrics call this at every evaluation): treat it as
    read-only and do not move it; ask for another device instead.
    """
    return _cached(name, str(torch.device(device)))


@torch.no_grad()
def classify(model: SmallCNN, images: Tensor, batch: int = 1000) -> tuple[Tensor, Tensor]:
    """(features (N, D), logits (N, K)) for images in [-1, 1], computed in chunks on the
    model's device; results on CPU."""
    check_finite("images to classify", images)
    device = next(model.parameters()).device
    feats, logits = [], []
    for i in range(0, len(images), batch):
        f = model.features(images[i:i + batch].to(device))
        feats.append(f.float().cpu())
        logits.append(model.head(f).float().cpu())
    if not feats:
        raise GankitError("no images to classify")
    return torch.cat(feats), torch.cat(logits)


def uint8_to_unit(images: Tensor) -> Tensor:
    """uint8 images (as stored by the data sets) -> float in [-1, 1], like a batch."""
    return images.float() / 127.5 - 1
