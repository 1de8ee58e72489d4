"""Trajectory curvature under couplings (Lee et al. 2023), the coupled-mixture oracle, and
alpha-(de)blending as Euler (Heitz et al. 2023)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.interpolants import Interpolant, TwoSidedMixture
from interpolant.processes import curvature as cv
from interpolant.training.couplings import OT

F64 = torch.float64
G = torch.Generator().manual_seed(0)
M0 = torch.randn(6, 2, generator=G, dtype=F64) * 1.5
M1 = torch.randn(5, 2, generator=G, dtype=F64)
S = 0.3


def _iso(means):
    return ip.oracle.GaussianMixture(means, S**2 * torch.eye(2, dtype=F64).expand(len(means),
                                                                                   2, 2))


def test_a_paired_mixture_of_all_pairs_is_the_independent_two_sided_oracle():
    path = Interpolant.linear(noise=0.5)
    pairs = cv.PairedMixture(M0.repeat_interleave(5, 0), M1.repeat(6, 1), S, path)
    exact = TwoSidedMixture(_iso(M0), _iso(M1), path)
    x = torch.randn(64, 2, generator=G, dtype=F64) * 2
    for t in (0.1, 0.5, 0.93):
        torch.testing.assert_close(pairs.velocity(x, t), exact.velocity(x, t), rtol=1e-11,
                                   atol=1e-12)


def test_curvature_and_kinetic_energy_of_two_independent_gaussians_in_closed_form():
    """x_0 ~ N(0, s0^2 I), x_1 ~ N(0, s1^2 I), linear path: u = c(t) x with
    c = (t s1^2 - (1-t) s0^2) / v(t), v = (1-t)^2 s0^2 + t^2 s1^2, so E int |u|^2 =
    D int c^2 v dt and S = D (s0^2 + s1^2) - that (quadrature, independent of the code)."""
    s0, s1, dim = 0.5, 1.0, 2
    p0 = ip.oracle.GaussianMixture(torch.zeros(1, 2), s0**2 * torch.eye(2)[None])
    p1 = ip.oracle.GaussianMixture(torch.zeros(1, 2), s1**2 * torch.eye(2)[None])
    path = Interpolant.linear()
    oracle = TwoSidedMixture(p0, p1, path)
    pairs = lambda n, g: (p0.sample(n, g), p1.sample(n, g))  # noqa: E731
    v = lambda t: (1 - t) ** 2 * s0**2 + t**2 * s1**2  # noqa: E731
    ke = dim * integrate.quad(lambda t: (t * s1**2 - (1 - t) * s0**2) ** 2 / v(t), 0, 1)[0]
    n = 8000
    got_ke = cv.kinetic_energy(oracle.velocity, pairs, path, n=n)
    got_s = cv.curvature(oracle.velocity, pairs, path, n=n)
    want_s = dim * (s0**2 + s1**2) - ke
    assert abs(got_ke - ke) < 4 * ke * math.sqrt(2 / n)
    assert abs(got_s - want_s) < 4 * want_s * math.sqrt(2 / n)


def test_minibatch_ot_pairs_straighten_the_flow():
    """Exact curvature of the flow of a coupled mixture: all pairs (independent) against the
    pairs of the exact minibatch-OT assignment of the same two clouds."""
    g = torch.Generator().manual_seed(1)
    data = torch.randn(24, 2, generator=g, dtype=F64) * 0.4 + torch.tensor([2.0, 0.0], dtype=F64)
    data[::2] -= torch.tensor([4.0, 0.0], dtype=F64)
    noise = torch.randn(24, 2, generator=g, dtype=F64)
    path = Interpolant.linear()
    ind = cv.PairedMixture(data.repeat_interleave(24, 0), noise.repeat(24, 1), 0.05, path)
    ot = cv.PairedMixture(data, OT()(data, noise), 0.05, path)
    s_ind = cv.curvature(ind.velocity, ind.sample, path, n=512, nodes=8)
    s_ot = cv.curvature(ot.velocity, ot.sample, path, n=512, nodes=8)
    assert s_ot < 0.2 * s_ind


def test_alpha_deblending_is_euler_on_the_linear_interpolant():
    oracle = TwoSidedMixture(_iso(M0), _iso(M1), Interpolant.linear())
    x1 = oracle.marginal(1.0).sample(32, G)
    iadb = cv.iadb_sample(lambda x, alpha: -oracle.velocity(x, 1.0 - alpha), x1, steps=25)
    euler = ip.sample(oracle.model(), x1, solver="euler", steps=25, grid="uniform")
    torch.testing.assert_close(iadb, euler, rtol=0, atol=1e-12)


def test_paired_means_must_match():
    with pytest.raises(InterpolantError, match="paired means"):
        cv.PairedMixture(M0, M1, S, Interpolant.linear())


def test_the_linear_path_is_kinetic_optimal_for_a_point_mass():
    """x_0 = m (a point mass), x_1 ~ N(0, I): every trajectory is its pair's curve, so S = 0,
    and E int |u|^2 is D + |m|^2 on the linear (CondOT) path against pi^2/8 (D + |m|^2) on
    the trigonometric one (Shaul et al. 2023: CondOT is kinetic-optimal)."""
    m = torch.tensor([[0.8, -0.6]], dtype=F64)
    p0 = ip.oracle.GaussianMixture(m, 1e-12 * torch.eye(2, dtype=F64)[None])
    p1 = ip.oracle.GaussianMixture(torch.zeros(1, 2, dtype=F64), torch.eye(2, dtype=F64)[None])
    pairs = lambda n, g: (p0.sample(n, g), p1.sample(n, g))  # noqa: E731
    base, n = 2 + float(m.pow(2).sum()), 8000
    for path, factor in ((Interpolant.linear(), 1.0), (Interpolant.trig(), math.pi**2 / 8)):
        field = TwoSidedMixture(p0, p1, path).velocity
        assert abs(cv.kinetic_energy(field, pairs, path, n=n) - factor * base) < \
            4 * factor * base * math.sqrt(2 / n)
        assert cv.curvature(field, pairs, path, n=512) < 1e-6


def test_a_coupling_of_two_shapes_is_refused():
    pairs = lambda n, g: (torch.zeros(n, 2), torch.zeros(n, 3))  # noqa: E731
    with pytest.raises(InterpolantError, match="must be equal"):
        cv.curvature(lambda x, t: x, pairs, Interpolant.linear(), n=4)
