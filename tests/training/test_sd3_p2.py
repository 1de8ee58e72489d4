"""SD3's time densities and shift, P2 weighting: closed forms, and the oracle stays stationary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import interpolant as ip
from interpolant import grids
from interpolant.errors import InterpolantError
from interpolant.training import Objective, densities, weights

N = 20_000
LIN = ip.paths.Linear()


def _ks(sample, cdf):
    return stats.kstest(sample.numpy(), cdf).pvalue


def _mode_cdf(s):
    """P(T <= t) = 1 - f^{-1}(t) for SD3's decreasing f(u; s), inverted by bisection."""

    def cdf(t):
        t = np.asarray(t, dtype=np.float64)
        lo, hi = np.zeros_like(t), np.ones_like(t)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            f = 1 - mid - s * (np.cos(np.pi * mid / 2) ** 2 - 1 + mid)
            lo, hi = np.where(f > t, mid, lo), np.where(f > t, hi, mid)
        return 1 - 0.5 * (lo + hi)

    return cdf


def test_sd3_densities_match_their_closed_forms():
    g = torch.Generator().manual_seed(0)
    # CosMap: SD3's density 2 / (pi - 2 pi t + 2 pi t^2) integrates to (2/pi) atan(2t - 1) + 1/2
    t = densities.get("cosmap")(N, g, LIN)
    assert _ks(t, lambda u: 2 / np.pi * np.arctan(2 * u - 1) + 0.5) > 1e-3
    assert _ks(t, stats.uniform().cdf) < 1e-6  # the test has power
    for name, s in (("mode", 1.29), ("mode-0.5", 0.5), ("mode--0.8", -0.8)):
        t = densities.get(name)(N, g, LIN)
        assert _ks(t, _mode_cdf(s)) > 1e-3, name
        assert _ks(t, _mode_cdf(s - 0.3)) < 1e-6, name
    assert _ks(densities.get("mode-0")(N, g, LIN), stats.uniform().cdf) > 1e-3  # s = 0: uniform


def test_the_time_shift_moves_log_snr_by_log_k_and_shifts_any_density():
    t = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    for k in (0.5, 3.0):
        torch.testing.assert_close(LIN.lam(grids.shift(t, k)), LIN.lam(t) - math.log(k))
    assert grids.resolution_shift(1024**2, 256**2) == 4.0
    g = torch.Generator().manual_seed(1)
    # logit(k t / (1 + (k - 1) t)) = logit(t) + log k: a shifted logit-normal is logit-normal
    t = densities.get("logit-normal:shift=3")(N, g, LIN)
    norm = stats.norm

    def logit_cdf(m):
        return lambda u: norm.cdf(np.log(u / (1 - u)) - m)

    assert _ks(t, logit_cdf(math.log(3))) > 1e-3
    assert _ks(t, logit_cdf(math.log(2.5))) < 1e-6
    # a shifted uniform on [t_min, 1]: P(T' <= t) = (t / (k - (k - 1) t) - t_min) / (1 - t_min)
    t = densities.get("uniform:shift=2")(N, g, LIN)
    t0 = LIN.t_min
    assert _ks(t, lambda u: (u / (2 - u) - t0) / (1 - t0)) > 1e-3
    # as a sampling grid: a valid decreasing grid through the shifted times
    grid = grids.check(grids.shift(grids.make("uniform", LIN, 8, t_end=0.0), 3.0))
    torch.testing.assert_close(grid[4], torch.tensor(0.75, dtype=torch.float64))


def test_p2_is_the_papers_weight_of_the_eps_mse():
    # Choi et al. 2022: lambda'(t) = 1 / (k + snr)^gamma on the eps-MSE
    path = ip.paths.VPCosine()
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    snr = (path.alpha(t) / path.sigma(t)) ** 2
    for name, gamma in (("p2", 1.0), ("p2-0.5", 0.5)):
        torch.testing.assert_close(Objective(path, "eps", weight=name).weight_of(t),
                                   1 / (1 + snr) ** gamma)
    torch.testing.assert_close(Objective(path, "eps", weight="p2-0").weight_of(t),
                               torch.ones_like(t))
    # the same weight on a v-net: w_x0 c_v, with c_v = sigma^2 = 1 / (snr + 1) on VP paths
    torch.testing.assert_close(Objective(path, "v", weight="p2").weight_of(t),
                               snr / (1 + snr) ** 2)


def _oracle(gmm, path, target, c, shrink):
    """The exact E[T | x_t] (from a shrunk oracle x0 when shrink != 1) plus c_i x_t."""

    def model(x, t, cond=None):
        d = shrink * gmm.posterior_mean(x, path.alpha(t), path.sigma(t))
        return ip.convert(d, "x0", target, x, t, path) + c[:, None] * x

    return model


@pytest.mark.parametrize("density,weight,target", [
    ("mode", "p2", "eps"), ("cosmap", "p2-0.5", "v"), ("logit-normal:shift=3", "min-snr", "x0"),
    ("mode-0.5:shift=0.5", "p2", "velocity")])
def test_the_exact_denoiser_stays_stationary_under_new_densities_and_weights(density, weight,
                                                                              target):
    # dL/dc_i at c = 0 for the perturbation c_i x_t of each sample's output: zero in expectation
    # at every t (T is affine in x0 given x_t), whatever positive weight and density. Times
    # drawn from the density, kept in [0.02, 0.98] where every target is finite. Control: the
    # exact denoiser shrunk by 10% must be detected.
    n, path = 10_000, LIN
    g = torch.Generator().manual_seed(3)
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    objective = Objective(path, target, density, weight)
    t = objective.sample_time(n, g).clamp(0.02, 0.98)
    x0, noise = gmm.sample(n, g), torch.randn(n, 2, generator=g, dtype=torch.float64)
    for shrink, stationary in ((1.0, True), (0.9, False)):
        c = torch.zeros(n, dtype=torch.float64, requires_grad=True)
        per = objective.per_sample(_oracle(gmm, path, target, c, shrink), x0, noise, t)
        (grad,) = torch.autograd.grad(per.sum(), c)
        z = float(grad.mean() / (grad.std() / math.sqrt(n)))
        assert (abs(z) < 4.5) if stationary else (abs(z) > 10), (shrink, z)


def test_bad_density_and_weight_options_are_refused():
    with pytest.raises(InterpolantError, match="mode sampling needs -1 <= s"):
        densities.get("mode-3")
    with pytest.raises(InterpolantError, match="shift must be a number, e.g. cosmap:shift=3"):
        densities.get("cosmap:shift=big")
    with pytest.raises(InterpolantError, match="time shift k must be a positive number"):
        densities.get("cosmap:shift=-2")
    with pytest.raises(InterpolantError, match="unknown time density 'foo'"):
        densities.get("foo:shift=2")
    with pytest.raises(InterpolantError, match="p2 needs gamma >= 0 and k > 0"):
        weights.P2(1.0, 0.0)
