"""fid_between / generator features end to end, with stand-in Inception weights."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.errors import GankitError
from gankit.eval import api
from gankit.eval import features as feat
from gankit.eval.inception import FID_WEIGHTS_FILENAME, InceptionFeatures, sha256_file
from gankit.metrics.fid import FIDWarning, load_stats, save_stats

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "inception"

pytestmark = [
    pytest.mark.skipif(not (REFERENCE / "make_weights.py").is_file(),
                       reason="shared/reference/inception not available"),
    pytest.mark.filterwarnings("ignore::gankit.metrics.fid.FIDWarning"),
]


@pytest.fixture(scope="module")
def weights(stand_in_inception_weights):
    return stand_in_inception_weights


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANKIT_INCEPTION_WEIGHTS", raising=False)


def write_folder(folder: Path, seed: int, n: int = 4, size: int = 24, ext: str = "png"):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i:03d}.{ext}")
    return folder


@pytest.fixture
def folders(tmp_path):
    return write_folder(tmp_path / "real", 0), write_folder(tmp_path / "fake", 1)


def test_fid_between_folders_returns_fid_and_protocol(weights, folders):
    with pytest.warns(FIDWarning):
        res = api.fid_between(*folders, weights=weights, fid_method="svd", batch_size=3)
    json.dumps(res)                                                    # CLI prints it as JSON
    assert res["fid"] > 0
    p = res["protocol"]
    assert p["weights_sha256"] == sha256_file(weights) and p["resize"] == "pytorch-fid"
    assert p["n_real"] == 4 and p["n_generated"] == 4 and p["metric"] == "fid"
    assert "feature_network" in p and "reference_split" in p


def test_fid_of_a_folder_with_itself_is_zero(weights, folders):
    res = api.fid_between(folders[0], folders[0], weights=weights, fid_method="svd",
                          progress=True)
    assert res["fid"] == pytest.approx(0, abs=1e-9)


def test_save_stats_round_trip_and_cache(weights, folders, tmp_path, monkeypatch):
    real, fake = folders
    stats = tmp_path / "real.npz"
    direct = api.fid_between(real, fake, weights=weights, fid_method="svd", save_stats=stats,
                             reference_split="train")
    mu, sigma, info = load_stats(stats)
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048)
    assert info["n"] == 4 and info["protocol"]["reference_split"] == "train"
    assert info["protocol"]["weights_sha256"] == direct["protocol"]["weights_sha256"]

    # Second time round everything comes from the stats file and the folder cache.
    def no_network(self, images):
        raise AssertionError("features should have come from the cache")

    monkeypatch.setattr(InceptionFeatures, "__call__", no_network)
    via_file = api.fid_between(stats, fake, weights=weights, fid_method="svd")
    assert via_file["fid"] == pytest.approx(direct["fid"], rel=1e-9)
    assert via_file["protocol"]["reference_split"] == "train"


def test_cache_notices_changed_folder(weights, folders):
    extractor = api.get_extractor(weights)
    fake = folders[1]
    mu, _, n, protocol = feat.folder_statistics(fake, extractor)
    assert n == 4 and "cached" not in protocol
    assert feat.folder_statistics(fake, extractor)[3]["cached"] is True
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(fake / "zzz.png")
    mu2, _, n2, protocol2 = feat.folder_statistics(fake, extractor)
    assert n2 == 5 and "cached" not in protocol2 and not np.allclose(mu, mu2)


def test_incomparable_statistics_are_refused(weights, folders, tmp_path):
    other = save_stats(tmp_path / "clean.npz", np.zeros(2048), np.eye(2048),
                       protocol={"resize": "clean"})
    with pytest.raises(GankitError, match="resize differs"):
        api.fid_between(other, folders[1], weights=weights, fid_method="svd")


def test_clean_resize_mode_and_jpeg(weights, tmp_path):
    a = write_folder(tmp_path / "a", 2, n=2, ext="jpg")
    clean = api.folder_features(a, weights=weights, resize="clean", use_cache=False)
    legacy = api.folder_features(a, weights=weights, use_cache=False)
    assert clean.protocol["resize"] == "clean" and legacy.protocol["resize"] == "pytorch-fid"
    assert clean.pool3.shape == (2, 2048) and not np.allclose(clean.pool3, legacy.pool3)


def test_generator_features_match_saved_pngs(weights, tmp_path):
    """In-memory sampling quantizes like a PNG save, so both routes give the same features."""
    g = torch.Generator().manual_seed(4)
    images = torch.rand(5, 3, 20, 20, generator=g) * 2 - 1            # generator output range
    drawn = iter(images.split([2, 2, 1]))
    calls = []

    def sample_fn(n):
        calls.append(n)
        return next(drawn)

    gen = api.feature_stats_for_generator(sample_fn, 5, weights=weights, batch_size=2)
    assert calls == [2, 2, 1] and gen.pool3.shape == (5, 2048) and gen.logits.shape == (5, 1008)
    folder = tmp_path / "saved"
    folder.mkdir()
    for i, x in enumerate(feat.to_uint8_images(images)):
        Image.fromarray(x.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    saved = api.folder_features(folder, weights=weights)
    np.testing.assert_allclose(gen.pool3, saved.pool3, atol=1e-5)
    assert gen.protocol["weights_sha256"] == saved.protocol["weights_sha256"]


def test_generator_grayscale_output(weights):
    feats = api.feature_stats_for_generator(lambda n: torch.zeros(n, 1, 16, 16), 2,
                                            weights=weights)
    assert feats.pool3.shape == (2, 2048)


def test_evaluate_features_collects_all_metrics(weights, tmp_path):
    # 7 images: density/coverage need more samples than their k=5.
    real = api.folder_features(write_folder(tmp_path / "r7", 5, n=7, size=8), weights=weights)
    fake = api.folder_features(write_folder(tmp_path / "f7", 6, n=7, size=8), weights=weights)
    res = api.evaluate_features(real, fake, kid_subsets=3, reference_split="test",
                                fid_method="svd")
    for key in ("fid", "is_mean", "is_std", "kid_mean", "kid_std", "precision", "recall",
                "density", "coverage"):
        assert np.isfinite(res[key]), key
    assert res["protocol"]["n_real"] == 7 and res["protocol"]["reference_split"] == "test"
    json.dumps(res)


def test_user_errors(weights, folders, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GankitError, match="no images"):
        api.fid_between(tmp_path / "empty", folders[1], weights=weights, fid_method="svd")
    with pytest.raises(GankitError, match="not an image folder"):
        api.fid_between(tmp_path / "missing", folders[1], weights=weights, fid_method="svd")
    with pytest.raises(GankitError, match="save_stats"):
        api.fid_between(tmp_path / "x.npz", folders[1], weights=weights, fid_method="svd",
                        save_stats=tmp_path / "y.npz")
    with pytest.raises(GankitError):
        api.feature_stats_for_generator(lambda n: torch.zeros(n, 3, 8), 2, weights=weights)


@pytest.mark.slow
def test_default_sqrtm_method_agrees_with_svd(weights, folders):
    # pytorch-fid's sqrtm on 2048x2048 takes 20-90 s on 2 cores, hence slow.
    reference = api.fid_between(*folders, weights=weights)
    assert reference["protocol"]["fid_method"] == "sqrtm"
    fast = api.fid_between(*folders, weights=weights, fid_method="svd")
    assert fast["fid"] == pytest.approx(reference["fid"], rel=1e-4)
