"""Feature metrics (Frechet, KID, precision/recall) and the digits feature network."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from safetensors import safe_open

import interpolant as ip
import interpolant.metrics.digits_classifier as dc
from interpolant.data import digits
from interpolant.metrics import (
    class_balance,
    class_histogram,
    digits_fd,
    digits_features,
    frechet_distance,
    gaussian_frechet,
    kid,
    load_digits_classifier,
    nearest_neighbour_distance,
    precision_recall,
    train_digits_classifier,
)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.fixture(scope="module")
def halves():
    """Two disjoint random halves (898 images each) of all 1797 digits."""
    images, _ = digits("all")
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    return images[perm[:898]], images[perm[898:1796]]


def test_gaussian_frechet_closed_forms():
    # Diagonal covariances commute: FD = |m1 - m2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    g = torch.Generator().manual_seed(0)
    a, b = (torch.rand(5, generator=g, dtype=torch.float64) + 0.1 for _ in range(2))
    m1, m2 = _randn(5, seed=1), _randn(5, seed=2)
    ref = float((m1 - m2).square().sum() + (a.sqrt() - b.sqrt()).square().sum())
    assert gaussian_frechet(m1, torch.diag(a), m2, torch.diag(b)) == pytest.approx(ref, rel=1e-12)
    # Full covariances: against scipy's matrix square root of the product.
    c1, c2 = _randn(6, 6, seed=3), _randn(6, 6, seed=4)
    s1, s2 = c1 @ c1.T + 0.1 * torch.eye(6), c2 @ c2.T + 0.1 * torch.eye(6)
    tr_sqrt = np.trace(scipy.linalg.sqrtm(s1.numpy() @ s2.numpy())).real
    ref = float(np.trace(s1.numpy() + s2.numpy()) - 2 * tr_sqrt)
    assert gaussian_frechet(m1[:1].expand(6), s1, m1[:1].expand(6), s2) == pytest.approx(
        ref, rel=1e-9)


def test_frechet_distance_of_identical_and_translated_features():
    f = _randn(300, 8, seed=5) @ _randn(8, 8, seed=6)
    c = torch.linspace(-1, 1, 8, dtype=torch.float64)
    assert frechet_distance(f, f) < 1e-9
    # A translation leaves the covariance unchanged: FD = |c|^2 exactly.
    assert frechet_distance(f, f + c) == pytest.approx(float(c.square().sum()), rel=1e-9)
    with pytest.raises(ip.InterpolantError, match="at least 2"):
        frechet_distance(f[:1], f)


def test_kid_is_unbiased_for_the_cubic_kernel():
    # In 1-D, (ab + 1)^3 has the feature map (1, sqrt3 a, sqrt3 a^2, a^3), so for N(0,1) vs
    # N(mu,1): MMD^2 = 3 mu^2 + 3 (mu^2)^2 + (mu^3 + 3 mu)^2 (raw moments mu, mu^2+1, mu^3+3mu).
    mu = 0.5
    exact = 3 * mu**2 + 3 * mu**4 + (mu**3 + 3 * mu) ** 2
    g = torch.Generator().manual_seed(7)
    diff, same = [], []
    for _ in range(300):
        x, y, z = (torch.randn(30, 1, generator=g, dtype=torch.float64) for _ in range(3))
        diff.append(kid(x, y + mu, n_subsets=1, subset_size=30)[0])
        same.append(kid(x, z, n_subsets=1, subset_size=30)[0])
    diff, same = np.array(diff), np.array(same)
    assert abs(diff.mean() - exact) < 4 * diff.std() / math.sqrt(len(diff))
    assert abs(same.mean()) < 4 * same.std() / math.sqrt(len(same))


def test_precision_recall_hand_example_and_limits():
    # k = 1: every real point of {0..4} has radius 1; fake points have radius 9.5.
    real = torch.arange(5, dtype=torch.float64)[:, None]
    fake = torch.tensor([[0.5], [10.0]], dtype=torch.float64)
    assert precision_recall(real, fake, k=1) == (0.5, 1.0)
    f = _randn(100, 4, seed=8)
    assert precision_recall(f, f) == (1.0, 1.0)
    assert precision_recall(f, f + 100.0) == (0.0, 0.0)
    with pytest.raises(ip.InterpolantError, match="more than k"):
        precision_recall(f[:3], f, k=3)


def test_class_balance_hand_example():
    stats = class_balance(torch.tensor([2, 2, 0, 0]))
    assert stats["entropy"] == pytest.approx(math.log(2))
    assert stats["normalized_entropy"] == pytest.approx(0.5)
    assert stats["covered"] == 2
    assert stats["chi2"] == pytest.approx(4.0)  # expected 1 per class: (1 + 1 + 1 + 1) / 1


def test_shipped_classifier_accuracy_and_class_histogram():
    images, labels = digits("test")
    net = load_digits_classifier()
    wrong = int((net(images).argmax(1) != labels).sum())
    acc = 1 - wrong / len(labels)
    assert acc >= 0.95
    hist = class_histogram(images)
    truth = torch.bincount(labels, minlength=10)
    assert int(hist.sum()) == len(labels)
    assert int((hist - truth).abs().sum()) <= 2 * wrong  # each error moves one count


def test_training_is_deterministic_and_reproduces_the_shipped_weights():
    a, b = train_digits_classifier(steps=20), train_digits_classifier(steps=20)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    with safe_open(str(dc.SHIPPED_WEIGHTS), "pt") as f:
        shipped_acc = float(f.metadata()["test_accuracy"])
    images, labels = digits("test")
    net = train_digits_classifier()
    pred = net(images).argmax(1)
    assert float((pred == labels).double().mean()) == pytest.approx(shipped_acc, abs=2 / 297)
    agree = (pred == load_digits_classifier()(images).argmax(1)).double().mean()
    assert agree >= 0.98


def _blur(images: torch.Tensor, s: float) -> torch.Tensor:
    r = torch.arange(-3, 4, dtype=torch.float32)
    k = torch.exp(-r**2 / (2 * s * s))
    k = k / k.sum()
    out = F.conv2d(F.pad(images, (3, 3, 0, 0), mode="replicate"), k.view(1, 1, 1, 7))
    return F.conv2d(F.pad(out, (0, 0, 3, 3), mode="replicate"), k.view(1, 1, 7, 1))


def test_digits_fd_grows_with_noise_and_blur(halves):
    a, b = halves
    z = torch.randn(b.shape, generator=torch.Generator().manual_seed(1))
    # Against the clean images themselves (no sampling floor): strictly increasing.
    noise = [digits_fd(b, b + s * z) for s in (0.0, 0.1, 0.2, 0.4, 0.8)]
    blur = [0.0] + [digits_fd(b, _blur(b, s)) for s in (0.5, 1.0, 1.5)]
    assert noise[0] < 1e-6 and all(u < v for u, v in zip(noise, noise[1:]))
    assert all(u < v for u, v in zip(blur, blur[1:]))
    # Against the other half: the floor (two samples of real digits, 2.4) is far below the
    # distance to strongly degraded images.
    floor = digits_fd(a, b)
    assert 2 * floor < digits_fd(a, b + 0.4 * z) < digits_fd(a, b + 0.8 * z)
    assert 5 * floor < digits_fd(a, _blur(b, 0.5)) < digits_fd(a, _blur(b, 1.0))


def test_digits_kid_and_precision_recall_see_noise(halves):
    a, b = halves
    fa, fb = digits_features(a), digits_features(b)
    fn = digits_features(b + 0.8 * torch.randn(b.shape, generator=torch.Generator().manual_seed(2)))
    k_real, k_noisy = kid(fa, fb, n_subsets=10, subset_size=400), kid(fa, fn, n_subsets=10,
                                                                      subset_size=400)
    assert k_noisy[0] > k_real[0] + 3 * k_noisy[1]
    p_real, r_real = precision_recall(fa, fb)
    p_noisy, _ = precision_recall(fa, fn)
    assert p_real > 0.85 and r_real > 0.85 and p_noisy < p_real - 0.2


def test_nearest_neighbour_distance_detects_copies():
    train, _ = digits("train")
    flat = train.flatten(1).double()
    assert torch.pdist(flat[:200]).min() > 1e-2  # no near-duplicates among these
    copies = nearest_neighbour_distance(train[:50], train)
    assert copies["min"] == 0.0 and copies["mean"] == 0.0 and copies["frac_copies"] == 1.0
    e = torch.zeros(1, 1, 8, 8)
    e[..., 3, 4] = 1e-3
    # A shift of 1e-3 keeps the nearest training image (others are >= 1e-2 away).
    near = nearest_neighbour_distance(train[:50] + e, train[:200])
    assert near["mean"] == pytest.approx(1e-3, rel=1e-4) and near["frac_copies"] == 0.0
    test_images, _ = digits("test")
    with_ref = nearest_neighbour_distance(test_images[:100], train, reference=test_images[100:])
    assert 0.8 < with_ref["ratio"] < 1.25  # held-out vs held-out: no memorisation


def test_digits_metrics_reject_bad_input():
    with pytest.raises(ip.InterpolantError, match="8x8"):
        digits_features(torch.zeros(4, 3, 8, 8))
    with pytest.raises(ip.InterpolantError, match="NaN"):
        digits_features(torch.full((4, 1, 8, 8), float("nan")))
    with pytest.raises(ip.InterpolantError, match="same shape"):
        nearest_neighbour_distance(torch.zeros(2, 5), torch.zeros(3, 4))


def test_missing_shipped_weights_are_trained_once_and_cached(monkeypatch, tmp_path):
    # A short training stands in for the real one; the mechanism is what is tested.
    short = train_digits_classifier(steps=5)
    calls = []
    monkeypatch.setenv("INTERPOLANT_CACHE", str(tmp_path))
    monkeypatch.setattr(dc, "SHIPPED_WEIGHTS", tmp_path / "absent.safetensors")
    monkeypatch.setattr(dc, "train_digits_classifier", lambda: calls.append(1) or short)
    load_digits_classifier.cache_clear()
    try:
        first = load_digits_classifier()
        assert calls == [1] and len(list(tmp_path.glob("digits_classifier-v*.safetensors"))) == 1
        load_digits_classifier.cache_clear()
        second = load_digits_classifier()  # read back from the cache, not retrained
        assert calls == [1]
        for net in (first, second):
            assert all(torch.equal(net.state_dict()[k], short.state_dict()[k])
                       for k in short.state_dict())
    finally:
        load_digits_classifier.cache_clear()
