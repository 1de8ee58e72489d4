"""Multistep consistency distillation (MLCM; Heek et al. 2024's DDIM form) against the exact
flow of a Gaussian mixture."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant import fewstep as fs
from interpolant.errors import InterpolantError
from interpolant.fewstep.loop import by_index

from .conftest import small_mlp


def test_segment_grid_puts_every_nth_point_on_a_boundary(path):
    bounds, ts = fs.segment_grid(path, 3, 4)
    assert torch.equal(bounds, ip.grids.make(path.default_grid, path, 3))
    assert ts.shape == (13,) and bool((ts[1:] > ts[:-1]).all())
    assert torch.equal(ts[::4], bounds.flip(0))


class ExactToBoundary:
    """The data prediction that makes f (a DDIM step to the segment boundary) the exact
    multistep consistency function f*(x, t) = Phi(x, t -> s): x0^ = (f* - c_x x) / c_0."""

    def __init__(self, oracle, ts, n):
        self.oracle, self.ts, self.n = oracle, ts, n

    def boundary(self, t):
        return self.ts[torch.searchsorted(self.ts, t.double(), right=False).sub(1)
                       .clamp(min=0).div(self.n, rounding_mode="floor") * self.n]

    def __call__(self, x, t, cond=None):
        path, s = self.oracle.path, self.boundary(t)
        f = x.clone()
        for time in torch.unique(t).tolist():  # one exact solve per time in the batch
            rows = (t == time) & (s < time)
            if rows.any():
                f[rows] = self.oracle.gmm.flow(path, x[rows], time, float(s[rows][0]))
        a_t, s_t = path.alpha(t.double())[:, None], path.sigma(t.double())[:, None]
        a_s, s_s = path.alpha(s)[:, None], path.sigma(s)[:, None]
        c_0 = a_s - s_s * a_t / s_t
        return torch.where(c_0.abs() > 0, (f - s_s / s_t * x) / torch.where(
            c_0.abs() > 0, c_0, 1.0), x)


def test_exact_consistency_function_samples_the_exact_flow_and_zeroes_the_loss(oracle):
    """With x0^ realising f*, K-step DDIM on the boundary grid is the exact flow map; the
    multistep loss with the exact teacher step vanishes at f* (including rows whose target
    time is a boundary, where the target is the stepped point itself) and not for a
    perturbed f."""
    path, n = oracle.path, 3
    bounds, ts = fs.segment_grid(path, 2, n)
    exact = ip.Denoiser(ExactToBoundary(oracle, ts, n), path, prediction="x0")
    x1 = oracle.x1[:40]
    x = ip.sample(exact, x1, solver="ddim", grid=bounds)
    assert torch.allclose(x, oracle.ref[:40], rtol=0, atol=1e-6)
    g = torch.Generator().manual_seed(5)
    idx = torch.arange(36) % (2 * n)
    x0 = oracle.data[:36]
    x_next = path.sample(x0, ts[idx + 1], torch.randn(x0.shape, dtype=torch.float64,
                                                      generator=g))

    def step(y, t_from, t_to):
        return by_index(torch.searchsorted(ts, t_to), y, lambda i, z: oracle.gmm.flow(
            path, z, float(ts[i + 1]), float(ts[i])))

    loss = fs.multistep_loss(exact, exact, x_next, idx, ts, n, step)
    assert float(loss) < 1e-10
    bent = ip.Denoiser(lambda y, t, c=None: exact(y, t) + 0.05 * torch.sin(y), path, "x0")
    assert float(fs.multistep_loss(bent, bent, x_next, idx, ts, n, step)) > 1e-5


@pytest.mark.parametrize("segments", [2, 4])
def test_student_beats_the_teachers_ddim_at_its_steps(oracle, segments):
    """A K-segment student (MLP, 250 Adam steps) samples with K DDIM steps at under half the
    teacher's own K-step DDIM error against the exact flow map."""
    g = torch.Generator().manual_seed(3)
    student = fs.distill(oracle.teacher, "mlcm", student=small_mlp(), data=oracle.data,
                         steps=250, segments=segments, n=6, prediction="x0", batch_size=128,
                         generator=g)
    err = oracle.error(fs.sample(student, oracle.x1, nfe=segments))
    ddim = oracle.error(ip.sample(oracle.teacher, oracle.x1, solver="ddim", steps=segments))
    assert err < 0.5 * ddim, (err, ddim)


def test_bad_input_is_refused(oracle):
    with pytest.raises(InterpolantError, match="segments must be a positive integer"):
        fs.segment_grid(oracle.path, 0, 4)
    with pytest.raises(InterpolantError, match="teacher step is one of"):
        fs.distill(oracle.teacher, "mlcm", student=small_mlp(), data=oracle.data, steps=1,
                   solver="dpm++2m")
    with pytest.raises(InterpolantError, match="teacher as an interpolant.Denoiser"):
        fs.multistep_distillation(lambda x, t: x, small_mlp(), oracle.data, steps=1)
