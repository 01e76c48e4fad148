"""Offline small-image metrics: closed forms for the maths, real data for the classifiers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gankit.data.base import make_generator
from gankit.data.idx import load_mnist
from gankit.errors import GankitError
from gankit.metrics import offline as om
from gankit.metrics.fid import frechet_distance
from gankit.registry import METRICS


# ------------------------------------------------------------------ pure functions
def test_histogram_kl_entropy_closed_forms():
    hist = om.class_histogram(np.array([0, 0, 1, 3]), 4)
    np.testing.assert_allclose(hist, [0.5, 0.25, 0, 0.25])
    assert om.entropy(np.full(10, 0.1)) == pytest.approx(math.log(10))
    assert om.entropy(hist) == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    assert om.kl_to_uniform(np.full(7, 1 / 7)) == pytest.approx(0, abs=1e-12)
    # KL(p || uniform over K) = log K - H(p)
    assert om.kl_to_uniform(hist) == pytest.approx(math.log(4) - om.entropy(hist))
    assert om.kl_divergence([0.5, 0.5], [0.25, 0.75]) == pytest.approx(
        0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert om.kl_divergence([0.5, 0.5], [1.0, 0.0]) == math.inf
    assert om.kl_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))


def test_conditional_accuracy():
    assert om.conditional_accuracy(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
    with pytest.raises(ValueError):
        om.conditional_accuracy(np.array([1, 2]), np.array([1]))


def test_class_agreement_undoes_a_permutation():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 5000)
    perm = rng.permutation(10)                       # code c means class perm[c]
    codes = np.argsort(perm)[labels]
    agreement, mapping = om.class_agreement(codes, labels, 10, 10)
    assert agreement == 1.0
    assert mapping == {c: int(perm[c]) for c in range(10)}
    noisy = labels.copy()
    flip = rng.random(5000) < 0.2
    noisy[flip] = rng.integers(0, 10, flip.sum())     # 20 % random: ~82 % still agree
    agreement, _ = om.class_agreement(codes, noisy, 10, 10)
    assert agreement == pytest.approx(0.8 + 0.2 / 10, abs=0.02)
    # The raw (unmatched) accuracy of a permuted code is near chance; matching is the point.
    assert om.conditional_accuracy(codes, labels) < 0.3


def test_class_agreement_more_codes_than_classes():
    codes = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([1, 1, 0, 0, 0, 1])
    agreement, mapping = om.class_agreement(codes, pred, 3, 2)
    assert agreement == pytest.approx(4 / 6)
    assert mapping == {0: 1, 1: 0}


def test_stacked_modes_and_coverage():
    digits = np.array([[1, 2, 3], [0, 0, 0], [9, 9, 9]])
    np.testing.assert_array_equal(om.stacked_mode_ids(digits), [123, 0, 999])
    every_mode = np.repeat(np.arange(1000), 3)
    assert om.mode_coverage(every_mode) == {"modes": 1000, "kl": pytest.approx(0, abs=1e-12)}
    one_mode = om.mode_coverage(np.zeros(50, np.int64))
    assert one_mode["modes"] == 1 and one_mode["kl"] == pytest.approx(math.log(1000))
    assert om.expected_modes_covered(1) == pytest.approx(1)
    assert om.expected_modes_covered(2500) == pytest.approx(1000 * (1 - 0.999 ** 2500))


def test_make_stacked_mnist_channels_match_modes():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 4, 4).clone()
    labels = torch.arange(10)                 # image i is filled with value i and labelled i
    stacked, modes = om.make_stacked_mnist(images, labels, 200, seed=3)
    assert stacked.shape == (200, 3, 4, 4) and stacked.dtype == torch.uint8
    digits = stacked[:, :, 0, 0].long()
    torch.testing.assert_close(modes, digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2])
    again, _ = om.make_stacked_mnist(images, labels, 200, seed=3)
    assert torch.equal(stacked, again)


def test_classifier_frechet_distance_is_the_gaussian_formula():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4000, 8))
    b = rng.normal(size=(4000, 8)) * 2 + 1
    expected = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert om.classifier_frechet_distance(a, b) == pytest.approx(expected)
    # Closed form for N(0, I) vs N(1, 4I) in 8-d: 8 * 1 + 8 * (1 + 4 - 2 * 2) = 16.
    assert expected == pytest.approx(16, rel=0.1)
    assert om.classifier_frechet_distance(a, a) == pytest.approx(0, abs=1e-6)


def test_categorical_code_forms():
    assert om.categorical_code({"z": torch.zeros(3, 2)}) is None
    np.testing.assert_array_equal(om.categorical_code({"c": torch.tensor([2, 0, 1])}), [2, 0, 1])
    onehot = torch.eye(4)[[3, 1]]
    np.testing.assert_array_equal(om.categorical_code({"c_cat": onehot}), [3, 1])
    assert om.categorical_code({"c": torch.randn(2, 4)}) is None        # continuous codes


def test_registered():
    for name in ("mnist", "conditional-accuracy", "class-agreement", "stacked-mnist"):
        assert hasattr(METRICS.get(name), "evaluate")


# ------------------------------------------------------------------ with the classifiers
@pytest.fixture(scope="module")
def mnist_test(data_root):
    return load_mnist("test", root=data_root, name="mnist", allow_download=False)


@pytest.fixture(scope="module")
def mnist_read(mnist_test):
    """The first 4000 test images in [-1, 1], with the classifier's features and predictions."""
    x = mnist_test.images[:4000].float() / 127.5 - 1
    feats, pred = om.predict("mnist", x)
    return x, feats, torch.from_numpy(pred)


