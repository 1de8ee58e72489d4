"""``restore``: posterior samples of ``x`` given ``y = A(x) + sigma_y n`` with any method."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..paths import GaussianPath
from ..solvers import sample
from ..solvers.sampling import make_grid
from .gdp import gdp
from .guided import DDNM, DPS, PiGDM
from .operators import Operator
from .posterior import check_sigma_y
from .reddiff import red_diff
from .repaint import repaint

GUIDED = {"dps": DPS, "pigdm": PiGDM, "ddnm": DDNM}


def _gdp(den: Any, op: Operator, y: Tensor, x: Tensor, ts: Tensor, generator: Any = None,
         **options: Any) -> Tensor:
    """GDP-x0 with the known degradation ``op`` (:func:`.gdp.gdp` also fits unknown ones)."""
    return gdp(den, lambda z, _: op(z), y, x, ts, generator, **options)[0]


LOOPS = {"repaint": repaint, "red-diff": red_diff, "gdp": _gdp}
METHODS = (*GUIDED, *LOOPS)

__all__ = ["METHODS", "restore"]


def _check_measurement(op: Any, y: Any, shape: Sequence[int] | None) -> tuple[Tensor, tuple]:
    if not isinstance(op, Operator):
        raise InterpolantError(
            "op must be an interpolant.inverse operator (Inpaint, Downsample, Blur, Linear, "
            f"FunctionOperator), got {type(op).__name__}"
        )
    if not isinstance(y, Tensor) or not y.is_floating_point():
        raise InterpolantError(f"y must be a floating-point tensor (one measurement), got "
                               f"{type(y).__name__ if not isinstance(y, Tensor) else y.dtype}")
    if not torch.isfinite(y).all():
        raise InterpolantError("y contains NaN or infinite values; fill or mask them first")
    shape = op.input_shape(tuple(y.shape)) if shape is None else tuple(shape)
    try:
        expected = op.output_shape(shape)
    except InterpolantError as err:
        raise InterpolantError(
            f"the operator does not fit samples of shape {shape}: {err}"
        ) from None
    if tuple(y.shape) != expected:
        raise InterpolantError(
            f"y must have shape {expected} (one measurement of a sample of shape {shape}, no "
            f"batch dimension), got {tuple(y.shape)}"
        )
    return y, shape


def _start(n: int, shape: tuple, dtype: torch.dtype, generator: Any) -> Tensor:
    """``N(0, I)`` draws ``(n, *shape)`` from one generator or one per sample."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(n, *shape, generator=generator, dtype=dtype)
    gens = list(generator)
    if len(gens) != n or not all(isinstance(g, torch.Generator) for g in gens):
        raise InterpolantError(f"generator must be a torch.Generator or {n} of them (one per "
                               "sample)")
    return torch.stack([torch.randn(*shape, generator=g, dtype=dtype) for g in gens])


def restore(
    den: Any,
    op: Operator,
    y: Tensor,
    sigma_y: float,
    method: str = "dps",
    n: int = 1,
    steps: int | None = 50,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    *,
    solver: str | None = None,
    grid: str | Tensor | None = None,
    t_start: float = 1.0,
    t_end: float | None = None,
    shape: Sequence[int] | None = None,
    cond: Any = None,
    **options: Any,
) -> Tensor:
    """``n`` samples of ``x`` given one measurement ``y = op(x) + sigma_y n``.

    Args:
        den: a :class:`~interpolant.Denoiser` of the prior, on a Gaussian path.
        op, y, sigma_y: the operator, one measurement (no batch dimension) and its noise std.
        method: ``dps``, ``pigdm``, ``ddnm`` (guided denoisers run by any solver of
            :func:`interpolant.sample`), ``repaint`` (its own resampling loop), ``red-diff``
            (stochastic optimisation over the grid's times; estimates, not samples) or ``gdp``
            (GDP-x0, its own DDPM loop; :func:`interpolant.inverse.gdp` also fits an unknown
            degradation).
        n, steps, generator, grid, t_start, t_end: as in :func:`interpolant.sample`; sampling
            starts from ``N(0, sigma(t_start)^2 I)``.
        solver: default ``"ddpm"`` (ancestral, as the DPS, PiGDM, DDNM and RePaint papers
            sample); RePaint runs it one step at a time.
        shape: the shape of one sample, when ``op.input_shape(y.shape)`` cannot tell.
        **options: the method's own: ``zeta``, ``gaussian_likelihood`` (DPS), ``data_var``
            (DPS, PiGDM, DDNM, RED-diff, GDP), ``jump`` and ``resample`` (RePaint), ``lam``
            and ``lr`` (RED-diff), ``scale`` (GDP).

    Returns the final data prediction (``denoise_to_zero``; RED-diff: the fitted mean) of shape
    ``(n, *shape)``; its network evaluations accumulate in ``den.nfe``.
    """
    if method not in METHODS:
        raise unknown_name("restoration method", method, METHODS)
    if not isinstance(getattr(den, "path", None), GaussianPath):
        raise InterpolantError(
            f"restore needs a denoiser on a Gaussian path; every method ({', '.join(METHODS)}) "
            "uses alpha(t) and sigma(t)"
        )
    sigma_y = check_sigma_y(sigma_y)
    y, shape = _check_measurement(op, y, shape)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InterpolantError(f"n must be a positive integer (samples to draw), got {n!r}")
    dtypes = den.parameter_dtypes() if hasattr(den, "parameter_dtypes") else set()
    dtype = next(iter(dtypes)) if len(dtypes) == 1 else y.dtype
    path = den.path
    x = _start(n, shape, dtype, generator).to(y.device) * path.sigma(float(t_start))
    solver = solver or "ddpm"
    if method in LOOPS:
        ts = make_grid(grid, path, steps, t_start, t_end)
        if method == "repaint":  # it runs the solver one step at a time
            options = {"solver": solver, **options}
        else:  # red-diff and gdp weigh the measurement by its noise
            options = {"sigma_y": sigma_y, **options}
        return LOOPS[method](den, op, y, x, ts, generator, cond=cond, **options)
    guided = GUIDED[method](den, op, y, sigma_y, **options)
    return sample(guided, x, solver=solver, steps=steps, grid=grid, t_start=t_start,
                  t_end=t_end, generator=generator, cond=cond, denoise_to_zero=True)
