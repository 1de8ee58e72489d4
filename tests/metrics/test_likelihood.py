"""The probability-flow ODE likelihood against exact Gaussian-mixture densities."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.metrics import bits_per_dim, dequantize, log_likelihood

GMM = ip.oracle.GaussianMixture.preset("aniso2d")


@pytest.mark.parametrize("path", [ip.paths.VPLinear(), ip.paths.Linear()], ids=["vp", "linear"])
def test_ode_likelihood_of_a_mixture_is_its_marginal_at_t_end(path):
    # With the exact velocity the ODE carries p_1 onto p_{t_min} exactly, so the computed
    # density is the t_min marginal, not the data density at t = 0 (which differs by 0.04-0.05
    # nats here, far above the tolerance). RK4 on the log-SNR grid, 96 steps (VP) or 128
    # (Linear): maximum error 2.6e-4 / 1.8e-4 nats on these points, asserted below 1e-3.
    den = GMM.denoiser(path)
    x = GMM.marginal(path, path.t_min).sample(48, torch.Generator().manual_seed(0))
    exact = GMM.marginal(path, path.t_min).log_prob(x)
    prior = GMM.marginal(path, 1.0).log_prob
    steps = 128 if isinstance(path, ip.paths.Linear) else 96
    ll = log_likelihood(den, x, steps=steps, prior=prior)
    assert (ll - exact).abs().max() < 1e-3
    assert (GMM.log_prob(x) - exact).abs().max() > 0.02
    # Same trajectory, two priors: their difference is the prior's error at x_1.
    default, exact_prior = (log_likelihood(den, x[:8], steps=16, prior=p) for p in (None, prior))
    if isinstance(path, ip.paths.Linear):
        # alpha(1) = 0: the default prior N(0, sigma(1)^2 I) is the exact p_1.
        assert torch.allclose(default, exact_prior, atol=1e-12, rtol=0)
    else:
        # alpha(1) = 6.7e-3: the default prior is an approximation, off by about 1e-2 nats.
        assert (default - exact_prior).abs().max() > 1e-3


def test_dop853_reference_is_accurate():
    path = ip.paths.VPLinear()
    x = GMM.marginal(path, path.t_min).sample(8, torch.Generator().manual_seed(1))
    exact = GMM.marginal(path, path.t_min).log_prob(x)
    ll = log_likelihood(GMM.denoiser(path), x, method="dop853", rtol=1e-8, atol=1e-8,
                        prior=GMM.marginal(path, 1.0).log_prob)
    assert (ll - exact).abs().max() < 1e-6


def test_hutchinson_probes():
    path = ip.paths.Linear()
    den = GMM.denoiser(path)
    x = GMM.sample(200, torch.Generator().manual_seed(2))
    exact_div = log_likelihood(den, x, steps=12)
    # In 2-D, the probes (1, 1) and (1, -1) average e^T J e to J11 + J22 exactly.
    both = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)[:, None, :]
    probes = both.expand(2, x.shape[0], 2)
    ll_pair = log_likelihood(den, x, steps=12, exact_divergence=False, probes=probes)
    assert torch.allclose(ll_pair, exact_div, atol=1e-10, rtol=0)
    # One random Rademacher probe per sample: unbiased, with visible per-sample noise.
    g = torch.Generator().manual_seed(3)
    ll_one = log_likelihood(den, x, steps=12, exact_divergence=False, generator=g)
    err = ll_one - exact_div
    assert err.std() > 1e-3
    assert err.mean().abs() < 4 * err.std() / math.sqrt(len(err))
    ll_gauss = log_likelihood(den, x, steps=12, exact_divergence=False, probe="gaussian",
                              n_probes=4, generator=g)
    err = ll_gauss - exact_div
    assert err.mean().abs() < 4 * err.std() / math.sqrt(len(err))


class _GaussianX0(torch.nn.Module):
    """Exact x0-prediction for data N(mu, s0^2 I) on ``path``, differentiable in ``mu``."""

    def __init__(self, path: ip.paths.GaussianPath, s0: float) -> None:
        super().__init__()
        self.path, self.s0 = path, s0
        self.mu = torch.nn.Parameter(torch.tensor([0.5, -0.3], dtype=torch.float64))

    def forward(self, x, t, cond=None):
        a, s = self.path.alpha(t)[:, None], self.path.sigma(t)[:, None]
        gain = a * self.s0**2 / (a * a * self.s0**2 + s * s)
        return self.mu + gain * (x - a * self.mu)


def test_gradients_flow_through_the_likelihood():
    # log N(x; a mu, v I) at t_end, v = a^2 s0^2 + s^2: d/dmu = a (x - a mu) / v and
    # d/dx = -(x - a mu) / v (the score at t_end). Linear path: the default prior is exact.
    path, s0 = ip.paths.Linear(), 0.4
    model = _GaussianX0(path, s0)
    den = ip.Denoiser(model, path, prediction="x0")
    x = (0.5 + 0.6 * torch.randn(6, 2, generator=torch.Generator().manual_seed(4),
                                 dtype=torch.float64)).requires_grad_(True)
    ll = log_likelihood(den, x, steps=32, create_graph=True)
    ll.sum().backward()
    a, s = path.alpha(path.t_min), path.sigma(path.t_min)
    v = a * a * s0**2 + s * s
    mu = model.mu.detach()
    resid = x.detach() - a * mu
    exact = -0.5 * (resid.square().sum(1) / v + 2 * math.log(2 * math.pi * v))
    assert torch.allclose(ll.detach(), exact, atol=1e-4, rtol=0)  # RK4 error here: 2e-5
    assert torch.allclose(model.mu.grad, (a * resid / v).sum(0), rtol=1e-5, atol=0)
    assert torch.allclose(x.grad, -resid / v, rtol=1e-5, atol=0)
    # Without create_graph the result is detached.
    assert not log_likelihood(den, x, steps=4).requires_grad


def test_bits_per_dim_of_a_uniform_density():
    # Uniform on [-1, 1]^D has log p = -D log 2: 8 bits with 256 bins, 4 with bins of 1/8.
    d = 64
    log_p = torch.full((3,), -d * math.log(2.0), dtype=torch.float64)
    assert torch.allclose(bits_per_dim(log_p, d), torch.full((3,), 8.0, dtype=torch.float64))
    assert torch.allclose(bits_per_dim(log_p, d, bin_width=1 / 8), torch.full((3,), 4.0,
                                                                             dtype=torch.float64))
    x = torch.linspace(-1, 1, 17, dtype=torch.float64).repeat(100, 1)
    y = dequantize(x, 1 / 8, torch.Generator().manual_seed(5))
    assert (y - x).abs().max() <= 1 / 16 and (y - x).std() > 0.03  # uniform std: 0.036


def test_likelihood_rejects_bad_input():
    den = GMM.denoiser(ip.paths.Linear())
    x = GMM.sample(4, torch.Generator().manual_seed(6))
    with pytest.raises(ip.InterpolantError, match="Denoiser"):
        log_likelihood(lambda x, t, c: x, x)
    with pytest.raises(ip.InterpolantError, match="NaN"):
        log_likelihood(den, torch.full((4, 2), float("nan"), dtype=torch.float64))
    with pytest.raises(ip.InterpolantError, match="probes must have shape"):
        log_likelihood(den, x, exact_divergence=False, probes=torch.ones(2, 3, 2))
    with pytest.raises(ip.InterpolantError, match="t_end"):
        log_likelihood(den, x, t_end=1.0)
