"""Reflow (Liu et al. 2022; Improved Rectified Flows, Lee et al. 2024) against the oracle."""

from __future__ import annotations

import math

import torch

import interpolant as ip
from interpolant import fewstep as fs

from .conftest import small_mlp


def test_u_shaped_density_matches_its_cdf():
    """Kolmogorov-Smirnov against F(t) = (e^{at} - e^{a(1-t)} + e^a - 1) / (2 (e^a - 1))."""
    a, n = 4.0, 20_000
    t = fs.u_shaped(n, a, torch.Generator().manual_seed(0)).sort().values
    cdf = (torch.exp(a * t) - torch.exp(a * (1 - t)) + math.exp(a) - 1) / (2 * math.expm1(a))
    emp = torch.arange(1, n + 1, dtype=torch.float64) / n
    assert float((cdf - emp).abs().max()) < 1.63 / math.sqrt(n)  # 1% level


def test_straightness_is_zero_for_a_straight_flow_and_positive_for_a_mixture(oracle):
    """A point mass on the rectified-flow path moves on straight lines (v = x1 - mu)."""
    path = ip.paths.Linear()
    point = ip.oracle.GaussianMixture(torch.tensor([[0.7, -0.4]]),
                                      1e-12 * torch.eye(2, dtype=torch.float64)[None])
    x1 = oracle.x1[:100]
    assert fs.straightness(point.denoiser(path), x1, steps=20) < 1e-10
    assert fs.straightness(oracle.gmm.denoiser(path), x1, steps=20) > 0.1


def test_pairs_are_the_teachers_ode_endpoints(oracle):
    """With the exact teacher the coupling converges to the exact flow map at the solver's
    order (DPM-Solver-3, order 3: 60 -> 120 steps divides the RMS error by ~2^3)."""
    errs = []
    for steps in (60, 120):
        x0, x1 = fs.reflow_pairs(oracle.teacher, oracle.x1, solver="dpm3", steps=steps)
        assert x1 is oracle.x1
        errs.append(oracle.error(x0))
    assert errs[1] < 1e-4 and errs[0] / errs[1] > 4.5, errs


def test_one_reflow_round_straightens_the_flow(oracle):
    """Curvature: S of the exact flow of the independent coupling (the oracle on Linear) vs S
    of the reflowed velocity, both integrated with 50 Euler steps; and one Euler step of the
    reflowed model lands near the exact flow map (far nearer than one teacher DDIM step)."""
    g = torch.Generator().manual_seed(4)
    student = fs.distill(oracle.teacher, "reflow", student=small_mlp(), data=oracle.data,
                         steps=300, pairs=2000, pair_solver="dpm++2m", pair_steps=20,
                         batch_size=128, generator=g)
    x1 = oracle.x1[:200]
    before = fs.straightness(oracle.gmm.denoiser(ip.paths.Linear()), x1, steps=50)
    after = fs.straightness(student.denoiser, x1, steps=50)
    assert after < 0.05 * before, (after, before)
    one = oracle.error(fs.sample(student, oracle.x1, nfe=1))
    ddim1 = oracle.error(ip.sample(oracle.teacher, oracle.x1, solver="ddim", steps=1))
    assert one < 0.2 * ddim1, (one, ddim1)
