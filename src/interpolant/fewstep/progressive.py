"""Progressive distillation (Salimans & Ho 2022, Algorithm 2): halve the sampling steps each
round.

Round ``r`` has a teacher sampling with DDIM on a grid of ``2M`` steps and a student on every
other point of it (``M`` steps). From ``x_t = alpha_t x0 + sigma_t eps`` at a student time
``t``, the teacher's two DDIM steps ``t -> t' -> t''`` give ``x_t''``; the student's target is
the data prediction that makes *one* DDIM step ``t -> t''`` land on it::

    x~ = (x_t'' - c_x x_t) / c_0,
    c_x = sigma_t'' / sigma_t,  c_0 = alpha_t'' - sigma_t'' alpha_t / sigma_t

and the loss is ``max(alpha_t^2 / sigma_t^2, 1) |x^_theta(x_t, t) - x~|^2`` (the paper's
truncated-SNR weight), with the student predicting ``v`` or ``x0``. The student starts as the
teacher's network where the architectures agree (the caller's choice of ``student``) and
becomes the next round's teacher.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..grids import make as make_grid
from ..paths import broadcast_time
from ..predictions import Denoiser
from ..solvers import sample as solve
from ..solvers.exponential import ddim_step, points
from .loop import by_index, check_data, check_student, draw_batch, fit, noisy
from .students import SolverStudent

__all__ = ["two_step_target", "progressive_distillation"]


def two_step_target(teacher: Denoiser, x: Tensor, fine: Tensor) -> tuple[Tensor, Tensor]:
    """``(x_t'', x~)`` for states ``x`` at ``fine[0]`` and the teacher's fine grid
    ``fine = [t, t', t'']`` (module docstring)."""
    x2 = solve(teacher, x, solver="ddim", grid=fine)
    s, _, u = points(teacher.path, fine)
    c_x, c_0 = ddim_step("data", s, u)
    return x2, (x2 - c_x * x) / c_0


def _round(teacher: Denoiser, student: Denoiser, data: Tensor, fine: Tensor, steps: int,
           batch_size: int, lr: float, generator: torch.Generator | None) -> list[float]:
    path, coarse = teacher.path, fine[::2]
    m = len(coarse) - 1
    a, s = path.alpha(coarse[:-1]), path.sigma(coarse[:-1])
    weight = torch.clamp(a * a / (s * s), min=1.0)

    def loss(k: int) -> Tensor:
        x0, z = draw_batch(data, batch_size, generator)
        idx = torch.randint(0, m, (batch_size,), generator=generator)
        t = coarse[idx].to(data.dtype)
        x_t = noisy(path, x0, t, z)
        with torch.no_grad():
            target = by_index(idx, x_t, lambda i, x: two_step_target(teacher, x,
                                                                     fine[2 * i: 2 * i + 3])[1])
        err = (student(x_t, t, target="x0") - target).flatten(1).pow(2).sum(1)
        return (broadcast_time(weight[idx].to(data.dtype), err) * err).mean()

    return fit(student.model, loss, steps, lr, name="progressive distillation")


def progressive_distillation(
    teacher: Denoiser, student: nn.Module, data: Tensor, *, steps: int, teacher_steps: int = 8,
    rounds: int = 1, prediction: str = "v", grid: str = "uniform", batch_size: int = 256,
    lr: float = 1e-3, generator: torch.Generator | None = None,
) -> SolverStudent:
    """``rounds`` rounds of ``steps`` optimiser steps each from a ``teacher_steps`` DDIM teacher
    on the named ``grid``: the result samples with DDIM in ``teacher_steps / 2^rounds`` steps."""
    if not isinstance(teacher, Denoiser):
        raise InterpolantError(f"progressive distillation needs the teacher as an "
                               f"interpolant.Denoiser, got {type(teacher).__name__}")
    if prediction not in ("v", "x0"):
        raise InterpolantError(f"the student of progressive distillation predicts 'v' or 'x0' "
                               f"(eps is undefined at the noise end), got {prediction!r}")
    if not isinstance(rounds, int) or rounds < 1 or teacher_steps % 2**rounds:
        raise InterpolantError(f"teacher_steps ({teacher_steps}) must be divisible by "
                               f"2^rounds with rounds >= 1 (got rounds={rounds!r})")
    data = check_data(data)
    check_student(student, data[:2])
    fine = make_grid(grid, teacher.path, teacher_steps)
    losses: list[float] = []
    current = Denoiser(student.to(data.dtype), teacher.path, prediction)
    for r in range(rounds):
        losses += _round(teacher, current, data, fine, steps, batch_size, lr, generator)
        teacher, fine = current, fine[::2]
        if r + 1 < rounds:
            current = Denoiser(copy.deepcopy(current.model), teacher.path, prediction)
    return SolverStudent(current, "pd", "ddim", grid, fine, losses)
