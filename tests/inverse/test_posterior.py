"""The exact mixture posterior ``GaussianMixture.posterior`` against independent computations:
Bayes' rule pointwise, numerical integration of the evidence, importance-weighted prior samples."""

from __future__ import annotations

import math

import pytest
import torch

from interpolant.errors import InterpolantError
from interpolant.inverse import Blur, Downsample, Inpaint, Linear, Reshaped, mixture_moments
from interpolant.oracle import GaussianMixture

F64 = torch.float64


def _log_lik(op, x, y, s):
    r = (op(x) - y[None]).flatten(1)
    m = r.shape[1]
    return -0.5 * (r * r).sum(1) / s**2 - m * math.log(s) - 0.5 * m * math.log(2 * math.pi)


def _mix8d_cases():
    g = torch.Generator().manual_seed(3)
    return [
        ("inpaint", Inpaint(torch.tensor([1, 0, 1, 1, 0, 0, 1, 0])), 0.3),
        ("downsample", Downsample(2), 0.1),
        ("blur", Blur(3, 0.8), 0.05),
        ("linear", Linear(torch.randn(3, 8, generator=g)), 0.5),
        ("blur-2d-zeros", Reshaped(Blur(3, 0.7, padding="zeros"), (2, 2, 2)), 0.2),
    ]


@pytest.mark.parametrize("case", _mix8d_cases(), ids=lambda c: c[0])
def test_bayes_rule_pointwise(case):
    """log p(x | y) - log p(x) - log N(y; A x, s^2 I) is the same constant (-log p(y)) at every
    x, and that constant is -log sum_k w_k N(y; A m_k, A C_k A^T + s^2 I)."""
    _, op, s = case
    prior = GaussianMixture.preset("mix8d")
    g = torch.Generator().manual_seed(1)
    y = op(prior.sample(1, g))[0] + s * torch.randn(op.output_shape((8,)), generator=g, dtype=F64)
    post = prior.posterior(op, y, s)
    x = torch.cat([prior.sample(50, g), post.sample(50, g)])
    gap = post.log_prob(x) - prior.log_prob(x) - _log_lik(op, x, y, s)
    a = op.matrix((8,))
    noise = s * s * torch.eye(a.shape[0], dtype=F64)
    comps = [torch.distributions.MultivariateNormal(a @ m, a @ c @ a.T + noise)
             for m, c in zip(prior.means, prior.covs)]
    log_evidence = torch.logsumexp(torch.stack([torch.log(w) + d.log_prob(y.flatten())
                                                for w, d in zip(prior.weights, comps)]), 0)
    assert torch.allclose(gap, -log_evidence.expand_as(gap), atol=1e-9, rtol=0)


def test_evidence_by_numerical_integration():
    """In 2-D the normaliser p(y) = int p(x) N(y; A x, s^2) dx on a fine grid, and the posterior
    mean from the same grid, against the closed form."""
    prior = GaussianMixture.preset("aniso2d")
    op, s = Linear(torch.tensor([[0.8, -0.6]])), 0.3
    y = torch.tensor([0.9], dtype=F64)
    h = 0.01
    axis = torch.arange(-3.0, 3.0 + h / 2, h, dtype=F64)
    pts = torch.cartesian_prod(axis, axis)
    joint = torch.exp(prior.log_prob(pts) + _log_lik(op, pts, y, s))
    evidence = joint.sum() * h * h
    post = prior.posterior(op, y, s)
    one = pts[:1]
    closed = torch.exp(post.log_prob(one) - prior.log_prob(one) - _log_lik(op, one, y, s))
    assert abs(evidence / (1.0 / closed) - 1.0) < 1e-6
    mean_grid = (pts * joint[:, None]).sum(0) * h * h / evidence
    assert torch.allclose(mean_grid, mixture_moments(post)[0], atol=1e-6)


def test_importance_weighted_prior_samples():
    """Posterior mean and covariance against self-normalised importance sampling of the prior
    with weights N(y; A x, s^2), within 5 standard errors from the effective sample size."""
    prior = GaussianMixture.preset("mix8d")
    op, s = Inpaint(torch.tensor([0, 1, 0, 0, 1, 1, 0, 0])), 0.4
    y = torch.tensor([0.5, -0.3, 1.0], dtype=F64)
    post = prior.posterior(op, y, s)
    mean, cov = mixture_moments(post)
    x = prior.sample(400_000, torch.Generator().manual_seed(5))
    w = torch.softmax(_log_lik(op, x, y, s), 0)
    ess = 1.0 / (w * w).sum()
    assert ess > 2000
    mean_is = w @ x
    se = cov.diagonal().sqrt() / ess.sqrt()
    assert torch.all((mean_is - mean).abs() < 5 * se)
    cov_is = (x - mean).T @ ((x - mean) * w[:, None])
    se_cov = (cov.diagonal()[:, None] * cov.diagonal()[None] * 3 / ess).sqrt()
    assert torch.all((cov_is - cov).abs() < 5 * se_cov)
    assert not torch.allclose(mean, mixture_moments(prior)[0], atol=0.1)  # the data moved it


def test_noiseless_limit():
    """sigma_y = 0: every component mean reproduces y exactly, and the posterior is the limit
    of small sigma_y (means and weights)."""
    prior = GaussianMixture.preset("mix8d")
    op = Linear(torch.randn(3, 8, generator=torch.Generator().manual_seed(2)))
    y = torch.tensor([0.3, -1.0, 0.6], dtype=F64)
    exact = prior.posterior(op, y, 0.0)
    assert torch.allclose(exact.means @ op.matrix((8,)).T, y.expand(4, 3), atol=1e-10)
    near = prior.posterior(op, y, 1e-6)
    assert torch.allclose(exact.means, near.means, atol=1e-8)
    assert torch.allclose(exact.weights, near.weights, atol=1e-8)
    e = torch.linalg.eigvalsh(exact.covs)
    assert torch.all(e[:, :3] < 1e-10) and torch.all(e[:, 3:] > 1e-3)  # 3 measured directions


def test_labels_survive():
    """A class-conditional mixture keeps its component labels in the posterior (if supported)."""
    try:
        prior = GaussianMixture(torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2), None,
                                labels=torch.tensor([0, 1]))
    except TypeError:
        pytest.skip("GaussianMixture has no labels yet")
    post = prior.posterior(Inpaint(torch.tensor([1, 0])), torch.tensor([0.5]), 0.1)
    assert torch.equal(post.labels, prior.labels)


@pytest.mark.parametrize("args, match", [
    ((Inpaint(torch.tensor([1, 0])), torch.zeros(2), 0.1), r"y must have shape \(1,\)"),
    ((Inpaint(torch.tensor([1, 0])), torch.zeros(1), -0.1), "sigma_y must be a finite number >= 0"),
    ((Inpaint(torch.tensor([1, 0])), torch.tensor([math.nan]), 0.1), "NaN"),
    ((Linear(torch.ones(2, 2)), torch.zeros(2), 0.0), "singular"),
    ((torch.eye(2), torch.zeros(2), 0.1), "must be an interpolant.inverse operator"),
    ((Inpaint(torch.tensor([1, 0, 1])), torch.zeros(2), 0.1), r"shape \(B, 3\)"),
])
def test_bad_input(args, match):
    with pytest.raises(InterpolantError, match=match):
        GaussianMixture.preset("gauss2d").posterior(*args)
