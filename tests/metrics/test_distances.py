"""Two-sample distances against closed forms, exact identities and independent references."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.spatial.distance import pdist

import interpolant as ip
from interpolant.metrics import (
    energy_distance,
    median_bandwidth,
    mmd,
    sliced_wasserstein,
    wasserstein,
)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("p", [1, 2])
def test_wasserstein_identical_and_translated_sets_exact(p):
    # W_p(mu, mu shifted by s) = |s| exactly for p = 1, 2: any coupling has
    # E|X - Y - s|^2 = E|X - Y|^2 + |s|^2 (equal means) and E|X - Y + s| >= |s| (Jensen),
    # and the identity coupling attains |s|.
    x = _randn(150, 3) * torch.tensor([1.0, 0.3, 2.0], dtype=torch.float64)
    s = torch.tensor([0.7, -1.1, 0.4], dtype=torch.float64)
    assert wasserstein(x, x, p=p) < 1e-12
    assert wasserstein(x, x + s, p=p) == pytest.approx(float(s.norm()), rel=1e-9)


def test_wasserstein_between_shifted_gaussians():
    # N(m1, S) and N(m2, S) are at W2 = |m1 - m2|. With samples, the plug-in value is
    # sandwiched: |mean_x - mean_y| <= W2(x, y) <= |m1 - m2| + W2(x, y - (m2 - m1)).
    cov_root = torch.tensor([[0.5, 0.0], [0.3, 0.2]], dtype=torch.float64)
    m1, m2 = torch.tensor([0.0, 0.0]).double(), torch.tensor([2.0, -1.0]).double()
    x = _randn(400, 2, seed=1) @ cov_root.T + m1
    y = _randn(400, 2, seed=2) @ cov_root.T + m2
    w = wasserstein(x, y)
    floor = wasserstein(x, y - (m2 - m1))
    assert float((x.mean(0) - y.mean(0)).norm()) <= w <= float((m2 - m1).norm()) + floor
    assert w == pytest.approx(math.sqrt(5.0), abs=0.03)  # floor here is about 0.07 in W2


def test_wasserstein_unequal_sizes_matches_scipy_1d_and_assignment_fallback(monkeypatch):
    x, y = _randn(7, 1, seed=3), 0.5 + 2 * _randn(5, 1, seed=4)
    ref = scipy.stats.wasserstein_distance(x[:, 0].numpy(), y[:, 0].numpy())
    assert wasserstein(x, y, p=1) == pytest.approx(ref, rel=1e-9)
    # Without POT, equal sizes use the assignment problem (same optimum), others raise.
    a, b = _randn(40, 2, seed=5), _randn(40, 2, seed=6) + 1.0
    with_pot = wasserstein(a, b)
    monkeypatch.setitem(sys.modules, "ot", None)
    assert wasserstein(a, b) == pytest.approx(with_pot, rel=1e-9)
    with pytest.raises(ip.InterpolantError, match="pot"):
        wasserstein(a, b[:30])


def test_sliced_wasserstein_exact_in_one_dimension():
    # In 1-D every projection is +-1, so SW_p = W_p; unequal sizes exercise the quantile merge.
    x, y = _randn(11, 1, seed=7), 1.0 + _randn(6, 1, seed=8)
    ref = scipy.stats.wasserstein_distance(x[:, 0].numpy(), y[:, 0].numpy())
    assert sliced_wasserstein(x, y, n_projections=3, p=1) == pytest.approx(ref, rel=1e-9)
    assert sliced_wasserstein(x, y, n_projections=3, p=2) == pytest.approx(
        wasserstein(x, y, p=2), rel=1e-9)


@pytest.mark.parametrize(("dim", "p", "factor", "rel"), [
    (2, 2, 1 / math.sqrt(2), 0.03),  # SW2 = |s| (E<theta,e>^2)^(1/2) = |s| / sqrt(D)
    (3, 1, 0.5, 0.045),              # SW1 = |s| E|<theta,e>| = |s| / 2 in 3-D
])
def test_sliced_wasserstein_of_a_translation(dim, p, factor, rel):
    # Y = X + s projects to a 1-D translation by <theta, s> for every theta, so
    # SW_p^p = |s|^p E|<theta, e>|^p exactly; only the Monte Carlo mean over theta is random.
    # Relative std of the estimate with L = 4096 directions: 0.0055 (D=2, p=2) and 0.009
    # (D=3, p=1) from Var<theta,e>^2 = 3/(D(D+2)) - 1/D^2 and Var|u_1| = 1/3 - 1/4: 5 sigma.
    x = _randn(300, dim, seed=9)
    s = torch.zeros(dim, dtype=torch.float64)
    s[0], s[-1] = 1.2, -0.5
    sw = sliced_wasserstein(x, x + s, n_projections=4096, p=p, seed=1)
    assert sw == pytest.approx(float(s.norm()) * factor, rel=rel)


def _rbf_mean(mu: float, var: float, h: float, dim: int) -> float:
    """E exp(-|Z|^2 / (2 h^2)) for Z ~ N(mu e_1, var I) in `dim` dimensions."""
    return (h * h / (h * h + var)) ** (dim / 2) * math.exp(-mu * mu / (2 * (h * h + var)))


def test_mmd_unbiased_matches_closed_form_for_gaussians():
    # P = N(0, I), Q = N(m, I) in 2-D, RBF h = 1: E k(X,X') uses X - X' ~ N(0, 2I), etc.
    dim, h, m = 2, 1.0, 1.0
    exact = 2 * _rbf_mean(0.0, 2.0, h, dim) - 2 * _rbf_mean(m, 2.0, h, dim)
    g = torch.Generator().manual_seed(10)
    shift = torch.tensor([m, 0.0], dtype=torch.float64)
    u, v, same = [], [], []
    for _ in range(400):
        x = torch.randn(8, dim, generator=g, dtype=torch.float64)
        y = torch.randn(8, dim, generator=g, dtype=torch.float64)
        u.append(mmd(x, y + shift, bandwidth=h))
        v.append(mmd(x, y + shift, bandwidth=h, unbiased=False))
        same.append(mmd(x, y, bandwidth=h))
    u, v, same = np.array(u), np.array(v), np.array(same)
    se = u.std() / math.sqrt(len(u))
    assert abs(u.mean() - exact) < 4 * se
    assert abs(v.mean() - exact) > 10 * se  # the V-statistic is biased: the test can tell
    assert abs(same.mean()) < 4 * same.std() / math.sqrt(len(same))
    assert u.mean() > 0.1


def test_median_bandwidth_and_poly_kernel():
    x, y = _randn(30, 3, seed=11), _randn(20, 3, seed=12)
    pooled = np.concatenate([x.numpy(), y.numpy()])
    assert median_bandwidth(x, y) == pytest.approx(np.median(pdist(pooled)), rel=1e-12)
    # Cubic kernel (a.b/D + 1)^3 in 1-D has the feature map (1, sqrt3 a, sqrt3 a^2, a^3):
    # the V-statistic is the squared distance of the mean feature vectors.
    a, b = _randn(25, 1, seed=13), 0.3 + _randn(15, 1, seed=14)
    feat = lambda z: torch.cat([z**0, 3**0.5 * z, 3**0.5 * z**2, z**3], 1)  # noqa: E731
    ref = float((feat(a).mean(0) - feat(b).mean(0)).square().sum())
    assert mmd(a, b, kernel="poly", unbiased=False) == pytest.approx(ref, rel=1e-10)


def _abs_mean(mu: float, sd: float) -> float:
    """E|N(mu, sd^2)|."""
    return sd * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * sd * sd)) + mu * (
        1 - 2 * scipy.stats.norm.cdf(-mu / sd))


def test_energy_distance_identities_and_unbiasedness():
    x, y = _randn(50, 1, seed=15), 0.4 + 1.5 * _randn(40, 1, seed=16)
    assert energy_distance(x, x) == 0.0
    ref = scipy.stats.energy_distance(x[:, 0].numpy(), y[:, 0].numpy())
    assert math.sqrt(energy_distance(x, y)) == pytest.approx(ref, rel=1e-9)
    # N(0,1) vs N(1,1): 2 E|N(1,2)| - 2 E|N(0,2)|; the U-statistic is unbiased at n = 6.
    exact = 2 * _abs_mean(1.0, math.sqrt(2)) - 2 * _abs_mean(0.0, math.sqrt(2))
    g = torch.Generator().manual_seed(17)
    pairs = [(torch.randn(6, 1, generator=g, dtype=torch.float64),
              1.0 + torch.randn(6, 1, generator=g, dtype=torch.float64)) for _ in range(400)]
    u = np.array([energy_distance(a, b, unbiased=True) for a, b in pairs])
    v = np.array([energy_distance(a, b) for a, b in pairs])
    se = u.std() / math.sqrt(len(u))
    assert abs(u.mean() - exact) < 4 * se
    assert abs(v.mean() - exact) > 4 * se  # the V-statistic is biased: the test can tell


@pytest.mark.parametrize("fn", [wasserstein, sliced_wasserstein, mmd, energy_distance])
def test_distances_reject_bad_input(fn):
    x = _randn(10, 2)
    with pytest.raises(ip.InterpolantError, match="same dimension"):
        fn(x, _randn(10, 3))
    with pytest.raises(ip.InterpolantError, match="NaN"):
        fn(x, torch.full((10, 2), float("nan")))
    with pytest.raises(ip.InterpolantError, match="reshape"):
        fn(torch.zeros(4, 1, 2, 2), torch.zeros(4, 1, 2, 2))
    if fn in (mmd, energy_distance):
        with pytest.raises(ip.InterpolantError, match="at least 2"):
            fn(x[:1], x)
