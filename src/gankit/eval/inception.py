"""The FID Inception-v3 network (TensorFlow 2015-12-05 graph, as ported by pytorch-fid).

Written without torchvision. Module and parameter names match pytorch-fid's weights file
``pt_inception-2015-12-05-6726825d.pth`` key for key, so that file (or a ``.safetensors``
copy of it) loads with ``strict=True``. Differences from torchvision's Inception-v3, which are
what make FID numbers comparable with the TensorFlow original:

* 1008 output classes (the TF graph has 8 unused ones);
* the pool branches of the A/C/E blocks average with ``count_include_pad=False`` (TF's
  ``avg_pool`` ignores zero padding);
* the last block (Mixed_7c) max-pools in its pool branch (a quirk of the TF graph).

Preprocessing follows pytorch-fid: float images in [0, 1], bilinear resize to 299x299 with
``align_corners=False`` and no antialiasing (plain ``F.interpolate``), then scaling to [-1, 1].
``resize="clean"`` follows clean-fid instead: PIL bicubic on each channel of the uint8 image
as float, clipped to [0, 255].
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gankit.contentkey import file_sha256 as sha256_file
from gankit.errors import GankitError

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_ENV = "GANKIT_INCEPTION_WEIGHTS"
CACHE_ENV = "GANKIT_CACHE"
OFFLINE_ENV = "GANKIT_OFFLINE"
NETWORK_NAME = "inception-v3-tf-2015-12-05 (pytorch-fid port)"
RESIZE_MODES = ("pytorch-fid", "clean")
INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008


# ----------------------------------------------------------------------------- network


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as in the TF graph) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg_pool_tf(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool does not count the zero padding.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a); identical to torchvision's."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_tf(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a); identical to torchvision's."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class FIDInceptionE(nn.Module):
    """Mixed_7b (``pool="avg"``, TF-style average) and Mixed_7c (``pool="max"``)."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_tf(x)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 trunk up to pool3, plus the 1008-way ``fc`` used for Inception Score.

    ``forward`` takes already preprocessed images (B, 3, 299, 299) in [-1, 1].
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, c7=128)
        self.Mixed_6c = FIDInceptionC(768, c7=160)
        self.Mixed_6d = FIDInceptionC(768, c7=160)
        self.Mixed_6e = FIDInceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)                   # (B, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)                   # (B, 192, 35, 35)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a,
                      self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e,
                      self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)                                               # ... (B, 2048, 8, 8)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)           # (B, 2048)

    def logits_unbiased(self, pool3: torch.Tensor) -> torch.Tensor:
        # Inception Score uses the logits without the bias, as torch-fidelity does.
        return pool3 @ self.fc.weight.T                                # (B, 1008)


# ----------------------------------------------------------------------------- fast path


def fold_batchnorm(net: FIDInceptionV3) -> FIDInceptionV3:
    """A copy of ``net`` with every BatchNorm folded into the convolution before it.

    conv(x) * g / sqrt(v + eps) + (b - m * g / sqrt(v + eps)) is one convolution with a bias;
    the fold is done in float64 so it adds no rounding beyond the final cast to float32.
    """
    fast = copy.deepcopy(net).eval()
    for module in fast.modules():
        if isinstance(module, BasicConv2d):
            _fold_one(module)
    return fast


def _fold_one(m: BasicConv2d) -> None:
    conv, bn = m.conv, m.bn
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)   # (Cout,)
    weight = conv.weight.double() * scale[:, None, None, None]
    bias = bn.bias.double() - bn.running_mean.double() * scale
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                      stride=conv.stride, padding=conv.padding, bias=True)
    fused.weight.data.copy_(weight.float())
    fused.bias.data.copy_(bias.float())
    m.conv = fused
    m.bn = nn.Identity()


# ----------------------------------------------------------------------------- weights


def cache_dir() -> Path:
    """``$GANKIT_CACHE`` or ``<user cache>/gankit`` (platformdirs; shared with the data code)."""
    from gankit.data.download import cache_root

    return cache_root()


def _how_to_provide() -> str:
    return (f"pass --inception-weights PATH (gankit eval, gankit fid), set "
            f"eval.inception_weights=PATH (training) or {WEIGHTS_ENV}=PATH to a copy of "
            f"{FID_WEIGHTS_FILENAME} (or put it in {cache_dir() / 'weights'})")


