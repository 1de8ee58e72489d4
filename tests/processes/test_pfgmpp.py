"""PFGM++ (Xu et al. 2023): the kernel's law and moments in closed form, the D -> inf limit
(VE/EDM), and EDM sampling from the heavy-tailed prior with the exact posterior mean."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate, stats

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.processes import pfgmpp

F64 = torch.float64
POINTS = torch.tensor([[-1.0, 0.5], [0.8, 0.9], [0.2, -1.1]], dtype=F64)
WEIGHTS = torch.tensor([0.2, 0.3, 0.5], dtype=F64)


@pytest.mark.parametrize("N,D", [(2, 3.0), (8, 64.0), (1, 0.5)])
def test_radii_follow_the_beta_prime_law(N, D):
    """R^2 / r^2 = b / (1 - b) with b ~ Beta(N/2, D/2), i.e. (D/N) R^2 / r^2 ~ F(N, D): the
    law of the radial density R^(N-1) (R^2 + r^2)^(-(N+D)/2) of the kernel (KS test)."""
    r = 1.7
    big_r = pfgmpp.radii(20000, N, D, r, torch.Generator().manual_seed(0))
    assert stats.kstest((D / N) * (big_r / r).pow(2).numpy(), stats.f(N, D).cdf).pvalue > 1e-3


def test_kernel_second_moment_is_r2_N_over_D_minus_2():
    """Quadrature of the radial density gives E R^2 = r^2 N / (D - 2); the sampled
    perturbations x - y agree within their Monte Carlo error."""
    N, D, sigma = 3, 12.0, 0.7
    r = sigma * math.sqrt(D)
    dens = lambda R, p: R ** (N - 1 + p) * (R * R + r * r) ** (-(N + D) / 2)  # noqa: E731
    moment = integrate.quad(dens, 0, math.inf, args=(2,))[0] / integrate.quad(
        dens, 0, math.inf, args=(0,))[0]
    assert math.isclose(moment, r * r * N / (D - 2), rel_tol=1e-8)
    y = torch.randn(40000, N, generator=torch.Generator().manual_seed(1), dtype=F64)
    sq = (pfgmpp.perturb(y, sigma, D, torch.Generator().manual_seed(2)) - y).pow(2).sum(1)
    assert abs(sq.mean().item() - moment) < 4 * sq.std().item() / math.sqrt(sq.numel())


def test_large_D_posterior_mean_tends_to_the_gaussian_one_as_1_over_D():
    """E[y | x] under the PFGM++ kernel (exact, for a weighted point set) against the VE/EDM
    one at the same sigma: the gap shrinks like 1/D (log-log slope -1)."""
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(3), dtype=F64) * 1.5
    sigma = 0.6
    gauss = pfgmpp.posterior_mean(POINTS, WEIGHTS, x, sigma, math.inf)
    ds = [2.0**k for k in range(8, 16)]
    gaps = [(pfgmpp.posterior_mean(POINTS, WEIGHTS, x, sigma, d) - gauss).abs().max().item()
            for d in ds]
    ld, lg = torch.log(torch.tensor(ds)), torch.log(torch.tensor(gaps))
    fit = float(((ld - ld.mean()) * (lg - lg.mean())).sum() / ((ld - ld.mean()) ** 2).sum())
    assert -1.1 < fit < -0.9 and gaps[-1] < 1e-3


def test_edm_sampling_from_the_heavy_tailed_prior_follows_the_pfgmpp_marginals():
    """The exact PFGM++ posterior mean (D = 4) in EDM's Heun sampler, started from the
    kernel's prior at sigma_max: at sigma = 3 the radii match direct draws of the exact
    marginal (two-sample KS; the same run from a Gaussian prior is rejected), and at the end
    every sample lands on a point, with the points' weights."""
    path, D, n = ip.paths.EDM(), 4.0, 3000
    den = pfgmpp.exact_denoiser(POINTS, WEIGHTS, D, path)
    mid = path.t_of_lam(-math.log(3.0))
    g = torch.Generator().manual_seed(5)
    direct = pfgmpp.perturb(POINTS[torch.multinomial(WEIGHTS, n, True, generator=g)], 3.0, D, g)
    heavy = pfgmpp.prior((n, 2), path.sigma(1.0), D, torch.Generator().manual_seed(4), F64)
    gauss = path.sigma(1.0) * torch.randn(n, 2, generator=torch.Generator().manual_seed(4),
                                          dtype=F64)
    pvals = [stats.ks_2samp(ip.sample(den, x1, solver="heun", steps=30, grid="karras",
                                      t_end=mid).norm(dim=1), direct.norm(dim=1)).pvalue
             for x1 in (heavy, gauss)]
    assert pvals[0] > 1e-3 and pvals[1] < 1e-6
    x = ip.sample(den, heavy, solver="heun", steps=40, grid="karras", denoise_to_zero=True)
    dist = torch.cdist(x, POINTS)
    assert dist.min(1).values.max() < 1e-6
    share = torch.bincount(dist.argmin(1), minlength=3).to(F64) / n
    assert (share - WEIGHTS).abs().max() < 4 * math.sqrt(0.25 / n)


def test_training_as_edm_with_the_pfgmpp_kernel_lowers_the_loss():
    torch.manual_seed(0)
    path = ip.paths.EDM()
    model = ip.EDMPrecond(ip.models.MLP(2, hidden=64, depth=2), path)
    data = lambda n, g: POINTS.float()[torch.multinomial(WEIGHTS, n, True, generator=g)]  # noqa
    curve = pfgmpp.train(model, data, D=16.0, steps=100, seed=1)
    assert sum(curve[-20:]) / 20 < 0.7 * sum(curve[:20]) / 20


@pytest.mark.parametrize("D", [0, -3.0, float("nan"), True])
def test_a_nonpositive_augmented_dimension_is_refused(D):
    with pytest.raises(InterpolantError, match="D > 0"):
        pfgmpp.perturb(torch.zeros(2, 2), 1.0, D)
