"""Metric maths against closed forms and brute force (no network involved)."""

import itertools
import warnings

import numpy as np
import pytest

from gankit.errors import GankitError
from gankit.metrics.fid import (FIDWarning, feature_statistics, fid_from_features,
                                frechet_distance, load_stats, save_stats)
from gankit.metrics.inception_score import inception_score
from gankit.metrics.kid import kernel_inception_distance, mmd2_unbiased
from gankit.metrics.memorization import nearest_neighbours, neighbour_grid
from gankit.metrics.prdc import density_coverage, knn_radii, precision_recall, prdc


def random_spd(d, seed):
    a = np.random.default_rng(seed).standard_normal((d, 2 * d))
    return a @ a.T / (2 * d) + 0.1 * np.eye(d)                         # (d, d)


# ----------------------------------------------------------------------------- FID


def test_fid_identical_statistics_is_zero():
    mu, sigma = np.arange(8.0), random_spd(8, 0)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-8)


def test_fid_equal_covariances_is_squared_mean_difference():
    sigma = random_spd(16, 1)
    mu1, mu2 = np.zeros(16), np.linspace(-1, 1, 16)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum(mu2 ** 2), rel=1e-7)


def test_fid_diagonal_covariances_closed_form():
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected)


def test_fid_singular_covariances_stay_finite():
    # Fewer samples than dimensions: rank-deficient covariances, as in small FID runs.
    rng = np.random.default_rng(2)
    mu1, s1 = feature_statistics(rng.standard_normal((5, 20)))
    mu2, s2 = feature_statistics(rng.standard_normal((5, 20)) + 1)
    value = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(value) and value > 0


def test_fid_large_imaginary_component_is_an_error():
    # sqrt(diag(-1, 1)) has an imaginary diagonal entry of 1: far above the 1e-3 rule.
    with pytest.raises(GankitError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))


@pytest.mark.parametrize("n", [200, 12])                               # full rank / singular
def test_fid_svd_method_agrees_with_sqrtm(n):
    rng = np.random.default_rng(n)
    mu1, s1 = feature_statistics(rng.standard_normal((n, 32)))
    mu2, s2 = feature_statistics(rng.standard_normal((n, 32)) * 1.2 + 0.1)
    reference = frechet_distance(mu1, s1, mu2, s2, method="sqrtm")
    assert frechet_distance(mu1, s1, mu2, s2, method="svd") == pytest.approx(reference,
                                                                              rel=1e-6)


def test_fid_svd_closed_forms():
    sigma, mu = random_spd(16, 1), np.linspace(-1, 1, 16)
    assert frechet_distance(mu, sigma, mu, sigma, method="svd") == pytest.approx(0, abs=1e-9)
    v1, v2 = np.array([1.0, 4.0]), np.array([9.0, 1.0])
    assert frechet_distance(np.zeros(2), np.diag(v1), np.zeros(2), np.diag(v2),
                            method="svd") == pytest.approx(4.0 + 1.0)


@pytest.mark.slow
def test_fid_methods_agree_at_2048_dims():
    rng = np.random.default_rng(0)
    mu1, s1 = feature_statistics(rng.standard_normal((3000, 2048)))
    mu2, s2 = feature_statistics(rng.standard_normal((3000, 2048)) * 1.1)
    assert frechet_distance(mu1, s1, mu2, s2, method="svd") == pytest.approx(
        frechet_distance(mu1, s1, mu2, s2), rel=1e-6)


def test_fid_svd_of_singular_identical_statistics_is_zero():
    # Rank 4 in 256 dimensions: the nuclear norm has no sqrt-of-rounding-noise bias.
    mu, sigma = feature_statistics(np.random.default_rng(3).standard_normal((5, 256)))
    assert frechet_distance(mu, sigma, mu, sigma, method="svd") == pytest.approx(0, abs=1e-10)


def test_fid_svd_rejects_non_covariances():
    with pytest.raises(GankitError, match="covariance"):
        frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2), method="svd")
    with pytest.raises(GankitError, match="covariance"):
        frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2),
                         method="svd")


def test_fid_unknown_method():
    with pytest.raises(GankitError, match="method"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="eig")


def test_fid_shape_mismatch_is_an_error():
    with pytest.raises(GankitError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_feature_statistics_are_float64_unbiased():
    x = np.random.default_rng(3).standard_normal((50, 4)).astype(np.float32)
    mu, sigma = feature_statistics(x)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False))