def resolve_weights(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Where the Inception weights are: argument > $GANKIT_INCEPTION_WEIGHTS > cache > download."""
    for candidate, origin in ((path, "given"), (os.environ.get(WEIGHTS_ENV), WEIGHTS_ENV)):
        if candidate:
            p = Path(candidate).expanduser()
            if not p.is_file():
                raise GankitError(f"Inception weights ({origin}) not found: {p}")
            return p
    cached = cache_dir() / "weights" / FID_WEIGHTS_FILENAME
    if cached.is_file():
        return cached
    if download and not _offline():
        return _download(cached)
    raise GankitError(f"no Inception weights available offline: {_how_to_provide()}")


def _offline() -> bool:
    from gankit.data.download import offline

    return offline()  # GANKIT_OFFLINE=1 forbids downloads everywhere in gankit


def _download(dest: Path) -> Path:
    from torch.hub import download_url_to_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        # hash_prefix checks the SHA-256 of the downloaded file before it is moved into place.
        download_url_to_file(FID_WEIGHTS_URL, str(dest), hash_prefix=FID_WEIGHTS_SHA256_PREFIX,
                             progress=False)
    except (OSError, RuntimeError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise GankitError(f"could not download the Inception weights ({reason}): "
                          f"{_how_to_provide()}") from e
    return dest


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` (safely, ``weights_only=True``) or ``.safetensors`` state dict."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user-input problem here
        raise GankitError(f"cannot read Inception weights {path}: {type(e).__name__}") from e
    if not isinstance(state, dict):
        raise GankitError(f"Inception weights {path} are not a state dict")
    return state


def load_network(path: Path) -> FIDInceptionV3:
    net = FIDInceptionV3()
    state = load_state_dict_file(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise GankitError(f"{path} is not an FID Inception-v3 state dict "
                          f"({str(e).splitlines()[0]})") from e
    return net.eval().requires_grad_(False)


# ----------------------------------------------------------------------------- preprocessing


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) uint8 in [0, 255] or float in [0, 1] -> float32 RGB in [0, 1]."""
    if images.ndim != 4:
        raise GankitError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)                       # grayscale -> RGB
    if x.shape[1] != 3:
        raise GankitError(f"expected 1 or 3 image channels, got {x.shape[1]}")
    return x


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Quantize like a PNG writer would: float [0, 1] -> uint8 (round to nearest)."""
    if images.dtype == torch.uint8:
        return images
    return (images.float() * 255.0).round().clamp(0, 255).to(torch.uint8)


def resize_pytorch_fid(x: torch.Tensor) -> torch.Tensor:
    """pytorch-fid: bilinear, align_corners=False, no antialias; [0, 1] -> [-1, 1]."""
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2 * x - 1                                                  # (B, 3, 299, 299)


def resize_clean(images_uint8: torch.Tensor) -> torch.Tensor:
    """clean-fid: PIL bicubic on each channel as float ('F' mode), clipped to [0, 255]."""
    from PIL import Image

    arr = images_uint8.cpu().numpy().astype(np.float32)              # (B, 3, H, W)
    out = np.empty((arr.shape[0], 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i in range(arr.shape[0]):
        for c in range(3):
            channel = Image.fromarray(arr[i, c], mode="F")
            resized = channel.resize((INPUT_SIZE, INPUT_SIZE), resample=Image.BICUBIC)
            out[i, c] = np.asarray(resized).clip(0, 255)
    return torch.from_numpy(out) / 255.0 * 2 - 1                      # (B, 3, 299, 299)


def preprocess(images: torch.Tensor, resize: str = "pytorch-fid") -> torch.Tensor:
    """Images (B, C, H, W) as uint8 or float in [0, 1] -> network input (B, 3, 299, 299)."""
    x = to_unit_float(images)
    if resize == "pytorch-fid":
        return resize_pytorch_fid(x)
    if resize == "clean":
        # clean-fid resizes the uint8 image, so float input is quantized first.
        return resize_clean(to_uint8(x))
    raise GankitError(f"unknown resize mode {resize!r}; use one of {', '.join(RESIZE_MODES)}")


# ----------------------------------------------------------------------------- extractor


@dataclass
class InceptionFeatures:
    """Feature extractor: images -> (pool3 (B, 2048), unbiased logits (B, 1008)).

    ``fast=True`` runs the BatchNorm-folded copy in channels_last under inference_mode;
    it matches the plain network within 1e-4.
    """

    net: FIDInceptionV3
    weights_sha256: str
    resize: str = "pytorch-fid"
    device: str = "cpu"
    fast: bool = True

    def __post_init__(self):
        if self.resize not in RESIZE_MODES:
            raise GankitError(f"unknown resize mode {self.resize!r}; "
                              f"use one of {', '.join(RESIZE_MODES)}")
        self.net = self.net.to(self.device).eval()
        self._runner = self.net
        if self.fast:
            self._runner = fold_batchnorm(self.net).to(memory_format=torch.channels_last)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W), uint8 or float in [0, 1] -> (pool3, unbiased logits)."""
        return self.forward_preprocessed(preprocess(images, self.resize))

    def forward_preprocessed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network input (B, 3, H, W) in [-1, 1] (299x299 for FID) -> (pool3, logits)."""
        x = x.to(self.device)
        with torch.inference_mode():
            if self.fast:
                x = x.contiguous(memory_format=torch.channels_last)
            pool3 = self._runner(x)                                   # (B, 2048)
            logits = self.net.logits_unbiased(pool3)                  # (B, 1008)
        return pool3.float().cpu(), logits.float().cpu()

    def protocol(self) -> dict:
        return {
            "feature_network": NETWORK_NAME,
            "feature_layer": "pool3",
            "weights_sha256": self.weights_sha256,
            "resize": self.resize,
        }


def load_inception(weights: str | os.PathLike | None = None, *, resize: str = "pytorch-fid",
                   device: str = "cpu", fast: bool = True,
                   download: bool = True, sha256: str | None = None) -> InceptionFeatures:
    """Resolve, load and wrap the FID Inception network (see :func:`resolve_weights`).
    ``sha256``: the weights file's, when the caller hashed it already (it goes into every
    statistics protocol and cache key, so it is always the hash of the bytes loaded)."""
    path = resolve_weights(weights, download=download)
    sha256 = sha256 or sha256_file(path)
    return InceptionFeatures(load_network(path), sha256, resize=resize, device=device,
                             fast=fast)
