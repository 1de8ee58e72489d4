"""Deterministic inversion: the probability-flow ODE run from data towards noise.

DDIM inversion (Song et al. 2021, Sec. 4.3; Dhariwal & Nichol 2021, App. F) runs the DDIM
update on an *increasing* grid ``t_min = t_0 < t_1 < ... < t_N = 1`` with the data prediction
taken at the current point::

    x_{i+1} = (sigma_{i+1} / sigma_i) x_i - alpha_{i+1} expm1(-h_i) D(x_i, t_i),   h_i < 0

which is the first-order exponential integrator of the ODE in the other direction. Every
deterministic solver of :mod:`interpolant.solvers` does the same with its own coefficient
table (the formulas hold for ``h < 0``; see :mod:`interpolant.solvers.exponential` for the step
into pure noise), so a solver of order ``p`` inverts with error ``O(N^-p)`` against the exact
inverse flow. Solvers that draw fresh noise are refused (:meth:`Solver.check_invertible`).

The inversion starts where ``sigma > 0`` (``t_start = path.t_min`` by default: at ``sigma = 0``
an ODE step has no noise direction) and a named grid visits the same points sampling does, so
``ip.sample(den, ip.invert(den, x0, solver, steps), solver, steps)`` returns ``x0`` up to the
two discretisation errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from .. import grids
from ..errors import InterpolantError
from ..paths import GaussianPath
from ..solvers.base import Model, Noise, Solver, State, get
from ..solvers.sampling import _check_start

DEFAULT_SOLVER = "ddim"
DEFAULT_STEPS = 50

__all__ = ["DEFAULT_SOLVER", "DEFAULT_STEPS", "check_data", "invert", "inversion_grid",
           "trajectory"]


def check_data(x0: Any, name: str = "x0", images_in_range: bool = True) -> Tensor:
    """``x0`` must be a finite floating tensor, batch first; images ``(B, C, H, W)`` must lie
    in ``[-1, 1]`` (the library's image convention) unless ``images_in_range`` is False (a
    noise latent or an intermediate state)."""
    if not isinstance(x0, Tensor) or not x0.is_floating_point() or x0.ndim < 2:
        got = (f"a {x0.dtype} tensor of shape {tuple(x0.shape)}" if isinstance(x0, Tensor)
               else type(x0).__name__)
        raise InterpolantError(
            f"{name} must be a floating-point tensor (B, D) or images (B, C, H, W), got {got}"
        )
    if not bool(torch.isfinite(x0).all()):
        raise InterpolantError(f"{name} holds NaN or infinite values; check how it was loaded")
    if images_in_range and x0.ndim == 4 and float(x0.abs().max()) > 1.0 + 1e-6:
        raise InterpolantError(
            f"images must lie in [-1, 1], but max |{name}| = {float(x0.abs().max()):.4g}; "
            "map pixels p in [0, 255] with x = p / 127.5 - 1"
        )
    return x0


def inversion_grid(
    grid: str | Tensor | Sequence[float] | None,
    path: Any,
    steps: int | None,
    t_start: float | None = None,
    t_end: float = 1.0,
) -> Tensor:
    """An increasing float64 grid from ``t_start`` (default ``path.t_min``) to ``t_end``: a
    named grid (:func:`interpolant.grids.between`, the sampling grid reversed) or an explicit
    strictly increasing tensor (then ``steps`` is implied)."""
    if grid is None:
        grid = getattr(path, "default_grid", "uniform")
    if isinstance(grid, str):
        t_start = path.t_min if t_start is None else float(t_start)
        if not t_start < float(t_end):
            raise InterpolantError(
                f"an inversion runs from data towards noise: need t_start < t_end, got "
                f"t_start={t_start}, t_end={t_end}; to go the other way use ip.sample"
            )
        ts = grids.between(grid, path, DEFAULT_STEPS if steps is None else steps,
                           t_start, float(t_end))
    else:
        ts = grids.check(grid, increasing=True)
        if steps is not None and steps != ts.numel() - 1:
            raise InterpolantError(
                f"steps={steps} disagrees with the explicit grid of {ts.numel() - 1} steps; "
                "leave steps out when you pass a grid"
            )
    if isinstance(path, GaussianPath) and not path.sigma(float(ts[0])) > 0.0:
        raise InterpolantError(
            f"an inversion must start where sigma > 0 (t_start={float(ts[0]):.6g} has "
            f"sigma = 0, clean data); start at path.t_min = {path.t_min}"
        )
    return ts


def prepare(denoiser: Any, x0: Tensor, solver: str | Solver, steps: int | None, grid: Any,
            t_start: float | None, t_end: float, options: dict) -> tuple[Solver, Tensor]:
    """Check everything an inversion needs; return the solver and the increasing grid."""
    chosen = get(solver, **options)
    chosen.check_invertible()
    _check_start(denoiser, x0)
    check_data(x0)
    ts = inversion_grid(grid, denoiser.path, steps, t_start, t_end)
    chosen.validate(ts, denoiser.path)
    return chosen, ts


def trajectory(
    denoiser: Any,
    x0: Tensor,
    solver: str | Solver = DEFAULT_SOLVER,
    steps: int | None = None,
    cond: Any = None,
    grid: str | Tensor | None = None,
    t_start: float | None = None,
    t_end: float = 1.0,
    **options: Any,
) -> Iterator[State]:
    """Integrate from data ``x0`` at ``t_start`` (default ``path.t_min``) towards noise at
    ``t_end``, yielding the :class:`~interpolant.solvers.State` after every step.

    Args:
        denoiser: an :class:`interpolant.Denoiser` or a guidance wrapper of one.
        x0: the data, batch first (taken as the state at ``t_start``).
        solver: a deterministic solver name or value (``ddim``, ``dpm++2m``, ``unipc``, ...).
        steps: solver steps (default 50; implied by an explicit grid).
        cond: passed to the network unchanged (class labels, embeddings).
        grid: a grid name (the sampling grid, reversed), an explicit increasing tensor of
            times, or ``None`` for the path's default.
        **options: the solver's options.
    """
    chosen, ts = prepare(denoiser, x0, solver, steps, grid, t_start, t_end, options)
    model = Model(lambda x, t, target: denoiser(x, t, cond, target))
    return chosen.run(model, x0, ts, denoiser.path, Noise(None))


def invert(*args: Any, **kwargs: Any) -> Tensor:
    """The state at ``t_end`` (default 1, the noise end) of :func:`trajectory`, whose
    arguments it takes: ``z = ip.invert(den, x0, solver="ddim", steps=50, cond=None)``."""
    state = None
    for state in trajectory(*args, **kwargs):
        pass
    assert state is not None
    return state.x
