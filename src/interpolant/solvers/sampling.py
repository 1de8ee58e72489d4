"""The front door of sampling: ``ip.sample`` and ``ip.trajectory``."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from .. import grids
from ..errors import InterpolantError
from .base import Model, Noise, Solver, State, get
from .corrector import PredictorCorrector

DEFAULT_SOLVER = "dpm++2m"
DEFAULT_STEPS = 20

Generator = torch.Generator | Sequence[torch.Generator] | None


def make_grid(
    grid: str | Tensor | Sequence[float] | None,
    path: Any,
    steps: int | None,
    t_start: float = 1.0,
    t_end: float | None = None,
) -> Tensor:
    """Resolve ``grid`` (a name, an explicit decreasing tensor, or ``None`` for the path's
    default grid) into a float64 tensor of times."""
    if grid is None:
        grid = getattr(path, "default_grid", "uniform")
    if isinstance(grid, str):
        return grids.make(grid, path, DEFAULT_STEPS if steps is None else steps, t_start, t_end)
    ts = grids.check(grid)
    if steps is not None and steps != ts.numel() - 1:
        raise InterpolantError(
            f"steps={steps} disagrees with the explicit grid of {ts.numel() - 1} steps; "
            "leave steps out when you pass a grid"
        )
    return ts


def _check_start(denoiser: Any, x: Tensor) -> None:
    if not hasattr(denoiser, "path") or not callable(denoiser):
        raise InterpolantError(
            "sampling needs a denoiser (interpolant.Denoiser or a guidance wrapper of one), "
            f"got {type(denoiser).__name__}"
        )
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 1:
        raise InterpolantError(
            "x_start must be a floating-point tensor with a batch dimension first, got "
            + (f"a {x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor)
               else type(x).__name__)
        )
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise InterpolantError(
            f"x_start holds NaN or infinite values in {bad} of its {x.shape[0]} samples; "
            "sampling them would return NaN. Check how the starting noise was made"
        )
    dtypes = denoiser.parameter_dtypes() if hasattr(denoiser, "parameter_dtypes") else set()
    if dtypes and x.dtype not in dtypes:
        names = ", ".join(sorted(str(d) for d in dtypes))
        raise InterpolantError(
            f"x_start is {x.dtype} but the network's parameters are {names}; "
            f"cast one to the other (e.g. x_start.to({names.split(',')[0]}))"
        )


def trajectory(
    denoiser: Any,
    x_start: Tensor,
    solver: str | Solver = DEFAULT_SOLVER,
    steps: int | None = None,
    grid: str | Tensor | None = None,
    t_start: float = 1.0,
    t_end: float | None = None,
    generator: Generator = None,
    cond: Any = None,
    denoise_to_zero: bool = False,
    langevin_steps: int = 0,
    snr: float = 0.16,
    **solver_options: Any,
) -> Iterator[State]:
    """Integrate from ``x_start`` at ``t_start`` to ``t_end``, yielding the :class:`State`
    after every step (:func:`sample` returns the last state's ``x``). Everything is checked
    before the first step runs.

    Args:
        denoiser: an :class:`interpolant.Denoiser` (or a guidance wrapper of one).
        x_start: the starting state, batch first (usually noise at ``t_start = 1``).
        solver: a name from ``interpolant.solvers.available()`` or a solver value.
        steps: solver steps (default 20); implied by an explicit grid.
        grid: a name from ``interpolant.grids.NAMES``, an explicit decreasing tensor of
            times, or ``None`` for the path's default (``path.default_grid``).
        t_start, t_end: ends of a named grid; ``t_end`` defaults to ``path.t_min``.
        generator: a ``torch.Generator``, or one per sample, for stochastic solvers.
        cond: passed to the network unchanged (labels, embeddings).
        denoise_to_zero: after the last step, spend one more evaluation and return the data
            prediction ``D(x, t_end)`` (as a last state at ``t = 0``). Solver-independent.
        langevin_steps, snr: if ``langevin_steps > 0``, follow every step of the (one-step)
            solver by that many Langevin corrector steps with signal-to-noise ratio ``snr``
            (Song et al. 2021 predictor-corrector; see ``solvers.stochastic.with_corrector``).
        **solver_options: the solver's own options, e.g. ``eta=0.5`` for ``ddim``.

    The network evaluations this run spent are ``State.nfe`` of :func:`trajectory`; the
    denoiser's own counter ``denoiser.nfe`` accumulates over runs.
    """

    chosen = get(solver, **solver_options)
    if langevin_steps != 0:
        chosen = PredictorCorrector(chosen, langevin_steps, snr)
    path = denoiser.path if hasattr(denoiser, "path") else None
    _check_start(denoiser, x_start)
    ts = make_grid(grid, path, steps, t_start, t_end)
    chosen.validate(ts, path)
    model = Model(lambda x, t, target: denoiser(x, t, cond, target))
    states = chosen.run(model, x_start, ts, path, Noise(generator))
    return _then_denoise(states, model) if denoise_to_zero else states


def _then_denoise(states: Iterator[State], model: Model) -> Iterator[State]:
    """Yield ``states``, then one more: the data prediction at the last state (one NFE),
    placed at ``t = 0`` (DPM-Solver's ``denoise_to_zero``; the last step of diffusers'
    sigma schedulers, which end at ``sigma = 0``)."""
    last = None
    for last in states:
        yield last
    assert last is not None
    x0 = model(last.x, last.t, "x0")
    yield State(last.step + 1, 0.0, x0, x0, model.nfe)


def sample(*args: Any, **kwargs: Any) -> Tensor:
    state = None
    for state in trajectory(*args, **kwargs):
        pass
    assert state is not None  # every grid has at least one step
    return state.x


sample.__doc__ = ("Integrate and return the final state (the last ``x`` of :func:`trajectory`, "
                  "whose arguments it takes).\n\n" + (trajectory.__doc__ or ""))
sample.__signature__ = inspect.signature(trajectory).replace(  # type: ignore[attr-defined]
    return_annotation=Tensor)