def test_real_stacked_mnist_covers_all_modes(mnist_test, mnist_read):
    images, labels = mnist_test.images[:4000], mnist_test.labels[:4000]
    _, _, pred = mnist_read
    n = 10_000
    # Same seed, same draws: the modes as labelled, and as the classifier reads each channel.
    stacked, true_modes = om.make_stacked_mnist(images, labels, n, seed=0)
    _, read_modes = om.make_stacked_mnist(images, pred, n, seed=0)
    truth, got = om.mode_coverage(true_modes.numpy()), om.mode_coverage(read_modes.numpy())
    # A perfect generator with n samples covers ~1000 modes, KL ~ (K - 1) / 2n ~ 0.05 from
    # finite sampling alone; reading the digits with the classifier must not change that.
    assert truth["modes"] >= 998 and got["modes"] >= 995
    assert got["kl"] < 0.1 and got["kl"] == pytest.approx(truth["kl"], abs=0.01)
    # The full pipeline (stacked images -> 3 classifications -> modes) on a slice of them.
    m = 600
    res = om.stacked_metrics(stacked[:m].float() / 127.5 - 1)
    assert abs(res["stacked_modes"] - om.mode_coverage(read_modes[:m].numpy())["modes"]) <= 2
    assert res["stacked_modes_ideal"] == pytest.approx(om.expected_modes_covered(m))


class _RealImageGenerator:
    """A stand-in objective whose "generator" returns real test images of the asked label."""

    def __init__(self, images, labels, conditional=True, code_perm=None):
        self.images, self.labels = images, labels
        self.by_class = [torch.nonzero(labels == k).flatten() for k in range(10)]
        self.classes = torch.tensor([k for k in range(10) if len(self.by_class[k])])
        self.conditional, self.code_perm = conditional, code_perm

    def sample_inputs(self, n, rng):
        y = self.classes[torch.randint(0, len(self.classes), (n,), generator=rng)]
        pick = torch.randint(0, 800, (n,), generator=rng)
        inputs = {"z": torch.stack([y, pick], 1)}
        if self.conditional:
            inputs["y"] = y
        if self.code_perm is not None:
            inputs["c"] = self.code_perm[y]
        return inputs

    def generate(self, inputs):
        idx = torch.stack([self.by_class[int(k)][int(j)] for k, j in inputs["z"]])
        return self.images[idx].float() / 127.5 - 1


