"""Minimizing Trajectory Curvature: the KL in closed form, the affine encoder's exact coupled
oracle, and the paper's claim on the exact oracle: joint training cuts the exact curvature of
the learned coupling well below the independent coupling's, while the velocity learns that
coupling's exact field."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.interpolants import CoupledMixture, Interpolant, InterpolantModel
from interpolant.interpolants.mtc import GaussianEncoder, MTCObjective, gaussian_kl
from interpolant.oracle import GaussianMixture
from interpolant.processes.curvature import curvature

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_kl_is_the_closed_form_of_torch_distributions():
    mu = torch.randn(6, 3, generator=_gen(0), dtype=F64)
    log_sigma = 0.5 * torch.randn(6, 3, generator=_gen(1), dtype=F64)
    q = torch.distributions.Normal(mu, log_sigma.exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    want = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(gaussian_kl(mu, log_sigma), want, atol=1e-12)


def test_affine_encoder_oracle_has_the_law_of_its_samples():
    """``coupled_mixture`` translates (A, c, sigma) rightly: the oracle's exact x_1 law has the
    mean and covariance of the encoder's own draws (4.5 SE), and its pairs are the encoder's."""
    torch.manual_seed(0)
    enc = GaussianEncoder(2, hidden=0).double()
    with torch.no_grad():
        enc.mean.weight.copy_(torch.tensor([[0.6, -0.2], [0.1, 0.4]]))
        enc.mean.bias.copy_(torch.tensor([0.3, -0.5]))
        enc.log_sigma.copy_(torch.tensor([-0.4, 0.2]))
    p0 = GaussianMixture.preset("aniso2d")
    oracle = enc.coupled_mixture(p0, Interpolant.linear())
    n = 20_000
    x0 = p0.sample(n, _gen(2))
    with torch.no_grad():
        x1 = enc.sample(x0, torch.randn(n, 2, generator=_gen(3), dtype=F64))
    law = oracle.marginal(1.0)
    mean = law.weights @ law.means
    second = torch.einsum("k,kde->de", law.weights,
                          law.covs + law.means[:, :, None] * law.means[:, None, :])
    cov = second - mean[:, None] * mean[None]
    assert torch.all((x1.mean(0) - mean).abs() < 4.5 * cov.diagonal().sqrt() / math.sqrt(n))
    se_cov = torch.sqrt((cov.diagonal()[:, None] * cov.diagonal()[None] + cov**2) / n)
    assert torch.all((torch.cov(x1.T) - cov).abs() < 4.5 * se_cov)


def test_joint_training_straightens_the_exact_flow_of_the_learned_coupling():
    torch.manual_seed(0)
    p0, path = GaussianMixture.preset("aniso2d"), Interpolant.linear()
    independent = CoupledMixture(p0, torch.zeros(2, 2, dtype=F64), torch.eye(2, dtype=F64), path)
    before = curvature(independent.velocity, independent.sample, path, n=4000)
    net = ip.models.MLP(dim=2, hidden=64, depth=2).double()
    encoder = GaussianEncoder(2, hidden=0).double()
    config = ip.training.TrainConfig(steps=150, batch_size=256, lr=1e-2, clip_grad=None,
                                     label_dropout=0.0, progress=False, log_every=150)
    ip.training.Trainer(net, ip.paths.Linear(), p0.sample(4096, _gen(1)), None, config,
                        objective=MTCObjective(encoder, path, beta=1.0)).run()
    learned = encoder.coupled_mixture(p0, path)
    after = curvature(learned.velocity, learned.sample, path, n=4000)
    assert after < 0.4 * before, (before, after)  # measured: 2.79 -> 0.72
    with torch.no_grad():  # the KL keeps the noise end close to N(0, I)
        kl = gaussian_kl(*encoder(p0.sample(2000, _gen(4)))).mean()
    assert 0.1 < kl < 1.5, kl
    with torch.no_grad():  # v learned the field of the learned coupling, not the independent's
        xt = learned.marginal(0.7).sample(2000, _gen(5))
        exact = learned.velocity(xt, 0.7)
        error = (InterpolantModel(net, path)(xt, 0.7) - exact).norm() / exact.norm()
        other = (independent.velocity(xt, 0.7) - exact).norm() / exact.norm()
    assert error < 0.45 and error < 0.3 * other, (error, other)  # measured 0.35, 1.34


def test_bad_mtc_settings_are_refused():
    with pytest.raises(InterpolantError, match="beta must be > 0"):
        MTCObjective(GaussianEncoder(2), beta=0.0)
    with pytest.raises(InterpolantError, match=r"gamma\(t\) = 0 throughout"):
        MTCObjective(GaussianEncoder(2), Interpolant.linear(0.3))
    with pytest.raises(InterpolantError, match=r"points \(B, 2\)"):
        GaussianEncoder(2)(torch.zeros(4, 3))
    with pytest.raises(InterpolantError, match="affine encoder"):
        GaussianEncoder(2, hidden=8).coupled_mixture(GaussianMixture.preset("aniso2d"),
                                                     Interpolant.linear())
