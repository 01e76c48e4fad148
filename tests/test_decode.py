"""One image decoder for every reader (issue 20, section 1): its rules, and FID / training /
translation reading the same pixels from 16-bit, transparent, palette, CMYK and rotated files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.data import decode
from gankit.data.folder import load_folder
from gankit.eval import api as eval_api
from gankit.eval import features as feat

pytestmark = pytest.mark.filterwarnings("ignore::gankit.metrics.fid.FIDWarning")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))


def gray_pictures(n: int = 4, size: int = 24) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size), dtype=np.uint8) for _ in range(n)]


def write(folder: Path, images: list, ext: str = "png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        (im if isinstance(im, Image.Image) else Image.fromarray(im)).save(folder / f"{i}.{ext}")
    return folder


def rgba_with_transparent_corners(n: int = 4, size: int = 24) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        a = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
        a[..., 3] = 255
        a[:6, :6, 3] = a[-6:, -6:, 3] = 0                 # transparent corners
        a[:6, -6:, 3] = 128                               # and a half transparent one
        out.append(Image.fromarray(a, "RGBA"))
    return out


def on_white(img: Image.Image) -> Image.Image:
    """The compositing rule, written out: out = a * rgb + (1 - a) * 255."""
    a = np.asarray(img, np.float64)
    alpha = a[..., 3:] / 255
    return Image.fromarray(np.round(a[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8))


# ---------------------------------------------------------------- the rules
def test_sixteen_bit_gray_reads_as_the_same_eight_bit_picture(tmp_path):
    eight = gray_pictures(1)[0]
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    np.testing.assert_array_equal(decode.decode_image(tmp_path / "deep.png", 1)[0], eight)
    # "I": Pillow's mode for a 16-bit PGM (and 32-bit TIFFs): the same 16-bit scale
    with open(tmp_path / "deep.pgm", "wb") as f:
        f.write(b"P5\n24 24\n65535\n" + (eight.astype(">u2") * 257).tobytes())
    assert Image.open(tmp_path / "deep.pgm").mode == "I"
    np.testing.assert_array_equal(decode.decode_image(tmp_path / "deep.pgm", 1)[0], eight)
    dark = np.full((4, 4), 200, np.uint16)               # 16-bit 200 is nearly black
    Image.fromarray(dark).save(tmp_path / "dark.png")
    assert decode.decode_image(tmp_path / "dark.png", 1).max() == 1
    Image.fromarray(eight.astype(np.float32) / 255).save(tmp_path / "unit.tif")   # "F" in 0..1
    np.testing.assert_array_equal(decode.decode_image(tmp_path / "unit.tif", 1)[0], eight)


def test_alpha_palette_cmyk_la_on_white(tmp_path):
    img = rgba_with_transparent_corners(1)[0]
    img.save(tmp_path / "rgba.png")
    got = decode.decode_image(tmp_path / "rgba.png", 3).transpose(1, 2, 0)
    np.testing.assert_array_equal(got, np.asarray(on_white(img)))
    assert (got[:6, :6] == 255).all()
    Image.new("LA", (8, 8), (0, 0)).save(tmp_path / "la.png")
    assert (decode.decode_image(tmp_path / "la.png", 1) == 255).all()
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.save(tmp_path / "pal.png")
    assert decode.decode_image(tmp_path / "pal.png", 3)[:, 0, 0].tolist() == [10, 20, 30]
    pal.save(tmp_path / "pal-t.png", transparency=1)      # the palette colour is transparent
    assert (decode.decode_image(tmp_path / "pal-t.png", 3) == 255).all()
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    r, g, b = decode.decode_image(tmp_path / "cmyk.jpg", 3)[:, 4, 4].tolist()
    assert r > 240 and g < 15 and b < 15                  # pure red


def test_exif_orientation_and_resize_protocol(tmp_path):
    a = np.zeros((10, 20, 3), np.uint8)
    a[:, :10] = 255                                        # left half white
    exif = Image.Exif()
    exif[0x0112] = 6                                      # "rotate 90 CW to display"
    Image.fromarray(a).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    upright = decode.decode_image(tmp_path / "phone.jpg", 1)[0]
    assert upright.shape == (20, 10)                      # turned upright
    assert upright[:8].mean() > 200 and upright[-8:].mean() < 50    # white half now on top
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 20:40] = 255
    Image.fromarray(wide).save(tmp_path / "wide.png")
    fitted = decode.decode_image(tmp_path / "wide.png", 3, size=10)
    assert fitted.shape == (3, 10, 10) and fitted[:, :, 1:-1].min() > 200   # centre crop


def test_names_and_formats(tmp_path):
    assert decode.is_image_name("a.TIFF") and decode.is_image_name("b.pgm")
    assert not decode.is_image_name("._a.png") and not decode.is_image_name("a.gif")
    Image.new("RGB", (4, 4)).save(tmp_path / "fake.png", format="GIF")   # a GIF named .png
    arr, why = decode.try_decode(decode.decode_image, tmp_path / "fake.png")
    assert arr is None and why == "not an image"
    (tmp_path / "empty.png").write_bytes(b"")
    assert decode.try_decode(decode.decode_image, tmp_path / "empty.png") == (None, "empty")


# ---------------------------------------------------------------- every reader, the same pixels
def test_training_fid_and_translation_readers_agree(tmp_path):
    folder = write(tmp_path / "rgba", rgba_with_transparent_corners(3))
    buf = io.BytesIO()
    Image.fromarray(gray_pictures(1)[0].astype(np.uint16) * 257).save(buf, "PNG")
    (folder / "3.png").write_bytes(buf.getvalue())
    trained = load_folder(folder, size=24, channels=3).images.numpy()
    for i in range(4):
        np.testing.assert_array_equal(feat.load_image(folder / f"{i}.png").numpy(), trained[i])


def fid(a: Path, b: Path) -> float:
    return eval_api.fid_between(a, b, fid_method="svd", use_cache=False)["fid"]


def test_fid_of_sixteen_bit_folders(tmp_path, small_inception):
    pics = gray_pictures()
    eight = write(tmp_path / "eight", pics)
    sixteen = write(tmp_path / "sixteen", [p.astype(np.uint16) * 257 for p in pics])
    white = write(tmp_path / "white", [np.full_like(p, 255) for p in pics])
    assert abs(fid(eight, sixteen)) < 1e-6                # was 9030.8
    assert fid(sixteen, white) > 100                      # was 0.0
    assert fid(sixteen, white) == pytest.approx(fid(eight, white), rel=1e-9)


def test_fid_of_transparent_pictures_composites_on_white(tmp_path, small_inception):
    pics = rgba_with_transparent_corners()
    rgba = write(tmp_path / "rgba", pics)
    flat = write(tmp_path / "flat", [on_white(p) for p in pics])
    black = write(tmp_path / "black", [p.convert("RGB") for p in pics])   # alpha dropped
    assert abs(fid(rgba, flat)) < 1e-6                    # was 501.0
    assert fid(rgba, black) > 1


def test_fid_command_on_sixteen_bit_folder(tmp_path, small_inception):
    from cli_runner import run_cli
    pics = gray_pictures()
    eight = write(tmp_path / "eight", pics)
    sixteen = write(tmp_path / "sixteen", [p.astype(np.uint16) * 257 for p in pics])
    code, out, err = run_cli(["fid", str(eight), str(sixteen), "--fid-method", "svd"])
    assert code == 0, err
    assert abs(json.loads(out)["fid"]) < 1e-6
