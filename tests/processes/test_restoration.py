"""Training the restoration networks: cold diffusion's R and RDDM's residual and noise
networks. Each objective is stationary at its stated exact minimiser on a Gaussian-mixture
oracle (and not at a wrong one), RDDM's x_0 estimate from the exact fields is E[x_0 | x_t],
and tiny training runs reduce the losses towards the exact fields."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.interpolants import Interpolant, TwoSidedMixture
from interpolant.oracle import GaussianMixture
from interpolant.processes import cold, residual
from interpolant.processes.restoration import (cold_loss, cold_restoration, rddm_losses,
                                               rddm_restoration, train_cold, train_rddm)

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _masked_posterior_mean(p0: GaussianMixture, mask: cold.Mask, y: torch.Tensor, t: float
                           ) -> torch.Tensor:
    """``E[x_0 | D(x_0, t) = y]`` for the pixel mask: Gaussian conditioning of each component
    on the kept coordinates, mixed by their marginal likelihoods."""
    kept = (mask.priority >= t).nonzero().flatten() if t < 1 else torch.zeros(0, dtype=int)
    if len(kept) == 0:
        return (p0.weights @ p0.means).expand_as(y).clone()
    m, c = p0.means, p0.covs
    ckk = c[:, kept][:, :, kept]
    diff = y[:, kept][:, None] - m[:, kept][None]  # (n, K, k)
    solved = torch.linalg.solve(ckk[None], diff[..., None]).squeeze(-1)
    log_p = (p0.weights.log() - 0.5 * torch.logdet(ckk))[None] - 0.5 * (diff * solved).sum(-1)
    resp = torch.softmax(log_p, dim=1)
    per = m[None] + torch.einsum("kdj,nkj->nkd", c[:, :, kept], solved)
    return torch.einsum("nk,nkd->nd", resp, per)


def test_cold_loss_is_stationary_at_the_conditional_expectation():
    """At ``R* = E[x_0 | D(x_0, t)]`` the L2 loss has zero derivative in every direction
    ``h(y)`` (4.5 SE); the prior mean (a wrong R) is caught. ``2/2`` levels: one coordinate
    kept at the first, none at the second."""
    p0 = GaussianMixture.preset("aniso2d")
    mask = cold.Mask((2,), seed=3)
    n_levels = 2
    level_t = sorted(mask.priority.tolist())[0] + 1e-3  # between the two priorities
    n = 20_000
    x0 = p0.sample(n, _gen(0))
    levels = torch.randint(1, n_levels + 1, (n,), generator=_gen(1))
    degrade = lambda x, t: mask(x, level_t if t < 1 else 1.0)  # noqa: E731

    def exact(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(y)
        for value in t.unique().tolist():
            rows = t == value
            out[rows] = _masked_posterior_mean(p0, mask, y[rows], level_t if value < 1 else 1.0)
        return out

    for wrong in (False, True):
        field = (lambda y, t: (p0.weights @ p0.means).expand_as(y)) if wrong else exact
        for h in (lambda y: torch.ones_like(y), lambda y: y, lambda y: torch.tanh(2 * y)):
            diff = (cold_loss(lambda y, t: field(y, t) + 0.1 * h(y), degrade, x0, levels,
                              n_levels)
                    - cold_loss(lambda y, t: field(y, t) - 0.1 * h(y), degrade, x0, levels,
                                n_levels))
            se = diff.std() / math.sqrt(n)
            if not wrong:
                assert diff.mean().abs() < 4.5 * se
        if wrong:  # with h = tanh(2 y) the derivative is far from zero
            assert diff.mean().abs() > 10 * se


def test_cold_training_reduces_the_loss_and_restores_through_the_sampler():
    torch.manual_seed(0)
    p0 = GaussianMixture.preset("gauss2d")
    mask = cold.Mask((2,), seed=3)
    net = ip.models.MLP(dim=2, hidden=48, depth=2).double()
    curve = train_cold(net, mask, p0.sample, n_levels=4, steps=250, batch_size=128, lr=4e-3)
    assert sum(curve[-25:]) < 0.9 * sum(curve[:25])  # measured 0.83 (E Var[x0|y] stays)
    x0 = p0.sample(2000, _gen(2))
    t = sorted(mask.priority.tolist())[0] + 1e-3
    y = mask(x0, t)
    exact = _masked_posterior_mean(p0, mask, y, t)
    learned = cold_restoration(net)(y, t)
    prior = (p0.weights @ p0.means).expand_as(y)  # what R learns without the kept coordinate
    assert (learned - exact).norm() < 0.5 * (prior - exact).norm()
    out = cold.sample(cold_restoration(net), mask, mask(x0, 1.0), steps=4)
    assert out.shape == x0.shape and bool(torch.isfinite(out).all())


def test_rddm_losses_are_stationary_at_the_exact_residual_and_noise():
    path = residual.rddm(0.8)
    p1 = GaussianMixture(torch.tensor([[1.0, -1.0], [-0.5, 0.5]], dtype=F64),
                         0.2 * torch.eye(2, dtype=F64).expand(2, 2, 2).clone())
    oracle = TwoSidedMixture(GaussianMixture.preset("aniso2d"), p1, path)
    n, t0 = 20_000, 0.6
    x0, x1 = oracle.p0.sample(n, _gen(3)), p1.sample(n, _gen(4))
    z = torch.randn(n, 2, generator=_gen(5), dtype=F64)
    t = torch.full((n,), t0, dtype=F64)
    xt = path.a(t0) * x0 + path.b(t0) * x1 + path.gamma(t0) * z
    e0, e1, ez, _ = oracle.expectations(xt, t0)
    assert torch.allclose(rddm_restoration(lambda x, s: e1 - e0, lambda x, s: ez, path)(xt, t0),
                          e0, atol=1e-10)  # x_t - eta r* - kappa e* = E[x_0 | x_t]
    for h in (torch.ones_like(xt), xt, torch.tanh(xt)):
        plus = rddm_losses(lambda x, s: e1 - e0 + 0.1 * h, lambda x, s: ez + 0.1 * h, path, x0,
                           x1, t, z)
        minus = rddm_losses(lambda x, s: e1 - e0 - 0.1 * h, lambda x, s: ez - 0.1 * h, path,
                            x0, x1, t, z)
        for p, m in zip(plus, minus):
            diff = p - m
            assert diff.mean().abs() < 4.5 * diff.std() / math.sqrt(n)
    # the residual's conditional mean is not the noise's: swapping them is caught
    plus, minus = (rddm_losses(lambda x, s: ez + d * xt, lambda x, s: ez, path, x0, x1, t, z)[0]
                   for d in (0.1, -0.1))
    assert (plus - minus).mean().abs() > 10 * (plus - minus).std() / math.sqrt(n)


def test_rddm_training_reduces_both_losses():
    torch.manual_seed(0)
    path = residual.rddm(0.5)
    p0, p1 = GaussianMixture.preset("gauss2d"), GaussianMixture.preset("aniso2d")
    res, eps = (ip.models.MLP(dim=2, hidden=48, depth=2).double() for _ in range(2))
    pairs = lambda n, g: (p0.sample(n, g), p1.sample(n, g))  # noqa: E731
    curve = train_rddm(res, eps, path, pairs, steps=200, batch_size=128, lr=4e-3)
    assert sum(curve[-20:]) < 0.85 * sum(curve[:20])  # measured 0.74
    oracle = TwoSidedMixture(p0, p1, path)
    xt = oracle.marginal(0.5).sample(2000, _gen(6))
    e0, _, _, _ = oracle.expectations(xt, 0.5)
    got = rddm_restoration(res, eps, path)(xt, 0.5)
    assert (got - e0).norm() / (xt - e0).norm() < 0.3


def test_bad_inputs_are_refused():
    mask = cold.Mask((2,))
    x0 = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(InterpolantError, match="unknown norm"):
        cold_loss(lambda y, t: y, mask, x0, torch.ones(3, dtype=torch.long), 2, norm="l3")
    with pytest.raises(InterpolantError, match="levels must lie in 1..2"):
        cold_loss(lambda y, t: y, mask, x0, torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(InterpolantError, match="one shape"):
        rddm_losses(lambda x, t: x, lambda x, t: x, residual.rddm(), x0, x0[:, :1],
                    torch.zeros(3, dtype=F64), x0)
    with pytest.raises(InterpolantError, match="residual path"):
        rddm_restoration(lambda x, t: x, lambda x, t: x, Interpolant.trig())
    with pytest.raises(InterpolantError, match="steps >= 1"):
        train_cold(ip.models.MLP(dim=2), mask, lambda n, g: x0, 2, steps=0)
