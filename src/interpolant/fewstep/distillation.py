"""Consistency distillation (Song et al. 2023, Algorithm 2): a consistency model learned from a
teacher's probability-flow ODE.

On the increasing grid ``t_0 = t_min < ... < t_N = 1`` (:func:`.consistency.consistency_grid`)
draw ``n ~ U{0..N-1}``, ``x_{n+1} = alpha x0 + sigma z`` from the data, take *one* teacher ODE
step ``x^_n = Phi(x_{n+1}, t_{n+1} -> t_n)`` with any solver of :mod:`interpolant.solvers`
(``substeps`` solver steps inside the interval, 1 in the paper), and minimise
``d(f_theta(x_{n+1}, t_{n+1}), f_{theta-}(x^_n, t_n))`` with ``theta-`` an EMA of ``theta``
(``mu = 0.95``; ``mu = 0`` is the stop-gradient student itself). With the exact teacher and an
exact step the target is the consistency function at the exactly transported point, and the
loss vanishes at the exact consistency function ``f*(x, t) = Phi(x, t -> t_min)``.

The cheap teacher step is one step of ``ddim``, ``euler`` or ``heun`` for the whole batch, each row
over its own interval, in one network call (two for Heun) (:func:`one_step_pairs`)::

    ddim:  x^_n = (sigma_n / sigma_{n+1}) x_{n+1}
                  + (alpha_n - sigma_n alpha_{n+1} / sigma_{n+1}) x0^(x_{n+1}, t_{n+1})
    euler: x^_n = x' = x_{n+1} + (t_n - t_{n+1}) u(x_{n+1}, t_{n+1})
    heun:  x^_n = x_{n+1} + (t_n - t_{n+1}) (u(x_{n+1}, t_{n+1}) + u(x', t_n)) / 2

with ``x0^`` the teacher's data prediction and ``u`` its probability-flow velocity; other solvers
(or several substeps) run once per interval present in the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..grids import make as make_grid
from ..paths import broadcast_time
from ..predictions import Denoiser
from ..solvers import sample as solve
from ..training.ema import EMA
from .consistency import ConsistencyModel, consistency_grid, consistency_loss
from .loop import by_index, check_data, check_student, draw_batch, fit, noisy

Step = Callable[[Tensor, float, float], Tensor]
Point = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]

__all__ = ["teacher_step", "cd_pairs", "one_step_pairs", "consistency_distillation"]


def teacher_step(teacher: Denoiser, solver: str = "heun", substeps: int = 1,
                 generator: torch.Generator | None = None, **options: Any) -> Step:
    """``step(x, t_from, t_to)``: the teacher's ODE solved from ``t_from`` to ``t_to`` with
    ``substeps`` steps of ``solver`` on a log-SNR-uniform grid (one step: the interval).
    ``options`` go to the solver (e.g. ``eta=`` of a stochastic one, drawing from
    ``generator``: the SDE teacher step of :mod:`.scott`)."""
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
        raise InterpolantError(f"substeps must be a positive integer, got {substeps!r}")

    def step(x: Tensor, t_from: float, t_to: float) -> Tensor:
        grid = make_grid("logsnr", teacher.path, substeps, t_from, t_to)
        return solve(teacher, x, solver=solver, grid=grid, generator=generator, **options)

    return step


def cd_pairs(step: Step, x_next: Tensor, idx: Tensor, ts: Tensor) -> Tensor:
    """``x^_n = step(x_{n+1}, t_{n+1}, t_n)`` for each row, ``n = idx`` (grid ``ts`` increasing)."""
    grid = ts.tolist()
    return by_index(idx, x_next, lambda i, x: step(x, grid[i + 1], grid[i]))


BATCHED = ("ddim", "euler", "heun")


def one_step_pairs(teacher: Denoiser, x_next: Tensor, t_next: Tensor, t_prev: Tensor,
                   solver: str = "ddim", cond: Any = None) -> Tensor:
    """One ``solver`` step of every row from ``t_next`` to ``t_prev`` (both ``(B,)``), all rows
    in one teacher call (module docstring); coefficients in float64."""
    if solver not in BATCHED:
        raise InterpolantError(f"a batched teacher step is one of {', '.join(BATCHED)}, got "
                               f"{solver!r}; use teacher_step for the others")
    path = teacher.path
    t1, t0 = t_next.to(torch.float64), t_prev.to(torch.float64)

    def per_row(c: Tensor) -> Tensor:
        return broadcast_time(c.to(x_next.dtype), x_next)

    with torch.no_grad():
        if solver == "ddim":
            a1, s1, a0, s0 = path.alpha(t1), path.sigma(t1), path.alpha(t0), path.sigma(t0)
            x0 = teacher(x_next, t_next.to(x_next.dtype), cond)
            return per_row(s0 / s1) * x_next + per_row(a0 - s0 * a1 / s1) * x0
        dt = per_row(t0 - t1)
        u = teacher(x_next, t_next.to(x_next.dtype), cond, target="velocity")
        x = x_next + dt * u
        if solver == "euler":
            return x
        return x_next + dt * (u + teacher(x, t_prev.to(x.dtype), cond, target="velocity")) / 2


def consistency_distillation(
    teacher: Denoiser, student: nn.Module, data: Tensor, *, steps: int, n: int = 18,
    solver: str = "heun", substeps: int = 1, ema: float = 0.95, metric: str = "l2",
    sigma_data: float = 0.5, batch_size: int = 256, lr: float = 1e-3,
    generator: torch.Generator | None = None, step: Step | None = None,
    prediction: str | None = None, point: Point | None = None,
) -> ConsistencyModel:
    """Distil ``teacher`` into ``ConsistencyModel(student, teacher.path)`` (module docstring).

    ``n`` grid intervals (18 in the paper for CIFAR-10), ``ema`` the target's decay ``mu``;
    ``step`` replaces the solver step (e.g. the exact flow of an oracle). ``ddim``, ``euler``
    or ``heun`` with one substep take the batched step of :func:`one_step_pairs`;
    ``prediction`` parameterises the student like a teacher of that kind (see
    :class:`.consistency.ConsistencyModel`), for a student started from the teacher's weights.
    ``point(x_{n+1}, t_{n+1}, x^_n, t_n) -> (x, t)`` moves the student's input off
    ``(x_{n+1}, t_{n+1})`` (SLAM's sub-path linear point, :mod:`.slam`).
    """
    if not isinstance(teacher, Denoiser):
        raise InterpolantError("consistency distillation needs the teacher as an "
                               f"interpolant.Denoiser, got {type(teacher).__name__}")
    data = check_data(data)
    check_student(student, data[:2])
    path = teacher.path
    model = ConsistencyModel(student, path, sigma_data, prediction).to(data.dtype)
    target = EMA(model, decay=ema)
    ts = consistency_grid(path, n)
    batched = step is None and solver in BATCHED and substeps == 1
    step = teacher_step(teacher, solver, substeps) if step is None else step

    def loss(k: int) -> Tensor:
        x0, z = draw_batch(data, batch_size, generator)
        idx = torch.randint(0, n, (batch_size,), generator=generator)
        t_next, t_prev = ts[idx + 1].to(data.dtype), ts[idx].to(data.dtype)
        x_next = noisy(path, x0, t_next, z)
        x_prev = (one_step_pairs(teacher, x_next, t_next, t_prev, solver) if batched
                  else cd_pairs(step, x_next, idx, ts))
        x_in, t_in = (x_next, t_next) if point is None else point(x_next, t_next, x_prev, t_prev)
        return consistency_loss(model, target.model, x_in, t_in.to(data.dtype), x_prev, t_prev,
                                metric=metric)

    def after(k: int) -> None:
        target.update(model, batch_size, (k + 1) * batch_size)

    model.losses = fit(model, loss, steps, lr, after, name="consistency distillation")
    return model