def test_fid_from_features_warns_below_2048_and_records_protocol():
    rng = np.random.default_rng(4)
    with pytest.warns(FIDWarning, match="2048"):
        res = fid_from_features(rng.standard_normal((100, 3)), rng.standard_normal((80, 3)),
                                protocol={"resize": "pytorch-fid", "weights_sha256": "abc"})
    assert res["protocol"] == {"resize": "pytorch-fid", "weights_sha256": "abc", "metric": "fid",
                               "fid_method": "sqrtm", "n_real": 100, "n_generated": 80}


def test_fid_no_warning_with_enough_samples():
    rng = np.random.default_rng(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FIDWarning)
        fid_from_features(rng.standard_normal((2048, 2)), rng.standard_normal((2048, 2)))


def test_stats_round_trip_and_pytorch_fid_readable(tmp_path):
    mu, sigma = np.linspace(0, 1, 6), random_spd(6, 6)
    path = save_stats(tmp_path / "ref.npz", mu, sigma, n=123, protocol={"resize": "clean"})
    with np.load(path, allow_pickle=False) as f:                       # what pytorch-fid reads
        np.testing.assert_array_equal(f["mu"], mu)
        np.testing.assert_array_equal(f["sigma"], sigma)
    mu2, sigma2, info = load_stats(path)
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)
    assert info == {"n": 123, "protocol": {"resize": "clean"}}


def test_load_stats_plain_pytorch_fid_file(tmp_path):
    np.savez(tmp_path / "plain.npz", mu=np.zeros(3), sigma=np.eye(3))
    _, _, info = load_stats(tmp_path / "plain.npz")
    assert info == {}


@pytest.mark.parametrize("content", [b"not a zip", None])
def test_load_stats_bad_files(tmp_path, content):
    path = tmp_path / "bad.npz"
    if content is None:
        np.savez(path, mean=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(GankitError):
        load_stats(path)
    with pytest.raises(GankitError):
        load_stats(tmp_path / "missing.npz")


# ----------------------------------------------------------------------------- Inception Score


def test_inception_score_of_uniform_one_hot_predictions_is_number_of_classes():
    n_classes = 10
    probs = np.eye(n_classes)[np.arange(1000) % n_classes]             # (1000, 10)
    res = inception_score(probs=probs, splits=10)
    assert res["is_mean"] == pytest.approx(n_classes)
    assert res["is_std"] == pytest.approx(0, abs=1e-12)
    assert res["protocol"]["splits"] == 10 and res["protocol"]["n_generated"] == 1000


def test_inception_score_of_constant_logits_is_one():
    res = inception_score(np.zeros((100, 1008)))
    assert res["is_mean"] == pytest.approx(1.0)


def test_inception_score_from_logits_matches_probabilities():
    logits = np.random.default_rng(7).standard_normal((200, 5)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert inception_score(logits)["is_mean"] == pytest.approx(
        inception_score(probs=probs)["is_mean"])


def test_inception_score_argument_errors():
    with pytest.raises(GankitError):
        inception_score()
    with pytest.raises(GankitError):
        inception_score(np.zeros((5, 3)), splits=10)


# ----------------------------------------------------------------------------- KID


def brute_force_mmd2(x, y):
    d, m = x.shape[1], x.shape[0]
    k = lambda a, b: (a @ b / d + 1) ** 3                               # noqa: E731
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_mmd2_matches_brute_force():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((12, 5)), rng.standard_normal((12, 5)) + 0.3
    assert mmd2_unbiased(x, y) == pytest.approx(brute_force_mmd2(x, y), rel=1e-10)


def test_kid_with_whole_sets_matches_brute_force():
    # subset_size >= n: each subset is a permutation of the whole set, so all values agree.
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((15, 4)), rng.standard_normal((15, 4)) * 1.5
    res = kernel_inception_distance(x, y, subsets=5, subset_size=1000)
    assert res["kid_mean"] == pytest.approx(brute_force_mmd2(x, y), rel=1e-10)
    assert res["kid_std"] == pytest.approx(0, abs=1e-12)
    assert res["protocol"]["subset_size"] == 15


def test_kid_identical_features_is_about_zero_and_separates_shifts():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((300, 32))
    same = kernel_inception_distance(x, x, subsets=10, subset_size=100)
    shifted = kernel_inception_distance(x, x + 1.0, subsets=10, subset_size=100)
    assert abs(same["kid_mean"]) < 0.02 * shifted["kid_mean"]


def test_kid_unbiased_for_same_distribution():
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((400, 8)), rng.standard_normal((400, 8))
    res = kernel_inception_distance(x, y, subsets=20, subset_size=200)
    assert abs(res["kid_mean"]) < 3 * res["kid_std"] + 1e-3


def test_kid_rejects_mismatched_dims():
    with pytest.raises(GankitError):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))


