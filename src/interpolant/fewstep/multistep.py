"""Multistep consistency distillation: MLCM (Xie et al. 2024, "MLCM: Multistep Consistency
Distillation of Latent Diffusion Model") in the DDIM parameterisation of Heek, Hoogeboom &
Salimans 2024 ("Multistep Consistency Models").

Split the time range at ``K + 1`` boundaries ``t_min = s_0 < s_1 < ... < s_K = 1`` (the ``K``-step
grid the student samples on). The multistep consistency function maps a point of a
probability-flow trajectory to the trajectory's point at the lower boundary of its segment::

    f*(x, t) = Phi(x, t -> s_k),    s_k < t <= s_{k+1}   (f*(x, s_0) = x)

so ``K`` evaluations ``x <- f(x, s_{k+1})``, ``k = K-1, ..., 0``, carry noise to data along the
flow. The student writes ``f`` as one DDIM step to the boundary with its own data prediction::

    f(x, t) = (sigma_s / sigma_t) x + (alpha_s - sigma_s alpha_t / sigma_t) x0^(x, t),  s = s_k

which is the identity at every boundary (``f(x, s_k) = x``, the condition of a consistency
model, per segment) and makes the ``K``-step sampler plain DDIM on the boundary grid: the student
is an ordinary denoiser (a copy of the teacher's network, its prediction), sampled with
``ddim`` in ``K`` steps. ``K = 1`` is consistency distillation in DDIM form.

Training as MLCM does: each segment is cut into ``n`` equal intervals of ``t``; draw an
interval ``[t_i, t_{i+1}]``, ``x_{i+1}`` from the data, one teacher ODE step to ``x^_i``
(:func:`.distillation.one_step_pairs`), and minimise
``d(f_theta(x_{i+1}, t_{i+1}), sg f_{theta-}(x^_i, t_i))`` with the boundary ``s`` of the
interval's segment on both sides (where ``t_i = s`` the target is ``x^_i`` itself).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..grids import make as make_grid
from ..paths import GaussianPath, broadcast_time
from ..predictions import Denoiser
from ..training.ema import EMA
from .consistency import METRICS
from .distillation import BATCHED, one_step_pairs
from .loop import check_data, check_student, draw_batch, fit, noisy
from .students import SolverStudent

__all__ = ["segment_grid", "to_boundary", "multistep_loss", "multistep_distillation"]

Step = Callable[[Tensor, Tensor, Tensor], Tensor]


def segment_grid(path: GaussianPath, segments: int, n: int, grid: str | None = None
                 ) -> tuple[Tensor, Tensor]:
    """``(boundaries, ts)``: the decreasing ``segments``-step grid ``1 = s_K > ... > s_0 =
    t_min`` of kind ``grid`` (default the path's), and the increasing fine grid of ``K n + 1``
    times, each segment cut into ``n`` equal steps of ``t``, so every ``n``-th point is a
    boundary."""
    for name, value in (("segments", segments), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InterpolantError(f"{name} must be a positive integer, got {value!r}")
    kind = grid or path.default_grid
    bounds = make_grid(kind, path, segments)
    pieces = [torch.linspace(float(lo), float(hi), n + 1, dtype=torch.float64)[:-1]
              for hi, lo in zip(bounds[:-1], bounds[1:])]
    return bounds, torch.cat(pieces[::-1] + [bounds[:1]])


def to_boundary(den: Denoiser, x: Tensor, t: Tensor, s: Tensor, cond=None) -> Tensor:
    """``f(x, t)``: one DDIM step of every row from ``t`` to its boundary ``s`` (``(B,)``
    each) with ``den``'s data prediction (module docstring)."""
    path = den.path
    t64, s64 = t.to(torch.float64), s.to(torch.float64)
    a_t, s_t, a_s, s_s = path.alpha(t64), path.sigma(t64), path.alpha(s64), path.sigma(s64)
    c_x, c_0 = (broadcast_time(c.to(x.dtype), x) for c in (s_s / s_t, a_s - s_s * a_t / s_t))
    return c_x * x + c_0 * den(x, t.to(x.dtype), cond)


def multistep_loss(student: Denoiser, target: Denoiser, x_next: Tensor, idx: Tensor,
                   ts: Tensor, n: int, step: Step, metric: str = "l2") -> Tensor:
    """``mean d(f(x_{i+1}, t_{i+1}), sg f_target(step(x_{i+1}), t_i))`` for rows on the
    intervals ``idx`` of the fine grid ``ts``, each with its segment's boundary."""
    if metric not in METRICS:
        raise InterpolantError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    t_next, t_prev = ts[idx + 1].to(x_next.dtype), ts[idx].to(x_next.dtype)
    s = ts[(idx // n) * n].to(x_next.dtype)
    with torch.no_grad():
        goal = to_boundary(target, step(x_next, t_next, t_prev), t_prev, s)
    return METRICS[metric](to_boundary(student, x_next, t_next, s), goal).mean()


def multistep_distillation(
    teacher: Denoiser, student: nn.Module, data: Tensor, *, steps: int, segments: int = 2,
    n: int = 8, solver: str = "heun", prediction: str | None = None, grid: str | None = None,
    ema: float = 0.95, metric: str = "l2", batch_size: int = 256, lr: float = 1e-3,
    generator: torch.Generator | None = None, step: Step | None = None,
) -> SolverStudent:
    """Distil ``teacher`` into a ``segments``-step student (module docstring): the student
    network predicts ``prediction`` (default the teacher's) on the teacher's path; ``n``
    intervals per segment; ``solver`` the batched teacher step (``ddim``, ``euler``, ``heun``)
    unless ``step(x, t_from, t_to)`` is given (e.g. the exact flow of an oracle)."""
    if not isinstance(teacher, Denoiser):
        raise InterpolantError("multistep consistency distillation needs the teacher as an "
                               f"interpolant.Denoiser, got {type(teacher).__name__}")
    if step is None and solver not in BATCHED:
        raise InterpolantError(f"the teacher step is one of {', '.join(BATCHED)}, got {solver!r}")
    data = check_data(data)
    check_student(student, data[:2])
    path = teacher.path
    bounds, ts = segment_grid(path, segments, n, grid)
    den = Denoiser(student.to(data.dtype), path, prediction or teacher.prediction)
    average = EMA(student, decay=ema)
    target = Denoiser(average.model, path, den.prediction)
    if step is None:
        def step(x: Tensor, t_from: Tensor, t_to: Tensor) -> Tensor:
            return one_step_pairs(teacher, x, t_from, t_to, solver)

    def loss(k: int) -> Tensor:
        x0, z = draw_batch(data, batch_size, generator)
        idx = torch.randint(0, segments * n, (batch_size,), generator=generator)
        x_next = noisy(path, x0, ts[idx + 1].to(data.dtype), z)
        return multistep_loss(den, target, x_next, idx, ts, n, step, metric)

    def after(k: int) -> None:
        average.update(student, batch_size, (k + 1) * batch_size)

    losses = fit(student, loss, steps, lr, after, name="multistep consistency distillation")
    return SolverStudent(den, "mlcm", "ddim", grid or path.default_grid, bounds, losses)
