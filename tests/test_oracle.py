"""The exact oracle checked against Monte Carlo, autograd, closed forms and an independent
integrator, so that every solver test built on it stands on verified ground."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.stats import multivariate_normal

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.labels import NULL_LABEL

F64 = torch.float64
GMM = ip.oracle.GaussianMixture


def test_log_prob_matches_scipy():
    gmm = GMM.preset("mix8d")
    x = gmm.sample(50, torch.Generator().manual_seed(0))
    ref = np.log(sum(
        float(w) * multivariate_normal(m.numpy(), c.numpy()).pdf(x.numpy())
        for m, c, w in zip(gmm.means, gmm.covs, gmm.weights)
    ))
    np.testing.assert_allclose(gmm.log_prob(x).numpy(), ref, rtol=1e-10)


def test_samples_have_the_mixture_moments():
    gmm = GMM.preset("aniso2d")
    n = 200_000
    x, labels = gmm.sample(n, torch.Generator().manual_seed(1), return_labels=True)
    w = gmm.weights
    freq = torch.bincount(labels, minlength=8).to(F64) / n
    assert torch.all((freq - w).abs() < 5 * torch.sqrt(w * (1 - w) / n))
    for k in (0, 3, 7):
        xk = x[labels == k]
        se = torch.sqrt(torch.diagonal(gmm.covs[k]) / xk.shape[0])
        assert torch.all((xk.mean(0) - gmm.means[k]).abs() < 5 * se)
        torch.testing.assert_close(torch.cov(xk.T), gmm.covs[k], rtol=0.05, atol=2e-3)


@pytest.mark.parametrize("t", [0.1, 0.4, 0.8])
def test_posterior_mean_matches_monte_carlo(t):
    """E[x0 | x_t] by self-normalised importance sampling over exact data samples."""
    gmm, path = GMM.preset("aniso2d"), ip.paths.VPLinear()
    a, s = path.alpha(t), path.sigma(t)
    g = torch.Generator().manual_seed(2)
    x0 = gmm.sample(400_000, g)
    points = a * gmm.sample(4, g) + s * torch.randn(4, 2, generator=g, dtype=F64)
    logw = -0.5 * ((points[:, None, :] - a * x0[None]) ** 2).sum(-1) / s**2
    w = torch.softmax(logw, dim=1)
    mc = w @ x0
    ess = 1.0 / (w**2).sum(1)
    exact = gmm.posterior_mean(points, a, s)
    # Monte Carlo error ~ posterior std / sqrt(ESS); posterior std <= 1.6 for this mixture
    assert torch.all((mc - exact).norm(dim=1) < 5 * 1.6 / ess.sqrt())


def test_score_is_the_gradient_of_the_marginal_log_density(path):
    gmm = GMM.preset("aniso2d")
    g = torch.Generator().manual_seed(3)
    for t in (0.05, 0.5, 0.95):
        marginal = gmm.marginal(path, t)
        x = marginal.sample(16, g).requires_grad_(True)
        (grad,) = torch.autograd.grad(marginal.log_prob(x).sum(), x)
        torch.testing.assert_close(gmm.score(x.detach(), t, path), grad, rtol=1e-8, atol=1e-10)


def test_tweedie_links_denoiser_and_score():
    """x0_hat = (x + sigma^2 score) / alpha: the denoiser and the score agree."""
    gmm, path = GMM.preset("mix8d"), ip.paths.VPCosine()
    x = torch.randn(10, 8, dtype=F64, generator=torch.Generator().manual_seed(4))
    den = gmm.denoiser(path)
    for t in (0.2, 0.7):
        a, s = path.alpha(t), path.sigma(t)
        torch.testing.assert_close(den(x, t), (x + s**2 * gmm.score(x, t, path)) / a)


def _ivp_in_t(gmm, path, x, t_from, t_to):
    """An independent reference: DOP853 on dx/dt = velocity in path time."""
    den = gmm.denoiser(path)

    def rhs(t, y):
        xt = torch.from_numpy(y).view(x.shape)
        return den(xt, float(t), target="velocity").flatten().numpy()

    sol = solve_ivp(rhs, (t_from, t_to), x.flatten().numpy(), method="DOP853", rtol=1e-11,
                    atol=1e-11)
    return torch.from_numpy(sol.y[:, -1]).view(x.shape)


@pytest.mark.parametrize("name", ["vp-linear", "edm", "linear"])
def test_flow_matches_an_independent_integration_in_t(name):
    gmm, path = GMM.preset("aniso2d"), ip.paths.get(name)
    t_from, t_to = 0.9, 0.05
    x = gmm.marginal(path, t_from).sample(20, torch.Generator().manual_seed(5))
    torch.testing.assert_close(
        gmm.flow(path, x, t_from, t_to), _ivp_in_t(gmm, path, x, t_from, t_to),
        rtol=1e-7, atol=1e-7,
    )


def test_closed_form_gaussian_flow_equals_the_ode_route():
    """One component uses the closed form; the same Gaussian split in two uses the ODE."""
    one = GMM.preset("gauss2d")
    two = GMM(one.means.repeat(2, 1), one.covs.repeat(2, 1, 1), torch.tensor([0.5, 0.5]))
    path = ip.paths.VPLinear()
    x = torch.randn(30, 2, dtype=F64, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(one.flow(path, x, 1.0, path.t_min),
                               two.flow(path, x, 1.0, path.t_min), rtol=1e-8, atol=1e-8)


def test_flow_pushes_the_marginal_forward_in_distribution():
    """For one Gaussian the flow is affine: pushing N(m1, C1) must give N(m0, C0) exactly."""
    gmm, path = GMM.preset("gauss2d"), ip.paths.Trig()
    m1, c1 = gmm.marginal(path, 0.97).means[0], gmm.marginal(path, 0.97).covs[0]
    # the affine map x -> A x + b from its action on the mean and on basis directions
    b = gmm.flow(path, m1[None], 0.97, 0.02)[0]
    basis = gmm.flow(path, m1[None] + torch.eye(2, dtype=F64), 0.97, 0.02) - b
    a = basis.T
    target = gmm.marginal(path, 0.02)
    torch.testing.assert_close(b, target.means[0])
    torch.testing.assert_close(a @ c1 @ a.T, target.covs[0], rtol=1e-9, atol=1e-12)


def test_flow_round_trip():
    gmm, path = GMM.preset("aniso2d"), ip.paths.VPCosine()
    x = gmm.sample(20, torch.Generator().manual_seed(7))
    there = gmm.flow(path, x, t_from=0.01, t_to=0.99)
    torch.testing.assert_close(gmm.flow(path, there, 0.99, 0.01), x, rtol=1e-8, atol=1e-8)


def test_bad_mixtures_are_refused():
    with pytest.raises(InterpolantError):
        GMM(torch.zeros(2, 3), torch.eye(3).repeat(3, 1, 1))
    with pytest.raises(InterpolantError):
        GMM(torch.zeros(1, 2), -torch.eye(2)[None])
    with pytest.raises(InterpolantError, match="shape"):
        GMM.preset("gauss2d").log_prob(torch.zeros(4, 3))
    with pytest.raises(InterpolantError, match="aniso2d"):
        GMM.preset("gauss3d")
    assert math.isfinite(float(GMM.preset("mix8d").log_prob(torch.zeros(1, 8))))


# -- class-conditional mixtures (labels=) ---------------------------------------------------

def _labelled():
    """``mix8d`` with components (0, 2) in class 0 and (1, 3) in class 1."""
    base = GMM.preset("mix8d")
    return GMM(base.means, base.covs, base.weights, labels=torch.tensor([0, 1, 0, 1]))


def test_class_log_prob_matches_scipy():
    gmm = _labelled()
    x = gmm.sample(40, torch.Generator().manual_seed(20))
    for c, members in ((0, (0, 2)), (1, (1, 3))):
        w = gmm.weights[list(members)]
        ref = np.log(sum(float(w[i] / w.sum()) * multivariate_normal(
            gmm.means[k].numpy(), gmm.covs[k].numpy()).pdf(x.numpy())
            for i, k in enumerate(members)))
        got = gmm.log_prob(x, torch.full((40,), c))
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(gmm.log_prob(x, torch.full((40,), NULL_LABEL)).numpy(),
                               gmm.log_prob(x).numpy(), rtol=0)


def test_class_conditional_denoiser_is_the_restricted_mixture(path):
    """den(x, t, c) row by row equals the exact denoiser of p(x0 | c); NULL rows and
    cond=None the unconditional one."""
    gmm = _labelled()
    den = gmm.denoiser(path)
    x = 1.5 * torch.randn(6, 8, dtype=F64, generator=torch.Generator().manual_seed(21))
    cond = torch.tensor([0, 1, NULL_LABEL, 1, 0, NULL_LABEL])
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 0.2], dtype=F64)
    got = den(x, t, cond)
    parts = [gmm.restrict(0).denoiser(path), gmm.restrict(1).denoiser(path)]
    for i, c in enumerate(cond.tolist()):
        ref = (parts[c] if c != NULL_LABEL else den)(x[i:i + 1], t[i:i + 1])
        torch.testing.assert_close(got[i:i + 1], ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(den(x, t, None), den(x, t, torch.full((6,), NULL_LABEL)))


def test_class_score_is_the_gradient_of_the_class_marginal(path):
    gmm = _labelled()
    for c in (0, 1):
        marginal = gmm.restrict(c).marginal(path, 0.4)
        x = marginal.sample(8, torch.Generator().manual_seed(22)).requires_grad_(True)
        (grad,) = torch.autograd.grad(marginal.log_prob(x).sum(), x)
        got = gmm.score(x.detach(), 0.4, path, torch.full((8,), c))
        torch.testing.assert_close(got, grad, rtol=1e-8, atol=1e-10)


def test_exact_classifier_is_bayes_rule():
    """log p(c | x_t) = log p(c) + log p_t(x | c) - log p_t(x), from marginal densities."""
    gmm, path, t = _labelled(), ip.paths.VPCosine(), 0.35
    x = gmm.marginal(path, t).sample(12, torch.Generator().manual_seed(23))
    prior = torch.stack([gmm.weights[[0, 2]].sum(), gmm.weights[[1, 3]].sum()])
    joint = torch.stack([gmm.restrict(c).marginal(path, t).log_prob(x) for c in (0, 1)], 1)
    expect = prior.log() + joint - gmm.marginal(path, t).log_prob(x)[:, None]
    torch.testing.assert_close(gmm.class_log_posterior(x, t, path), expect, rtol=1e-10, atol=1e-10)
    tt = torch.full((12,), t, dtype=F64)
    torch.testing.assert_close(gmm.classifier(path)(x, tt), expect, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gmm.class_log_prior(), prior.log())


def test_class_conditional_bad_input():
    gmm, base = _labelled(), GMM.preset("mix8d")
    x = torch.zeros(3, 8, dtype=F64)
    with pytest.raises(InterpolantError, match="outside"):
        gmm.posterior_mean(x, 0.5, 0.5, torch.tensor([0, 2, 1]))
    with pytest.raises(InterpolantError, match="shape"):
        gmm.posterior_mean(x, 0.5, 0.5, torch.tensor([0, 1]))
    with pytest.raises(InterpolantError, match="int64"):
        gmm.posterior_mean(x, 0.5, 0.5, torch.zeros(3))
    with pytest.raises(InterpolantError, match="no classes"):
        base.posterior_mean(x, 0.5, 0.5, torch.tensor([0, 1, 0]))
    with pytest.raises(InterpolantError, match="without gaps"):
        GMM(base.means, base.covs, labels=torch.tensor([0, 2, 0, 2]))
    with pytest.raises(InterpolantError, match="4 integers"):
        GMM(base.means, base.covs, labels=torch.tensor([0, 1]))
    torch.testing.assert_close(base.posterior_mean(x, 0.5, 0.5, torch.full((3,), NULL_LABEL)),
                               base.posterior_mean(x, 0.5, 0.5))