def _fake_trainer(images, labels, data_name="mnist", **kw):
    obj = _RealImageGenerator(images, labels, **kw)

    def sample(n, seed, batch=1024):           # chunked like Trainer.sample
        gen = make_generator(seed)
        return torch.cat([obj.generate(obj.sample_inputs(min(batch, n - i), gen))
                          for i in range(0, n, batch)])

    class Data:  # weak-referenceable, like the real data sources
        def sample(self, n, seed):
            idx = torch.randperm(len(images), generator=make_generator(seed))[:n]
            return images[idx].float() / 127.5 - 1

    return SimpleNamespace(cfg=SimpleNamespace(data=SimpleNamespace(name=data_name)),
                           data=Data(), objective=obj, device=torch.device("cpu"),
                           sample=sample, generate=obj.generate)


def test_wrappers_on_a_perfect_and_a_broken_generator(mnist_test):
    imgs, labels = mnist_test.images, mnist_test.labels
    perm = torch.randperm(10, generator=make_generator(5))
    good = _fake_trainer(imgs, labels, code_perm=perm)
    res = METRICS.get("mnist").evaluate(good, 600)
    assert set(res) == {"cfd_mnist", "class_kl_mnist", "class_entropy_mnist"}
    assert res["class_kl_mnist"] < 0.03
    assert res["class_entropy_mnist"] == pytest.approx(math.log(10), abs=0.03)
    acc = METRICS.get("conditional-accuracy").evaluate(good, 600)["conditional_accuracy"]
    assert acc > 0.98
    agree = METRICS.get("class-agreement").evaluate(good, 600)["class_agreement"]
    assert agree > 0.98
    # Inputs replayed chunk by chunk line up with the samples made chunk by chunk.
    x, inputs = om.generate_with_inputs(good, 600, seed=1, batch=256)
    _, pred = om.predict("mnist", x)
    assert om.conditional_accuracy(pred, inputs["y"].numpy()) > 0.98

    # Only ones: collapsed to a single class.
    ones = imgs[labels == 1]
    collapsed = _fake_trainer(ones, torch.zeros(len(ones), dtype=torch.long), conditional=False)
    collapsed.data = good.data
    bad = METRICS.get("mnist").evaluate(collapsed, 600)
    assert bad["cfd_mnist"] > 10 * max(res["cfd_mnist"], 1e-3)
    assert bad["class_entropy_mnist"] < 0.1
    assert bad["class_kl_mnist"] > 2.0                     # ~ log(1 / 0.11)
    # A run the metric does not fit is refused (config validation refuses it earlier).
    for name, why in [("conditional-accuracy", "class-conditional sampling in the generator"),
                      ("class-agreement", "categorical latent code"),
                      ("stacked-mnist", "RGB")]:
        with pytest.raises(GankitError, match=f"{name}' does not apply.*{why}"):
            METRICS.get(name).evaluate(collapsed, 100)

    other = _fake_trainer(imgs, labels, data_name="ring")
    with pytest.raises(GankitError, match="needs MNIST or Fashion-MNIST data; this run "
                                          "trains on ring"):
        METRICS.get("mnist").evaluate(other, 100)


def test_real_cfd_is_small_between_disjoint_real_sets(mnist_read):
    """Two disjoint halves of 4000 test images: CFD is finite-sample noise only."""
    _, feats, _ = mnist_read
    a, b = feats[:2000], feats[2000:]
    real_real = om.classifier_frechet_distance(a, b)
    noise = torch.rand(1000, 1, 28, 28, generator=make_generator(0)) * 2 - 1
    noise_feats, _ = om.predict("mnist", noise)
    assert real_real < 0.05 * om.classifier_frechet_distance(a, noise_feats)
