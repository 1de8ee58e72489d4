"""Consistency models against the exact flow of a Gaussian mixture (Song et al. 2023)."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant import fewstep as fs
from interpolant.errors import InterpolantError

from .conftest import small_mlp


def test_boundary_condition_on_every_path(path):
    """f(x, t_min) = x exactly, whatever the network; the coefficients stay finite up to t = 1."""
    model = fs.ConsistencyModel(small_mlp(), path).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.full((5,), path.t_min, dtype=torch.float64)
    assert torch.allclose(model(x, t), x, rtol=0, atol=1e-12)
    ts = torch.linspace(path.t_min, 1.0, 11, dtype=torch.float64)
    assert all(torch.isfinite(c).all() for c in model.coefficients(ts))


def test_pseudo_huber_limits():
    """~|d|^2 / 2c for |d| << c, |d| - c for |d| >> c, c = 0.00054 sqrt(dim) by default."""
    a = torch.zeros(3, 4, dtype=torch.float64)
    small = torch.full((3, 4), 1e-6, dtype=torch.float64)
    c = 0.00054 * 2.0
    assert torch.allclose(fs.pseudo_huber(small, a), torch.full((3,), 4e-12 / (2 * c),
                                                                dtype=torch.float64), rtol=1e-5)
    big = torch.full((3, 4), 10.0, dtype=torch.float64)
    assert torch.allclose(fs.pseudo_huber(big, a), torch.full((3,), 20.0 - c,
                                                              dtype=torch.float64), rtol=1e-9)


def _exact_step(oracle):
    return lambda x, a, b: oracle.gmm.flow(oracle.path, x, a, b)


def _grid_batch(oracle, n=6, size=48):
    ts = fs.consistency_grid(oracle.path, n)
    g = torch.Generator().manual_seed(1)
    idx = torch.arange(size) % n
    x0 = oracle.data[:size]
    t_next = ts[idx + 1]
    x_next = oracle.path.sample(x0, t_next, torch.randn(x0.shape, generator=g,
                                                        dtype=torch.float64))
    return ts, idx, x_next


def test_cd_pairs_follow_each_rows_interval(oracle):
    """The teacher step of each row runs over that row's own interval [t_{n+1} -> t_n]: a
    sub-stepped Heun teacher step converges to the exact flow of the oracle at order 2."""
    ts, idx, x_next = _grid_batch(oracle)
    exact = fs.cd_pairs(_exact_step(oracle), x_next, idx, ts)
    for i in range(6):
        rows = idx == i
        want = oracle.gmm.flow(oracle.path, x_next[rows], float(ts[i + 1]), float(ts[i]))
        assert torch.allclose(exact[rows], want, rtol=0, atol=1e-12)
    errs = [float((fs.cd_pairs(fs.teacher_step(oracle.teacher, "heun", substeps=k), x_next,
                               idx, ts) - exact).abs().max()) for k in (4, 8)]
    assert errs[1] < 5e-3 and errs[0] / errs[1] > 3.0, errs  # order 2: ratio 4


def test_exact_consistency_function_and_loss(oracle):
    """f*(x, t) = Phi(x, t -> t_min) is constant along exact trajectories; the CD loss with the
    exact teacher step is zero at f* (to the flow's tolerance) and clearly positive for a
    perturbed f, whose loss is d(f(x_{n+1}), f(Phi(x_{n+1}, t_{n+1} -> t_n))) exactly."""
    ts, idx, x_next = _grid_batch(oracle, n=4, size=24)
    t_next, t_prev = ts[idx + 1], ts[idx]
    x_prev = fs.cd_pairs(_exact_step(oracle), x_next, idx, ts)
    # rows of index i start at ts[i + 1] (the step's "from" time; index -1 is ts[0])
    to_min = fs.cd_pairs(lambda y, a, b: oracle.gmm.flow(oracle.path, y, a, oracle.path.t_min),
                         torch.cat([x_next, x_prev]), torch.cat([idx, idx - 1]), ts)
    table = {x_next.data_ptr(): to_min[:24], x_prev.data_ptr(): to_min[24:]}

    def f(x, t):  # f* at the two batches of the test (each flow solved once)
        return table[x.data_ptr()]

    assert float((f(x_next, t_next) - f(x_prev, t_prev)).abs().max()) < 1e-8
    assert fs.consistency_loss(f, f, x_next, t_next, x_prev, t_prev) < 1e-16

    def perturbed(x, t):
        return f(x, t) + 0.05 * ip.paths.broadcast_time(t, x) * torch.sin(x)

    loss = fs.consistency_loss(perturbed, perturbed, x_next, t_next, x_prev, t_prev)
    assert loss > 1e-6
    direct = ((perturbed(x_next, t_next) - perturbed(x_prev, t_prev)) ** 2).sum(1).mean()
    assert math.isclose(float(loss), float(direct), rel_tol=1e-12)


@pytest.fixture(scope="module")
def cd_student(oracle):
    g = torch.Generator().manual_seed(3)
    return fs.distill(oracle.teacher, "cd", student=small_mlp(), data=oracle.data, steps=200,
                      n=10, solver="heun", batch_size=128, sigma_data=1.0, generator=g, eta=0.0)


def test_one_step_cd_student_beats_the_teachers_one_and_two_ddim_steps(oracle, cd_student):
    one = oracle.error(fs.sample(cd_student, oracle.x1, nfe=1))
    ddim1 = oracle.error(ip.sample(oracle.teacher, oracle.x1, solver="ddim", steps=1))
    ddim2 = oracle.error(ip.sample(oracle.teacher, oracle.x1, solver="ddim", steps=2))
    assert one < 0.3 * ddim1 and one < 0.6 * ddim2, (one, ddim1, ddim2)


def test_multistep_sampling_is_deterministic_at_eta_zero(oracle, cd_student):
    a = fs.sample(cd_student, oracle.x1, nfe=2, generator=torch.Generator().manual_seed(0))
    b = fs.sample(cd_student, oracle.x1, nfe=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


@pytest.mark.parametrize("solver", ["ddim", "euler", "heun"])
def test_batched_teacher_step_equals_the_solver_per_interval(oracle, solver):
    """one_step_pairs steps every row over its own interval exactly as one step of the
    solver does, with one teacher evaluation for the whole batch (two for Heun)."""
    ts, idx, x_next = _grid_batch(oracle)
    den = oracle.gmm.denoiser(oracle.path)
    fast = fs.one_step_pairs(den, x_next, ts[idx + 1], ts[idx], solver)
    assert den.nfe == (2 if solver == "heun" else 1)
    slow = fs.cd_pairs(fs.teacher_step(oracle.teacher, solver, 1), x_next, idx, ts)
    assert torch.allclose(fast, slow, rtol=0, atol=1e-12)
    with pytest.raises(InterpolantError, match="batched teacher step"):
        fs.one_step_pairs(den, x_next, ts[idx + 1], ts[idx], "dpm++2m")


class VOfExact(torch.nn.Module):
    """The oracle's exact v prediction as a network (a perfect v-teacher)."""

    def __init__(self, den):
        super().__init__()
        self.den, self.scale = den, torch.nn.Parameter(torch.ones(()))

    def forward(self, x, t):
        return self.scale * self.den(x, t, target="v")


def test_teacher_parameterisation_is_lcms_formula(oracle, path):
    """f = alpha_min (c_skip x / alpha + (1 - c_skip) x0^), c_skip = sd^2 / ((s - s_min)^2 +
    sd^2) in s = sigma / alpha, x0^ the data prediction of a v network: exact at t_min, the
    teacher's x0 where the noise dominates."""
    gmm = oracle.gmm
    den = gmm.denoiser(path)
    model = fs.ConsistencyModel(VOfExact(den), path, sigma_data=0.7, prediction="v").double()
    x = gmm.sample(6, generator=torch.Generator().manual_seed(2))
    t_min = torch.full((6,), path.t_min, dtype=torch.float64)
    assert torch.allclose(model(x, t_min), x, rtol=0, atol=1e-12)
    t = torch.linspace(0.05, 0.9, 6, dtype=torch.float64)
    a, s = path.alpha(t)[:, None], path.sigma(t)[:, None]
    a_min = path.alpha(path.t_min)
    s_min = path.sigma(path.t_min) / a_min
    skip = 0.49 / ((s / a - s_min) ** 2 + 0.49)
    want = a_min * (skip * x / a + (1 - skip) * den(x, t))
    assert torch.allclose(model(x, t), want, rtol=1e-10, atol=1e-10)

