"""Autoguidance against exact oracles: a mixture guided by its own broadened version, and two
Gaussians of one covariance, whose guided flow is the closed-form flow of a third Gaussian."""

from __future__ import annotations

import pytest
import torch
from support.orders import fit_order

import interpolant as ip
from interpolant.errors import InterpolantError

F64 = torch.float64
GMM = ip.oracle.GaussianMixture


def _broadened(gmm, extra=0.2):
    """The 'weak model': the same mixture with every covariance widened by extra^2 I."""
    return GMM(gmm.means, gmm.covs + extra**2 * torch.eye(gmm.dim, dtype=F64), gmm.weights)


@pytest.mark.parametrize("t", [0.1, 0.5, 0.85])
def test_autoguided_score_is_the_combination_of_exact_scores(path, points, t):
    good = GMM.preset("aniso2d")
    weak = _broadened(good)
    w = 2.0
    g = ip.guidance.AutoGuidance(good.denoiser(path), weak.denoiser(path), w)
    expect = w * good.score(points, t, path) + (1 - w) * weak.score(points, t, path)
    torch.testing.assert_close(g(points, t, None, "score"), expect, rtol=1e-9, atol=1e-9)
    assert g.nfe == 2 and g.calls == 2


def test_equal_covariance_gaussians_flow_to_the_closed_form():
    """D_w of N(mu1, S) guided by N(mu2, S) is the exact denoiser of N(w mu1 + (1-w) mu2, S)
    (the posterior mean is affine in mu with a mu-free gain), so sampling it converges, at the
    solver's order, to that Gaussian's closed-form probability flow."""
    path, w = ip.paths.VPCosine(), 2.5
    base = GMM.preset("gauss2d")
    mu2 = base.means + torch.tensor([[0.8, 0.5]], dtype=F64)
    g = ip.guidance.AutoGuidance(base.denoiser(path), GMM(mu2, base.covs).denoiser(path), w)
    target = GMM(w * base.means + (1 - w) * mu2, base.covs)
    t0, t1 = 0.95, path.t_min
    x = torch.randn(16, 2, dtype=F64, generator=torch.Generator().manual_seed(7))
    ref = target.flow(path, x, t0, t1)
    steps = [20, 40, 80]
    errors = []
    for n in steps:
        out = ip.sample(g, x, "dpm++2m", n, "logsnr", t_start=t0)
        same = ip.sample(target.denoiser(path), x, "dpm++2m", n, "logsnr", t_start=t0)
        torch.testing.assert_close(out, same, rtol=1e-12, atol=1e-12)
        errors.append(float((out - ref).norm(dim=1).max()))
    assert errors[-1] < 1e-3 and fit_order(steps, errors) > 1.7


def test_interval_returns_the_good_model_without_the_weak_one(points):
    path = ip.paths.VPLinear()
    good = GMM.preset("aniso2d")
    den = good.denoiser(path)
    g = ip.guidance.AutoGuidance(den, _broadened(good).denoiser(path), 2.0, interval=(0.2, 0.5))
    torch.testing.assert_close(g(points, 0.7), den(points, 0.7), rtol=0, atol=0)
    assert g.nfe == 1


def test_models_on_different_paths_are_refused():
    gmm = GMM.preset("aniso2d")
    with pytest.raises(InterpolantError, match="share one path"):
        ip.guidance.AutoGuidance(gmm.denoiser(ip.paths.VPLinear()),
                                 gmm.denoiser(ip.paths.VPCosine()), 2.0)
    with pytest.raises(InterpolantError, match="finite"):
        ip.guidance.AutoGuidance(gmm.denoiser(ip.paths.EDM()), gmm.denoiser(ip.paths.EDM()),
                                 float("inf"))
