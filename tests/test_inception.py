"""The FID Inception network against pytorch-fid's outputs (stand-in weights, expected.npz)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.errors import GankitError
from gankit.eval import inception as inc

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "inception"

pytestmark = pytest.mark.skipif(not (REFERENCE / "make_weights.py").is_file(),
                                reason="shared/reference/inception not available")


@pytest.fixture(scope="module")
def weights_path(stand_in_inception_weights):
    return stand_in_inception_weights


@pytest.fixture(scope="module")
def expected():
    with np.load(REFERENCE / "expected.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def extractors(weights_path):
    return {fast: inc.load_inception(weights_path, fast=fast) for fast in (True, False)}


def test_state_dict_layout_matches_weights_file():
    layout = json.loads((REFERENCE / "layout.json").read_text())
    ours = inc.FIDInceptionV3().state_dict()
    assert len(layout) == len(ours) == 566
    assert {e["key"]: tuple(e["shape"]) for e in layout} == {k: tuple(v.shape)
                                                             for k, v in ours.items()}


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("size", ["x28", "x64"])
def test_reproduces_pytorch_fid(extractors, expected, fast, size):
    images = torch.from_numpy(expected[f"{size}_images_uint8"]) / 255.0  # as pytorch-fid got them
    pool3, logits = extractors[fast](images)
    pool3, logits = pool3.double().numpy(), logits.double().numpy()
    ref = expected[f"{size}_pool3"]
    assert pool3.shape == (4, 2048) and logits.shape == (4, 1008)
    np.testing.assert_allclose(pool3, ref, atol=1e-4, rtol=0)
    # Features share a large common part; a preprocessing error shows in the differences.
    np.testing.assert_allclose(pool3[1:] - pool3[:-1], ref[1:] - ref[:-1], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits, expected[f"{size}_logits_unbiased"], atol=1e-4, rtol=0)


def test_uint8_input_equals_float_input(extractors, expected):
    images = torch.from_numpy(expected["x28_images_uint8"][:1])
    a, _ = extractors[True](images)
    b, _ = extractors[True](images / 255.0)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_fast_path_equals_plain_forward(extractors):
    # Below 299x299 to stay fast: the trunk is fully convolutional up to pool3.
    x = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fast, _ = extractors[True].forward_preprocessed(x)
    plain, _ = extractors[False].forward_preprocessed(x)
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=0)


def test_features_do_not_depend_on_batch_size(extractors):
    # Small network inputs keep this fast: the network is fully convolutional up to pool3,
    # and preprocessing is checked for batch independence separately below.
    g = torch.Generator().manual_seed(1)
    x = torch.rand(50, 3, 80, 80, generator=g) * 2 - 1
    together, _ = extractors[True].forward_preprocessed(x)            # (50, 2048)
    for i in (0, 17, 49):
        alone, _ = extractors[True].forward_preprocessed(x[i:i + 1])
        torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=0)


@pytest.mark.parametrize("resize", inc.RESIZE_MODES)
def test_preprocessing_is_per_image(resize):
    images = torch.randint(0, 256, (5, 3, 20, 24), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(2))
    together = inc.preprocess(images, resize)
    assert together.shape == (5, 3, 299, 299)
    assert together.min() >= -1 and together.max() <= 1
    torch.testing.assert_close(inc.preprocess(images[3:4], resize)[0], together[3], atol=0,
                               rtol=0)


@pytest.mark.parametrize("resize", inc.RESIZE_MODES)
def test_grayscale_is_repeated_to_rgb(resize):
    gray = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8)
    torch.testing.assert_close(inc.preprocess(gray, resize),
                               inc.preprocess(gray.repeat(1, 3, 1, 1), resize))


def test_pytorch_fid_resize_is_plain_bilinear_to_minus_one_one():
    x = torch.rand(2, 3, 10, 10)
    ref = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear",
                                          align_corners=False) * 2 - 1
    torch.testing.assert_close(inc.preprocess(x, "pytorch-fid"), ref)


def test_clean_resize_uses_pil_bicubic_on_float_channels():
    from PIL import Image

    img = torch.randint(0, 256, (1, 3, 12, 9), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(3))
    out = inc.preprocess(img, "clean")
    channel = Image.fromarray(img[0, 1].numpy().astype(np.float32), mode="F")
    ref = np.asarray(channel.resize((299, 299), resample=Image.BICUBIC)).clip(0, 255)
    np.testing.assert_allclose(out[0, 1].numpy(), ref / 255 * 2 - 1, atol=1e-6)
    # A constant image stays constant (no ringing from the clip).
    flat = inc.preprocess(torch.full((1, 3, 8, 8), 128, dtype=torch.uint8), "clean")
    torch.testing.assert_close(flat, torch.full_like(flat, 128 / 255 * 2 - 1))


def test_bad_image_shapes_and_modes():
    with pytest.raises(GankitError):
        inc.preprocess(torch.zeros(3, 8, 8))
    with pytest.raises(GankitError):
        inc.preprocess(torch.zeros(1, 2, 8, 8))
    with pytest.raises(GankitError):
        inc.preprocess(torch.zeros(1, 3, 8, 8), resize="nearest")


def test_protocol_records_weights_hash(extractors, weights_path):
    protocol = extractors[True].protocol()
    assert protocol["weights_sha256"] == inc.sha256_file(weights_path)
    assert protocol["resize"] == "pytorch-fid" and protocol["feature_layer"] == "pool3"


# ----------------------------------------------------------------------------- weights files


def test_safetensors_weights_load_the_same(weights_path, tmp_path):
    from safetensors.torch import save_file

    state = inc.load_state_dict_file(weights_path)
    save_file(state, tmp_path / "w.safetensors")
    net = inc.load_network(tmp_path / "w.safetensors")
    again = net.state_dict()
    assert again.keys() == state.keys()
    assert all(torch.equal(again[k], state[k]) for k in state)


def test_wrong_weights_file_is_a_clear_error(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(GankitError, match="not an FID Inception"):
        inc.load_network(tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(GankitError, match="cannot read"):
        inc.load_network(tmp_path / "junk.pth")


def test_weights_resolution_order(tmp_path, monkeypatch):
    explicit, env = tmp_path / "explicit.pth", tmp_path / "env.pth"
    explicit.write_bytes(b"x")
    env.write_bytes(b"x")
    cached = tmp_path / "cache" / "weights" / inc.FID_WEIGHTS_FILENAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    monkeypatch.setenv(inc.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(inc.WEIGHTS_ENV, str(env))
    assert inc.resolve_weights(explicit) == explicit
    assert inc.resolve_weights() == env
    monkeypatch.delenv(inc.WEIGHTS_ENV)
    assert inc.resolve_weights() == cached
    with pytest.raises(GankitError, match="not found"):
        inc.resolve_weights(tmp_path / "nope.pth")


def test_missing_weights_without_download_says_how_to_provide(tmp_path, monkeypatch):
    monkeypatch.setenv(inc.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(inc.WEIGHTS_ENV, raising=False)
    with pytest.raises(GankitError, match=inc.WEIGHTS_ENV):
        inc.resolve_weights(download=False)
    monkeypatch.setenv(inc.OFFLINE_ENV, "1")                          # no download attempt
    with pytest.raises(GankitError, match="offline.*--inception-weights"):
        inc.resolve_weights()


def test_download_checks_hash_prefix_and_reports_failure(tmp_path, monkeypatch):
    import torch.hub

    monkeypatch.setenv(inc.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(inc.WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(inc.OFFLINE_ENV, raising=False)
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        Path(dst).write_bytes(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = inc.resolve_weights()
    assert path == tmp_path / "weights" / inc.FID_WEIGHTS_FILENAME and path.is_file()
    assert calls == [(inc.FID_WEIGHTS_URL, "6726825d")]

    path.unlink()

    def offline(url, dst, hash_prefix=None, progress=True):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(GankitError, match="could not download.*--inception-weights"):
        inc.resolve_weights()
