"""BoundaryDiffusion's mixing time: Pinsker's bound with the exact Gaussian KL between the
forward kernel q(x_t | x0) and the prior; the earliest time it reaches eps, where the exact
total variation (1-D, by quadrature) is below eps; fit_boundary's automatic t."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.inversion import fit_boundary
from interpolant.inversion.boundary import mixing_bound, mixing_time

F64 = torch.float64
MVN = torch.distributions.MultivariateNormal


@pytest.mark.parametrize("path", [ip.paths.VPLinear(), ip.paths.EDM()], ids=["vp", "edm"])
def test_bound_is_pinsker_with_the_exact_kl(path):
    x0 = torch.randn(3, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    t = 0.7
    a, s, s1 = path.alpha(t), path.sigma(t), path.sigma(1.0)
    prior = MVN(torch.zeros(4, dtype=F64), s1**2 * torch.eye(4, dtype=F64))
    kl = torch.stack([torch.distributions.kl_divergence(
        MVN(a * x, s**2 * torch.eye(4, dtype=F64)), prior) for x in x0])
    torch.testing.assert_close(mixing_bound(path, x0, t), (kl / 2).sqrt())


def test_mixing_time_is_where_the_chain_has_mixed():
    """1-D: at t_m the bound is eps (the earliest such time: just before it exceeds eps), and
    the exact total variation, by quadrature, is below it."""
    path, eps = ip.paths.VPLinear(), 0.1
    x0 = torch.tensor([[1.5], [-0.7], [0.2]], dtype=F64)
    t_m = mixing_time(path, x0, eps)
    assert float(mixing_bound(path, x0, t_m).max()) <= eps
    assert float(mixing_bound(path, x0, t_m - 1e-3).max()) > eps
    grid = torch.linspace(-12, 12, 200001, dtype=F64)
    prior = torch.distributions.Normal(0.0, path.sigma(1.0))
    for x in x0[:, 0]:
        kernel = torch.distributions.Normal(path.alpha(t_m) * x, path.sigma(t_m))
        tv = 0.5 * torch.trapezoid((kernel.log_prob(grid).exp()
                                    - prior.log_prob(grid).exp()).abs(), grid)
        assert float(tv) <= eps


def test_fit_boundary_picks_the_mixing_time():
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    x, comp = gmm.sample(64, torch.Generator().manual_seed(1), return_labels=True)
    den = gmm.denoiser(ip.paths.VPLinear())
    boundary = fit_boundary(den, x, (comp < 4).long(), t=None, steps=8)
    assert boundary.t == mixing_time(den.path, x)
    with pytest.raises(InterpolantError, match="total variation"):
        mixing_time(den.path, x, 1.5)