# ----------------------------------------------------------------------------- PR / DC


def test_precision_recall_identical_sets_is_one():
    x = np.random.default_rng(12).standard_normal((200, 16))
    res = prdc(x, x.copy())
    assert res["precision"] == 1.0 and res["recall"] == 1.0 and res["coverage"] == 1.0
    assert res["density"] == pytest.approx(1.0, abs=0.2)
    assert res["protocol"]["pr_k"] == 3 and res["protocol"]["n_real"] == 200


def test_precision_recall_disjoint_sets_is_zero():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((100, 8))
    res = prdc(x, x + 100.0)
    assert res == {**res, "precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def brute_force_manifold(centres, queries, k):
    d_cc = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    radii = np.sort(d_cc, axis=1)[:, k]                                # k-th neighbour, self at 0
    d_qc = np.linalg.norm(queries[:, None] - centres[None], axis=2)    # (Q, C)
    return d_qc <= radii[None], d_qc.min(axis=0) <= radii, radii


def test_prdc_matches_brute_force_with_small_chunks():
    rng = np.random.default_rng(14)
    x, y = rng.standard_normal((60, 3)), rng.standard_normal((50, 3)) * 1.3 + 0.2
    inside_real, _, radii = brute_force_manifold(x, y, 3)
    inside_fake, _, _ = brute_force_manifold(y, x, 3)
    pr = precision_recall(x, y, k=3, chunk=7)
    assert pr["precision"] == pytest.approx(inside_real.any(axis=1).mean())
    assert pr["recall"] == pytest.approx(inside_fake.any(axis=1).mean())
    np.testing.assert_allclose(knn_radii(__import__("torch").as_tensor(x), 3, chunk=7).numpy(),
                               radii, rtol=1e-10)
    inside5, covered5, _ = brute_force_manifold(x, y, 5)
    dc = density_coverage(x, y, k=5, chunk=7)
    assert dc["density"] == pytest.approx(inside5.sum() / (5 * len(y)))
    assert dc["coverage"] == pytest.approx(covered5.mean())


def test_knn_radii_needs_more_than_k_samples():
    with pytest.raises(GankitError):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)


# ----------------------------------------------------------------------------- memorization


def test_nearest_neighbours_finds_copied_training_samples():
    rng = np.random.default_rng(15)
    train, test = rng.random((40, 1, 8, 8)), rng.random((30, 1, 8, 8))
    copies = [3, 17, 39]
    generated = np.concatenate([train[copies], rng.random((2, 1, 8, 8))])
    res = nearest_neighbours(generated, train, test, k=2, chunk=2)
    assert res["train_idx"].shape == res["train_dist"].shape == (5, 2)
    np.testing.assert_array_equal(res["train_idx"][:3, 0], copies)
    np.testing.assert_allclose(res["train_dist"][:3, 0], 0, atol=1e-12)
    assert (res["ratio"][:3] == 0).all() and (res["test_dist"][:, 0] > 0).all()
    flat_g, flat_t = generated.reshape(5, -1), test.reshape(30, -1)
    brute = np.linalg.norm(flat_g[:, None] - flat_t[None], axis=2)
    np.testing.assert_array_equal(res["test_idx"][:, 0], brute.argmin(axis=1))
    np.testing.assert_allclose(res["test_dist"][:, 0], brute.min(axis=1), rtol=1e-12)
    assert res["protocol"]["n_train"] == 40 and res["protocol"]["n_test"] == 30


def test_neighbour_grid_layout():
    gen = np.zeros((2, 3, 4, 5), dtype=np.uint8)
    train = np.stack([np.full((3, 4, 5), v, np.uint8) for v in (10, 20, 30)])
    grid = neighbour_grid(gen, train, np.array([[2, 0], [1, 1]]), pad=1, pad_value=255)
    assert grid.shape == (2 * 5 + 1, 3 * 6 + 1, 3) and grid.dtype == np.uint8
    assert grid[1, 1, 0] == 0 and grid[1, 7, 0] == 30 and grid[1, 13, 0] == 10
    assert grid[6, 7, 0] == 20 and grid[0, 0, 0] == 255


def test_neighbour_grid_shape_mismatch():
    with pytest.raises(GankitError):
        neighbour_grid(np.zeros((1, 1, 4, 4)), np.zeros((2, 1, 5, 5)), np.array([[0]]))
