"""Data-dependent couplings: the degraded source keeps the measurement, the exact coupled
oracle transports the source law to the data law, the run's objective is minimised by the
exact velocity (stationarity) and training approaches it; bad paths are refused."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.interpolants import (CoupledMixture, Degraded, GaussianSource, Interpolant,
                                      InterpolantModel, SourceObjective)
from interpolant.oracle import GaussianMixture
from interpolant.processes import residual

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _inpaint_2d(fill: float = 1.0) -> tuple[Degraded, torch.Tensor, torch.Tensor]:
    """Observe the first coordinate of 2-D points: ``Degraded`` and its ``(B, C)``."""
    source = Degraded(ip.inverse.Inpaint(torch.tensor([True, False])), fill)
    p = torch.diag(torch.tensor([1.0, 0.0], dtype=F64))
    return source, p, fill * (torch.eye(2, dtype=F64) - p)


@pytest.mark.parametrize("op", [ip.inverse.Inpaint(torch.arange(64).view(1, 8, 8) < 32),
                                ip.inverse.Downsample(2)], ids=["inpaint", "sr"])
def test_degraded_source_keeps_what_is_measured_and_fills_the_rest(op):
    x0 = torch.rand(5, 1, 8, 8, generator=_gen(0), dtype=F64) * 2 - 1
    zeta = torch.randn(5, 1, 8, 8, generator=_gen(1), dtype=F64)
    source = Degraded(op, fill=0.7)
    x1 = source(x0, zeta)
    assert torch.allclose(op(x1), op(x0), atol=1e-12)  # A x_1 = A x_0
    lost = x1 - op.project(x0)
    assert torch.allclose(lost, 0.7 * (zeta - op.project(zeta)), atol=1e-12)
    assert torch.allclose(source.from_measurement(op(x0), zeta), x1, atol=1e-12)
    if isinstance(op, ip.inverse.Inpaint):  # observed pixels kept, the hole is 0.7 zeta
        top = (slice(None), slice(None), slice(0, 4))
        bottom = (slice(None), slice(None), slice(4, 8))
        assert torch.equal(x1[top], x0[top]) and torch.allclose(x1[bottom], 0.7 * zeta[bottom])
    else:  # block means kept, the detail within each block has mean zero
        assert torch.allclose(torch.nn.functional.avg_pool2d(lost, 2), torch.zeros(5, 1, 4, 4, dtype=F64),
                              atol=1e-12)
    with pytest.raises(InterpolantError, match="shape"):
        source(x0, zeta[:, :, :4])


def test_coupled_oracle_is_the_degraded_source():
    source, b, c = _inpaint_2d(0.5)
    x0 = torch.randn(7, 2, generator=_gen(2), dtype=F64)
    zeta = torch.randn(7, 2, generator=_gen(3), dtype=F64)
    assert torch.allclose(source(x0, zeta), x0 @ b.T + zeta @ c.T, atol=1e-14)


def test_exact_coupled_flow_restores_the_data_law_and_keeps_the_measurement():
    """Heun on the exact velocity from exact source draws: the first coordinate (measured) is
    kept along the flow (its velocity is E[x1_0 - x0_0 | x_t] = 0), and the end points have
    the data law: mean and covariance of ``aniso2d`` within 4.5 Monte Carlo SE."""
    _, b, c = _inpaint_2d()
    oracle = CoupledMixture(GaussianMixture.preset("aniso2d"), b, c, Interpolant.linear())
    n = 2000
    _, x1 = oracle.sample(n, _gen(4))
    x = ip.sample(oracle.model(), x1, solver="heun", steps=40, grid="uniform", t_start=1.0,
                  t_end=0.0)
    assert torch.allclose(x[:, 0], x1[:, 0], atol=1e-10)
    law = oracle.p0
    mean = law.weights @ law.means
    second = torch.einsum("k,kde->de", law.weights,
                          law.covs + law.means[:, :, None] * law.means[:, None, :])
    cov = second - mean[:, None] * mean[None]
    assert torch.all((x.mean(0) - mean).abs() < 4.5 * cov.diagonal().sqrt() / math.sqrt(n))
    se_cov = torch.sqrt((cov.diagonal()[:, None] * cov.diagonal()[None] + cov**2) / n)
    assert torch.all((torch.cov(x.T) - cov).abs() < 4.5 * se_cov)
    # the independent coupling's flow (x_1 ~ N(0, I)) moves the measured coordinate
    wrong = ip.sample(CoupledMixture(law, 0 * b, torch.eye(2, dtype=F64),
                                     Interpolant.linear()).model(), x1, solver="heun", steps=40,
                      grid="uniform", t_start=1.0, t_end=0.0)
    assert (wrong[:, 0] - x1[:, 0]).abs().mean() > 0.1


@pytest.mark.parametrize("t", [0.3, 0.8])
def test_source_objective_is_stationary_at_the_exact_velocity(t):
    """``L(u + d h) - L(u - d h) = 4 d E[(u - T) . h]`` vanishes (within 4.5 SE) for the
    exact ``u`` and features ``h`` of ``x_t``, and is far from 0 for ``u`` off by 0.2."""
    source, b, c = _inpaint_2d()
    path = Interpolant.trig()
    oracle = CoupledMixture(GaussianMixture.preset("aniso2d"), b, c, path)
    objective = SourceObjective(path, source)
    n = 40_000
    x0 = oracle.p0.sample(n, _gen(5))
    zeta = torch.randn(n, 2, generator=_gen(6), dtype=F64)
    times = torch.full((n,), t, dtype=F64)
    a_, b_ = path.a(t), path.b(t)
    xt = a_ * x0 + b_ * source(x0, zeta)
    exact = oracle.velocity(xt, t)

    def derivative(u: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = (objective.per_sample(lambda x, s: u + 0.1 * h, x0, zeta, times)
                - objective.per_sample(lambda x, s: u - 0.1 * h, x0, zeta, times))
        return diff.mean(), diff.std() / math.sqrt(n)

    for h in (torch.ones_like(xt), xt, xt.flip(1), torch.tanh(xt)):
        mean, se = derivative(exact, h)
        assert mean.abs() < 4.5 * se, (mean, se)
    mean, se = derivative(exact + 0.2, torch.ones_like(xt))  # 4 (0.1) (0.2) more
    assert abs(mean - 0.08) < 4.5 * se and mean > 10 * se


def test_training_with_the_source_objective_approaches_the_exact_velocity():
    torch.manual_seed(0)
    source, b, c = _inpaint_2d()
    path = Interpolant.linear()
    p0 = GaussianMixture.preset("gauss2d")
    oracle = CoupledMixture(p0, b, c, path)
    net = ip.models.MLP(dim=2, hidden=48, depth=2).double()
    xt = oracle.marginal(0.5).sample(2000, _gen(7))
    exact = oracle.velocity(xt, 0.5)

    def rel_error() -> float:
        with torch.no_grad():
            learned = InterpolantModel(net, path)(xt, 0.5)
        return float((learned - exact).norm() / exact.norm())

    before = rel_error()
    config = ip.training.TrainConfig(steps=300, batch_size=128, lr=4e-3, clip_grad=None,
                                     label_dropout=0.0, progress=False, log_every=300)
    ip.training.Trainer(net, ip.paths.Linear(), p0.sample(4096, _gen(8)), None, config,
                        objective=SourceObjective(path, source)).run()
    after = rel_error()
    assert after < 0.2 and after < 0.25 * before, (before, after)


def test_bad_paths_and_sources_are_refused():
    with pytest.raises(InterpolantError, match=r"gamma\(0\) must be 0"):
        Interpolant(lambda t: 1 - t, lambda t: t, lambda t: 0.1, lambda t: -1.0, lambda t: 1.0,
                    lambda t: 0.0)
    with pytest.raises(InterpolantError, match="gamma must be >= 0|must be >= 0"):
        Interpolant.linear(-0.5)
    with pytest.raises(InterpolantError, match=r"gamma\(t\) = 0 throughout"):
        SourceObjective(Interpolant.linear(0.5), GaussianSource())
    with pytest.raises(InterpolantError, match=r"gamma\(1\) = 0"):
        SourceObjective(residual.rddm(1.0), GaussianSource())
    with pytest.raises(InterpolantError, match="linear operator"):
        Degraded(lambda x: x)
    with pytest.raises(InterpolantError, match="B and C must be"):
        CoupledMixture(GaussianMixture.preset("aniso2d"), torch.eye(3), torch.eye(3),
                       Interpolant.linear())
