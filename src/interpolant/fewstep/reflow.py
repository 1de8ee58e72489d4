"""Rectified-flow reflow (Liu, Gong & Liu 2022, "Flow Straight and Fast") with the choices of
Improved Rectified Flows (Lee, Lin & Fanti 2024).

Reflow replaces the independent coupling of data and noise by the teacher's deterministic one:
``x1 ~ N(0, I)``, ``x0 = Phi_teacher(x1, 1 -> t_min)`` (its probability-flow ODE, any solver),
and refits a velocity on the straight line between the pair, the path ``Linear``::

    x_t = (1 - t) x0 + t x1,    min E_t lambda d(v_theta(x_t, t), x1 - x0)

With a deterministic coupling whose lines do not cross the optimum ``v`` is exactly
``x1 - x0`` along each line: straight trajectories that one Euler step integrates. Improved RF
draws ``t`` from the U-shaped density ``p(t) ∝ exp(a t) + exp(a (1 - t))`` (``a = 4``; rfpp's
mixture of a truncated exponential and its mirror) and uses the pseudo-Huber metric.

Straightness (Liu et al. 2022, eq. 8) of a flow ``Z`` with velocity ``v``:
``S(Z) = int_0^1 E |(Z_1 - Z_0) - v(Z_t, t)|^2 dt``, zero exactly for straight trajectories.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..grids import make as make_grid
from ..paths import Linear, broadcast_time
from ..predictions import Denoiser
from ..solvers import sample as solve
from ..solvers import trajectory
from .consistency import METRICS
from .loop import check_data, check_student, fit
from .students import SolverStudent

__all__ = ["u_shaped", "reflow_pairs", "reflow", "straightness"]


def u_shaped(n: int, a: float = 4.0, generator: torch.Generator | None = None,
             dtype: torch.dtype = torch.float64) -> Tensor:
    """``n`` draws of ``p(t) ∝ exp(a t) + exp(a (1 - t))`` on ``[0, 1]`` (inverse CDF of
    ``a e^{a t} / (e^a - 1)``, mirrored with probability 1/2)."""
    if not a > 0:
        raise InterpolantError(f"the U-shaped density needs a > 0, got {a}")
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    t = torch.log1p(u * math.expm1(a)) / a
    flip = torch.rand(n, generator=generator, dtype=torch.float64) < 0.5
    return torch.where(flip, 1.0 - t, t).to(dtype)


def reflow_pairs(teacher: Denoiser, noise: Tensor, solver: str = "dpm++2m", steps: int = 20,
                 grid: str | Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(x0, x1)``: the teacher's ODE endpoints ``x0 = Phi(x1, 1 -> t_min)`` of ``x1 = noise``."""
    with torch.no_grad():
        return solve(teacher, noise, solver=solver, steps=steps, grid=grid), noise


def reflow(pairs: tuple[Tensor, Tensor], student: nn.Module, *, steps: int,
           time_density: str = "u-shaped", a: float = 4.0, metric: str = "pseudo-huber",
           batch_size: int = 256, lr: float = 1e-3, generator: torch.Generator | None = None
           ) -> SolverStudent:
    """Fit ``v_theta`` on the straight-line coupling ``pairs = (x0, x1)`` (module docstring);
    the student samples with Euler on a uniform grid of ``Linear()``."""
    x0, x1 = (check_data(p, "reflow pairs") for p in pairs)
    if x0.shape != x1.shape:
        raise InterpolantError(f"reflow pairs differ in shape: {tuple(x0.shape)} and "
                               f"{tuple(x1.shape)}")
    if time_density not in ("u-shaped", "uniform"):
        raise InterpolantError(f"time_density must be 'u-shaped' or 'uniform', got "
                               f"{time_density!r}")
    if metric not in METRICS:
        raise InterpolantError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    check_student(student, x0[:2])
    student = student.to(x0.dtype)
    den = Denoiser(student, Linear(), "velocity")

    def loss(k: int) -> Tensor:
        idx = torch.randint(0, x0.shape[0], (batch_size,), generator=generator)
        a0, a1 = x0[idx], x1[idx]
        t = (u_shaped(batch_size, a, generator) if time_density == "u-shaped"
             else torch.rand(batch_size, generator=generator, dtype=torch.float64))
        t = t.clamp(1e-5, 1.0).to(x0.dtype)
        tb = broadcast_time(t, a0)
        return METRICS[metric](student(a0 + tb * (a1 - a0), t), a1 - a0).mean()

    losses = fit(student, loss, steps, lr, name="reflow")
    return SolverStudent(den, "reflow", "euler", "uniform", None, losses)


@torch.no_grad()
def straightness(denoiser: Denoiser, x1: Tensor, steps: int = 200, solver: str = "euler"
                 ) -> float:
    """``S(Z)`` of the flow of ``denoiser`` from ``x1`` at ``t = 1`` to ``t_min``, on a uniform
    grid of ``steps``: per step the chord velocity ``(x_{k+1} - x_k) / dt_k`` (Euler's own
    velocity) against the whole displacement, averaged over time and samples."""
    ts = make_grid("uniform", denoiser.path, steps)
    prev, total = x1, 0.0
    states = [x1] + [s.x for s in trajectory(denoiser, x1, solver=solver, grid=ts)]
    span = float(ts[0] - ts[-1])
    chord = (states[0] - states[-1]) / span
    for k, x in enumerate(states[1:]):
        dt = float(ts[k] - ts[k + 1])
        total += dt * float(((prev - x) / dt - chord).flatten(1).pow(2).sum(1).mean())
        prev = x
    return total / span
