"""Stochastic interpolants: the exact two-sided oracle, ODE and SDE sampling against it, the
reduction to the Gaussian paths, and learning the velocity."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.interpolants import (Interpolant, InterpolantModel, TwoSidedMixture,
                                      independent, train)
from interpolant.oracle import GaussianMixture

from support.orders import fit_order, rms_error

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _p1() -> GaussianMixture:
    """A second data set: two elongated Gaussians."""
    means = torch.tensor([[1.5, -0.5], [-1.0, 1.0]], dtype=F64)
    covs = torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.4]]], dtype=F64)
    return GaussianMixture(means, covs, torch.tensor([0.7, 0.3], dtype=F64))


def _two_sided(path: Interpolant) -> TwoSidedMixture:
    return TwoSidedMixture(GaussianMixture.preset("aniso2d"), _p1(), path)


@pytest.mark.parametrize("name", ["linear", "trig"])
def test_one_sided_case_is_the_gaussian_path(name):
    """x_1 ~ N(0, I), gamma = 0: the interpolant is the Gaussian path alpha = a, sigma = b."""
    gauss = ip.paths.get(name)
    normal = GaussianMixture(torch.zeros(1, 2, dtype=F64), torch.eye(2, dtype=F64)[None])
    preset = Interpolant.linear() if name == "linear" else Interpolant.trig()
    for path in (Interpolant.gaussian(gauss), preset):
        oracle = TwoSidedMixture(GaussianMixture.preset("aniso2d"), normal, path)
        den = GaussianMixture.preset("aniso2d").denoiser(gauss)
        x = 1.5 * torch.randn(50, 2, generator=_gen(0), dtype=F64)
        for t in (0.1, 0.5, 0.9):
            e0, _, _, score = oracle.expectations(x, t)
            assert torch.allclose(e0, den(x, t, None, "x0"), atol=1e-12)
            assert torch.allclose(score, den(x, t, None, "score"), atol=1e-11)
            assert torch.allclose(oracle.velocity(x, t), den(x, t, None, "velocity"), atol=1e-12)


@pytest.mark.parametrize("noise", [0.0, 0.7])
def test_conditional_means_are_exact(noise):
    """``a E[x0|x] + b E[x1|x] + gamma E[z|x] = x``; the score is the gradient of the exact
    log-density; and ``E[(x_0 - E[x_0|x_t]) (1, x_t)] = 0`` over exact draws (4.5 SE)."""
    oracle = _two_sided(Interpolant.linear(noise))
    t = 0.4
    a, b, g = oracle.path.scalars(t)[:3]
    x = oracle.marginal(t).sample(300, _gen(1)).requires_grad_(True)
    e0, e1, ez, score = oracle.expectations(x, t)
    assert torch.allclose(a * e0 + b * e1 + g * ez, x.detach(), atol=1e-12)
    (grad,) = torch.autograd.grad(oracle.marginal(t).log_prob(x).sum(), x)
    assert torch.allclose(score, grad, atol=1e-10)
    n = 200_000
    x0, x1 = oracle.p0.sample(n, _gen(2)), oracle.p1.sample(n, _gen(3))
    z = torch.randn(n, 2, generator=_gen(4), dtype=F64)
    xt = a * x0 + b * x1 + g * z
    e0, e1, ez, _ = oracle.expectations(xt, t)
    for resid in (x0 - e0, x1 - e1, z - ez):
        for feat in (torch.ones(n, 1, dtype=F64), xt):
            prod = (resid[:, :, None] * feat[:, None, :]).flatten(1)
            se = prod.std(0) / math.sqrt(n)
            assert torch.all(prod.mean(0).abs() < 4.5 * se + 1e-12)
    wrong = oracle.p0.means.mean(0)  # the prior mean instead of the posterior mean: caught
    assert ((x0 - wrong) * xt[:, :1]).mean(0).abs().max() > 10 * se.max()


@pytest.mark.parametrize("solver,order,steps", [("euler", 1, (40, 80, 160)),
                                                ("heun", 2, (10, 20, 40))])
def test_ode_sampling_converges_to_the_exact_two_sided_flow(solver, order, steps):
    oracle = _two_sided(Interpolant.trig(0.5))
    x1 = oracle.marginal(0.95).sample(64, _gen(5))
    ref = oracle.flow(x1, 0.95, 0.05)
    model = oracle.model()
    errors = [rms_error(ip.sample(model, x1, solver=solver, steps=n, grid="uniform",
                                  t_start=0.95, t_end=0.05), ref) for n in steps]
    assert abs(fit_order(steps, errors) - order) < 0.25, errors


def test_sde_sampling_keeps_the_exact_marginals():
    """For eps(t) = gamma(t)^2 (0 at t = 1) the reverse SDE from exact x_1 draws reaches the
    exact law of x_t at t = 0.3: mean and covariance within 4.5 Monte Carlo SE."""
    oracle = _two_sided(Interpolant.linear(1.0))
    n = 3000
    x1 = oracle.p1.sample(n, _gen(6))
    eps = lambda t: oracle.path.gamma(t) ** 2  # noqa: E731
    x = ip.sample(oracle.model(), x1, solver="sde", steps=120, grid="uniform", t_start=1.0,
                  t_end=0.3, generator=_gen(7), diffusion=eps)
    law = oracle.marginal(0.3)  # its exact mean and covariance
    mean = law.weights @ law.means
    second = torch.einsum("k,kde->de", law.weights,
                          law.covs + law.means[:, :, None] * law.means[:, None, :])
    cov = second - mean[:, None] * mean[None]
    se_mean = cov.diagonal().sqrt() / math.sqrt(n)
    assert torch.all((x.mean(0) - mean).abs() < 4.5 * se_mean)
    cov_hat = torch.cov(x.T)
    se_cov = torch.sqrt((cov.diagonal()[:, None] * cov.diagonal()[None] + cov**2) / n)
    assert torch.all((cov_hat - cov).abs() < 4.5 * se_cov)
    ode = ip.sample(oracle.model(), x1[:200], solver="sde", steps=20, grid="uniform",
                    t_start=1.0, t_end=0.3, diffusion=0.0)
    assert torch.allclose(ode, ip.sample(oracle.model(), x1[:200], solver="euler", steps=20,
                                         grid="uniform", t_start=1.0, t_end=0.3), atol=1e-13)


def test_sde_on_a_gaussian_path_is_euler_maruyama():
    path = ip.paths.VPLinear()
    den = GaussianMixture.preset("aniso2d").denoiser(path)
    x = torch.randn(32, 2, generator=_gen(9), dtype=F64)
    g2 = lambda t: 0.5 * ip.solvers.stochastic.natural_diffusion(path, t)  # noqa: E731
    em = ip.sample(den, x, solver="euler-maruyama", steps=30, grid="logsnr", diffusion=g2,
                   generator=_gen(10))
    sde = ip.sample(den, x, solver="sde", steps=30, grid="logsnr",
                    diffusion=lambda t: 0.5 * g2(t), generator=_gen(10))
    assert (em - sde).abs().max() < 1e-10 * (1 + em.abs().max())


def test_learned_velocity_approaches_the_exact_one():
    torch.manual_seed(0)
    p0 = GaussianMixture.preset("gauss2d")
    oracle = TwoSidedMixture(p0, _p1(), Interpolant.linear())
    net = ip.models.MLP(dim=2, hidden=48, depth=2).double()
    pairs = independent(p0.sample, oracle.p1.sample)
    t = 0.5
    xt = oracle.marginal(t).sample(2000, _gen(11))
    exact = oracle.velocity(xt, t)

    def rel_error() -> float:
        with torch.no_grad():
            learned = InterpolantModel(net, oracle.path)(xt, t)
        return float((learned - exact).norm() / exact.norm())

    before = rel_error()
    curve = train(oracle.path, net, pairs, steps=250, batch_size=128, lr=4e-3, seed=0)
    after = rel_error()
    assert after < 0.2 and after < 0.25 * before, (before, after)
    assert sum(curve[-50:]) < sum(curve[:50])


def test_bad_input_is_refused():
    with pytest.raises(InterpolantError, match="a\\(0\\) = b\\(1\\) = 1"):
        Interpolant(lambda t: t, lambda t: t, lambda t: 0.0, lambda t: 1.0, lambda t: 1.0,
                    lambda t: 0.0)
    with pytest.raises(InterpolantError, match="gamma"):
        Interpolant.linear(noise=-1.0)
    with pytest.raises(InterpolantError, match="same dimension"):
        TwoSidedMixture(GaussianMixture.preset("aniso2d"), GaussianMixture.preset("mix8d"),
                        Interpolant.linear())
    model = InterpolantModel(lambda x, t: x, Interpolant.linear(0.5), eta=lambda x, t: x)
    with pytest.raises(InterpolantError, match="gamma\\(t\\) = 0"):
        model(torch.zeros(2, 2), 1.0, None, "score")
    with pytest.raises(InterpolantError, match="diffusion"):
        ip.solvers.get("sde", diffusion=-1.0)
