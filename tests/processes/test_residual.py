"""Residual-plus-noise processes (ResShift, RDDM) as interpolants: their marginals against
the papers' Markov chains, and exact transport back to the clean law."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.interpolants import TwoSidedMixture
from interpolant.processes import residual

F64 = torch.float64
P0 = ip.oracle.GaussianMixture(torch.tensor([[0.5, -0.2]]),
                               torch.tensor([[[0.3, 0.1], [0.1, 0.2]]]))
P1 = ip.oracle.GaussianMixture(torch.tensor([[-0.4, 0.6]]),
                               torch.tensor([[[0.1, 0.0], [0.0, 0.4]]]))


def _moments(x):
    return x.mean(0), torch.cov(x.T)


@pytest.mark.parametrize("name", ["resshift", "rddm"])
def test_marginals_match_the_papers_markov_chain(name):
    """Run the papers' transitions x_k = x_{k-1} + (eta_k - eta_{k-1}) (x_1 - x_0) +
    sqrt(kappa_k^2 - kappa_{k-1}^2) eps_k (ResShift eq. 1, RDDM eq. 3 with kappa^2 additive)
    step by step from x_0: the states' mean and covariance agree with the interpolant's exact
    marginal (the two-sided oracle) at every 5th step, within Monte Carlo error."""
    path = residual.resshift(kappa=1.5) if name == "resshift" else residual.rddm(beta=0.8)
    oracle = TwoSidedMixture(P0, P1, path)
    g = torch.Generator().manual_seed(0)
    n, steps = 20000, 15
    x0, x1 = P0.sample(n, g), P1.sample(n, g)
    x, prev = x0.clone(), 0.0
    for k in range(1, steps + 1):
        t = k / steps
        eta, kap2 = path.b(t), path.gamma(t) ** 2
        x = x + (eta - path.b(prev)) * (x1 - x0) + math.sqrt(kap2 - path.gamma(prev) ** 2) * \
            torch.randn(x.shape, generator=g, dtype=F64)
        prev = t
        if k % 5 == 0:
            exact = oracle.marginal(t)
            mean, cov = _moments(x)
            sd = exact.covs[0].diagonal().sqrt()
            assert ((mean - exact.means[0]).abs() / sd).max() < 4 / math.sqrt(n)
            assert ((cov - exact.covs[0]).abs()).max() < 6 * sd.max() ** 2 * math.sqrt(2 / n)


def test_residual_ends_and_noise():
    path = residual.resshift(kappa=2.0)
    assert path.b(0.0) == 0.0 and math.isclose(path.b(1.0), 1.0) and path.gamma(0.0) == 0.0
    assert math.isclose(path.gamma(1.0), 2.0)
    for t in (0.1, 0.5, 0.9):  # d_eta against a central difference
        h = 1e-6
        assert math.isclose(path.d_b(t), (path.b(t + h) - path.b(t - h)) / (2 * h), rel_tol=1e-6)
        assert math.isclose(path.d_gamma(t), (path.gamma(t + h) - path.gamma(t - h)) / (2 * h),
                            rel_tol=1e-6)


def test_exact_transport_from_the_noisy_input_back_to_the_clean_law():
    """Euler on the exact velocity of the RDDM interpolant, from its t = 1 law (input plus
    noise) to t = 0, converges to the exact flow at order 1 (the noise sqrt(t) near the data
    end limits Heun to order 1 as well)."""
    oracle = TwoSidedMixture(P0, P1, residual.rddm(beta=0.8))
    x1 = oracle.marginal(1.0).sample(50, torch.Generator().manual_seed(1))
    ref = oracle.flow(x1, 1.0, 0.0)
    steps = (40, 80, 160)
    errs = [(ip.sample(oracle.model(), x1, solver="euler", steps=s, grid="uniform") - ref)
            .norm(dim=1).max().item() for s in steps]
    slope = math.log(errs[0] / errs[-1]) / math.log(steps[-1] / steps[0])
    assert 0.9 < slope < 1.2 and errs[-1] < 6e-3


def test_bad_schedules_are_refused():
    with pytest.raises(InterpolantError, match="noise scale"):
        residual.rddm(beta=-1.0)
    with pytest.raises(InterpolantError, match="eta"):
        residual.resshift(eta_min=2.0)


@pytest.mark.parametrize("name", ["resshift", "rddm"])
def test_the_ancestral_sampler_keeps_the_exact_marginals_with_an_exact_restoration(name):
    """x_0 known (a point mass per sample, the restoration returns it): the posterior steps
    keep x_t ~ N(x_0 + eta_t (x_1 - x_0), kappa_t^2 I) at every t, and end at x_0."""
    path = residual.resshift(kappa=1.5) if name == "resshift" else residual.rddm(beta=0.8)
    n = 20000
    x0 = torch.tensor([0.5, -1.0], dtype=F64).expand(n, 2)
    x1 = torch.tensor([-0.3, 0.7], dtype=F64).expand(n, 2)
    g = torch.Generator().manual_seed(2)
    mid = residual.sample(lambda x, t: x0, path, x1, steps=10, t_end=0.4, generator=g)
    mean, cov = _moments(mid)
    sd = path.gamma(0.4)
    torch.testing.assert_close(mean, x0[0] + path.b(0.4) * (x1[0] - x0[0]), rtol=0,
                               atol=4 * sd / math.sqrt(n))
    torch.testing.assert_close(cov, sd**2 * torch.eye(2, dtype=F64), rtol=0,
                               atol=6 * sd**2 * math.sqrt(2 / n))
    end = residual.sample(lambda x, t: x0, path, x1, steps=10, generator=g)
    torch.testing.assert_close(end, x0, rtol=0, atol=1e-12)
