"""The one way gankit turns an image file into pixels.

Every reader of user images goes through :func:`decode_image` (or :func:`open_image` and
:func:`to_array` for a file holding two images side by side): the training folder loader,
paired and unpaired translation folders, ``gankit translate`` inputs, and the FID / IS / KID /
precision-recall feature extraction of folders (``gankit fid``). So a picture means the same
pixels to training and to evaluation. The rules, in the order they apply:

1. **Files.** Names ending in .png .jpg .jpeg .webp .bmp .tif .tiff .ppm .pgm (any case;
   names starting with "." are skipped, e.g. macOS ``._x.png``); only Pillow's PNG, JPEG,
   WebP, BMP, TIFF and PPM decoders are used, whatever the file claims to be. Multi-frame
   files give their first frame.
2. **Orientation.** The EXIF orientation tag is applied (phone photos store rotation there).
3. **Bit depth.** 16-bit grayscale (Pillow modes ``I;16*``, and ``I``, which Pillow uses for
   16-bit PGM and 32-bit TIFF) maps 0..65535 to 0..255 (``round(v * 255 / 65535)``, so
   ``v8 * 257`` gives back ``v8`` exactly; larger values clip); float (``F``) is read as 0..1
   when its largest value is at most 1, else as 0..255. 16-bit colour PNGs are reduced to 8
   bits by Pillow itself.
4. **Palette** images are expanded to their colours (keeping their transparency).
5. **Transparency** (an alpha channel: RGBA, LA, PA, ...; or a palette / tRNS transparent
   colour) is composited onto **white**: a transparent pixel reads as white, a half
   transparent one half-way to white.
6. **Colour.** CMYK, YCbCr, LAB, HSV and 1-bit images are converted to RGB by Pillow;
   then to 1 channel (Pillow's "L": ITU-R 601-2 luma) or 3 channels (RGB, a gray image
   repeated). ICC profiles are not applied: pixel values are taken as sRGB.
7. **Size.** Readers that want a fixed ``size`` (training, translation) resize the shorter
   side to ``size`` with a bicubic filter and centre-crop to ``size`` x ``size``
   (``ImageOps.fit``); a JPEG is first decoded by libjpeg at the smallest 1/2^k scale still
   at least ``size`` (much faster). Feature extraction reads images at their own size: the
   Inception preprocessing resizes them (``gankit.eval.inception``).

Output: uint8 (C, H, W), C = ``channels`` (1 or 3). ``DECODER_VERSION`` changes whenever these
rules change the pixels, and is part of every cache key built on decoded pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "PPM")  # decoders Pillow may use
DECODER_VERSION = 2     # 1: before one decoder (FID read alpha as black, 16-bit as white)

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


def is_image_name(name: str) -> bool:
    """Whether a file name is one the readers take (rule 1): a known extension, not hidden."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _deep_gray_to_l(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer or float grayscale to 8-bit "L" (rule 3); Pillow's own
    convert("L") clips 16-bit values at 255 instead of scaling them."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        scale = 255.0 if float(arr.max(initial=0)) <= 1.0 else 1.0
    else:
        scale = 255.0 / 65535.0
    return Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8), "L")


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Any Pillow image to "L" (``channels`` 1) or "RGB" (3) by rules 3-6."""
    if img.mode in _SIXTEEN_BIT or img.mode == "F":
        img = _deep_gray_to_l(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, 1, RGBA, ...: via RGB, which all have
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def open_image(path: str | os.PathLike, draft: tuple[str, int] | None = None) -> Image.Image:
    """The file's first frame, decoded and turned upright (rules 1-2), still in its own mode.

    ``draft=(mode, size)`` lets libjpeg decode a JPEG at a reduced scale (rule 7). Raises
    what Pillow raises for a file it cannot decode (UnidentifiedImageError, OSError, ...)."""
    with Image.open(path, formats=FORMATS) as img:
        if draft is not None:
            img.draft(draft[0], (draft[1], draft[1]))
        img.load()
        return ImageOps.exif_transpose(img)


def to_array(img: Image.Image, channels: int, size: int | None = None) -> np.ndarray:
    """A Pillow image to uint8 (C, H, W) by rules 3-7 (``size`` None: its own size)."""
    img = to_mode(img, channels)
    if size is not None:
        img = ImageOps.fit(img, (size, size), Image.Resampling.BICUBIC)
    arr = np.array(img, dtype=np.uint8)            # a writable copy (H, W[, 3])
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)  # (C, H, W)


def decode_image(path: str | os.PathLike, channels: int = 3,
                 size: int | None = None) -> np.ndarray:
    """One image file to uint8 (``channels``, H, W) by the module's rules; with ``size``,
    (``channels``, size, size). Raises what Pillow raises for an undecodable file (see
    :func:`try_decode` for a reason instead)."""
    draft = None if size is None else ("L" if channels == 1 else "RGB", size)
    return to_array(open_image(path, draft), channels, size)


def try_decode(read: Callable[[Path], np.ndarray], path: Path,
               nbytes: int | None = None) -> tuple[np.ndarray | None, str]:
    """``(read(path), "")``, or ``(None, why)`` with why one of "empty", "not an image",
    "truncated", "unreadable", "corrupt". ``nbytes``: the file's size when already known."""
    try:
        if (path.stat().st_size if nbytes is None else nbytes) == 0:
            return None, "empty"
        return read(path), ""
    except UnidentifiedImageError:
        return None, "not an image"
    # Pillow's plugins raise many exception types on malformed input (OSError, SyntaxError,
    # ValueError, struct.error, IndexError, DecompressionBombError, ...); one bad file must
    # never stop a load, so anything that is an Exception counts as a corrupt file.
    except Exception as e:  # noqa: BLE001
        if isinstance(e, PermissionError):
            return None, "unreadable"
        return None, "truncated" if isinstance(e, EOFError) or "truncated" in str(e) else "corrupt"
