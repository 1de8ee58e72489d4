"""Progressive distillation (Salimans & Ho 2022) against the exact DDIM map and flow."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant import fewstep as fs

from .conftest import small_mlp


@pytest.mark.parametrize("fine", [[1.0, 0.6, 0.3], [0.5, 0.2, 1e-3]])
def test_round_target_is_two_exact_ddim_steps(oracle, fine):
    """x_t'' is the two-step DDIM map (ip.sample on the 3-point grid, and by hand:
    x_u = alpha_u D + sigma_u (x - alpha D) / sigma), and one DDIM step t -> t'' with the
    target as its data prediction lands on x_t''."""
    path, den = oracle.path, oracle.teacher
    grid = torch.tensor(fine, dtype=torch.float64)
    x = path.sample(oracle.data[:64], fine[0], torch.randn(64, 2, dtype=torch.float64))
    x2, target = fs.two_step_target(den, x, grid)
    assert torch.allclose(x2, ip.sample(den, x, solver="ddim", grid=grid), rtol=0, atol=1e-12)
    y = x
    for s, u in zip(fine[:-1], fine[1:]):
        d = den(y, s)
        y = path.alpha(u) * d + path.sigma(u) * (y - path.alpha(s) * d) / path.sigma(s)
    assert torch.allclose(x2, y, rtol=0, atol=1e-12)
    fixed = ip.Denoiser(lambda z, t: target, path, prediction="x0")
    one = ip.sample(fixed, x, solver="ddim", grid=grid[[0, 2]])
    assert torch.allclose(one, x2, rtol=0, atol=1e-12)


def test_one_round_halves_the_steps_at_the_teachers_error(oracle):
    """Salimans & Ho: an N-step student matches the 2N-step teacher. With the exact teacher,
    8 DDIM steps miss the exact flow map by e8 and 4 steps by e4 ~ 3 e8. The student's error
    is at most e8 plus its distance d to the teacher's 8-step map (triangle inequality); a
    fit with d < e8 / 2 after 300 tiny steps, and e within 30% of e8, make the 4-step student
    an 8-step sampler; a student of the wrong target (one teacher step) would sit at e4."""
    g = torch.Generator().manual_seed(2)
    student = fs.distill(oracle.teacher, "pd", student=small_mlp(), data=oracle.data, steps=300,
                         teacher_steps=8, rounds=1, batch_size=128, generator=g)
    assert student.solver == "ddim" and len(student.trained_grid) == 5
    x1, den = oracle.x1, oracle.teacher
    s4 = fs.sample(student, x1, nfe=4)
    t8 = ip.sample(den, x1, solver="ddim", steps=8, grid="uniform")
    e8 = oracle.error(t8)
    e4 = oracle.error(ip.sample(den, x1, solver="ddim", steps=4, grid="uniform"))
    d = float(((s4 - t8) ** 2).sum(1).mean().sqrt())
    e = oracle.error(s4)
    assert d < 0.5 * e8 and e < 1.3 * e8 and e < 0.5 * e4, (d, e, e8, e4)
