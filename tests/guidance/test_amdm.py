"""AMDM (aggregation of multiple diffusion models): outside its window every model samples
alone, exactly as DDIM; the spherical aggregation keeps the exact law of a centred Gaussian
oracle where a convex average shrinks it; the manifold step moves each model by exactly p
toward its own update."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.guidance.amdm import amdm, spherical_weights

F64 = torch.float64
GMM = ip.oracle.GaussianMixture


def _labelled():
    base = GMM.preset("aniso2d")
    return GMM(base.means, base.covs, base.weights, labels=torch.arange(8) % 2)


def _last(states):
    for state in states:
        pass
    return state


def test_outside_the_window_each_model_is_plain_ddim():
    gmm, path = _labelled(), ip.paths.VPLinear()
    den = gmm.denoiser(path)
    x = torch.randn(2, 16, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    conds = [torch.zeros(16, dtype=torch.long), torch.ones(16, dtype=torch.long)]
    last = _last(amdm([den, den], x, 12, window=(0.0, 0.0), conds=conds))
    assert last.nfe == 24 and last.mixed is None
    for i in range(2):
        plain = ip.sample(den, x[i], "ddim", 12, cond=conds[i])
        assert torch.equal(last.xs[i], plain)


def test_spherical_aggregation_keeps_the_exact_gaussian_law():
    """Two runs of one centred Gaussian model merged once (p = 0) end with the covariance of
    one DDIM run (the same law); the convex average (0.5, 0.5) ends with half of it."""
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=F64)
    gmm, path = GMM(torch.zeros(1, 2, dtype=F64), cov[None]), ip.paths.VPLinear()
    den = gmm.denoiser(path)
    x = torch.randn(2, 2500, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    w = 0.5 ** 0.5
    one_run = ip.sample(den, x[0], "ddim", 10).T.cov()
    last = _last(amdm([den, den], x, 10, omega=w, p=0.0, window=(1.0, 0.95)))
    torch.testing.assert_close(last.xs[0].T.cov(), one_run, rtol=0, atol=0.06)
    convex = _last(amdm([den, den], x / (2 * w), 10, omega=w, p=0.0, window=(1.0, 0.95)))
    assert float((convex.xs[0].T.cov() - 0.5 * one_run).abs().max()) < 0.06


def test_manifold_step_moves_p_toward_each_models_own_update():
    gmm, path = _labelled(), ip.paths.VPLinear()
    den = gmm.denoiser(path)
    x = torch.randn(2, 8, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    conds = [torch.zeros(8, dtype=torch.long), torch.ones(8, dtype=torch.long)]
    first = next(amdm([den, den], x, 10, omega=0.6, p=[0.05, 0.2], conds=conds))
    t = torch.full((8,), 1.0, dtype=F64)
    table = ip.solvers.ddim.ddim_table(path, torch.tensor([1.0, first.t], dtype=F64), 0.0)[0]
    mus = [table[0] * x[i] + table[1] * den(x[i], t, conds[i], "x0") for i in range(2)]
    torch.testing.assert_close(first.mixed, 0.8 * mus[0] + 0.6 * mus[1])
    for mu, p, xi in zip(mus, [0.05, 0.2], first.xs):
        moved = xi - first.mixed
        torch.testing.assert_close(moved.norm(dim=1), torch.full((8,), p, dtype=F64))
        toward = (mu - first.mixed) / (mu - first.mixed).norm(dim=1, keepdim=True)
        torch.testing.assert_close(moved / p, toward)


def test_amdm_bad_input():
    den = _labelled().denoiser(ip.paths.VPLinear())
    x = torch.zeros(2, 3, 2, dtype=F64)
    with pytest.raises(InterpolantError, match="at least two"):
        next(amdm([den], x))
    with pytest.raises(InterpolantError, match="one starting state per model"):
        next(amdm([den, den], x[0]))
    with pytest.raises(InterpolantError, match="squares summing to 1"):
        spherical_weights([0.5, 0.5], 2)
    with pytest.raises(InterpolantError, match="step sizes"):
        next(amdm([den, den], x, p=-1.0))
    with pytest.raises(InterpolantError, match="one path"):
        next(amdm([den, _labelled().denoiser(ip.paths.EDM())], x))
