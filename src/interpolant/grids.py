"""Time discretisations: decreasing float64 grids ``t_0 = t_start > ... > t_N = t_end``.

=============  ====================================================================
name           points
=============  ====================================================================
``uniform``    uniform in ``t`` (DPM-Solver's ``time_uniform``)
``quadratic``  uniform in ``sqrt(t)`` (DPM-Solver's ``time_quadratic``, DDIM's ``quad``)
``logsnr``     uniform in the half log-SNR ``lam`` (DPM-Solver's ``logSNR``;
               k-diffusion's ``get_sigmas_exponential``; DEIS ``log``)
``karras``     uniform in ``sigma~^(1/rho)`` with ``sigma~ = sigma / alpha = exp(-lam)``,
               ``rho = 7`` (EDM, Karras et al. 2022, eq. 5)
=============  ====================================================================

The two log-SNR grids need finite ends. Where ``lam(t_start)`` lies below the clip
``min(LAM_MIN, lam(t_end) - 1)`` (the noise end of cosine, rectified-flow and trigonometric
paths, where ``alpha(1) = 0``) the grid starts with one jump from ``t_start`` to that clip
(DPM-Solver's clip for cosine schedules; the second term keeps the clip above ``t_end`` when
both ends lie in the noise region, as ``dpm-adaptive`` does), and where ``lam(t_end)`` is
infinite (``sigma = 0``) it ends with one jump from ``lam = max(LAM_MAX, lam_lo + 1)`` (EDM's
``sigma_min = 0.002``) to ``t_end``, as k-diffusion appends ``sigma = 0`` to its grids. Where
``sigma(t_start) = 0`` already (below the first training step of a discrete schedule) there is no
log-SNR to space, and the grid is uniform in ``t``.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .errors import InterpolantError, unknown_name
from .paths import GaussianPath

LAM_MIN = -5.1
LAM_MAX = -math.log(0.002)

NAMES = ("uniform", "quadratic", "logsnr", "karras")

__all__ = ["NAMES", "LAM_MIN", "LAM_MAX", "make", "between", "check", "available", "shift",
           "resolution_shift"]


def available() -> list[str]:
    """Grid names accepted by :func:`make`."""
    return list(NAMES)


def make(
    name: str,
    path: GaussianPath,
    steps: int,
    t_start: float = 1.0,
    t_end: float | None = None,
    rho: float = 7.0,
) -> Tensor:
    """A decreasing float64 grid of ``steps + 1`` times from ``t_start`` to ``t_end``.

    ``t_end`` defaults to ``path.t_min``.
    """
    if name not in NAMES:
        raise unknown_name("grid", name, NAMES)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InterpolantError(f"steps must be a positive integer, got {steps!r}")
    t_end = path.t_min if t_end is None else float(t_end)
    t_start = float(t_start)
    if not (0.0 <= t_end < t_start <= 1.0):
        raise InterpolantError(
            f"need 0 <= t_end < t_start <= 1 (time runs from data at 0 to noise at 1), "
            f"got t_start={t_start}, t_end={t_end}"
        )
    try:
        return torch.tensor(_cached(name, path, steps, t_start, t_end, float(rho)),
                            dtype=torch.float64)
    except TypeError as err:  # an unhashable path: no cache
        if "unhashable" not in str(err):
            raise
        return _make(name, path, steps, t_start, t_end, rho)


@functools.lru_cache(maxsize=256)
def _cached(
    name: str, path: GaussianPath, steps: int, t_start: float, t_end: float, rho: float
) -> tuple[float, ...]:
    """The grid as a tuple of floats, computed once per arguments (paths are immutable)."""
    return tuple(_make(name, path, steps, t_start, t_end, rho).tolist())


def _make(
    name: str, path: GaussianPath, steps: int, t_start: float, t_end: float, rho: float
) -> Tensor:
    if name == "uniform":
        ts = torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)
    elif name == "quadratic":
        ts = torch.linspace(t_start**0.5, t_end**0.5, steps + 1, dtype=torch.float64) ** 2
    else:
        ts = _lam_grid(name, path, steps, t_start, t_end, rho)
    ts[0], ts[-1] = t_start, t_end
    return check(ts)


def _lam_grid(
    name: str, path: GaussianPath, steps: int, t_start: float, t_end: float, rho: float
) -> Tensor:
    lam_start, lam_end = path.lam(t_start), path.lam(t_end)
    if steps == 1 or not lam_start < lam_end:  # sigma(t_start) = 0: no log-SNR to space
        return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)
    clip = min(LAM_MIN, lam_end - 1.0)  # lam of the head jump's landing point
    head = lam_start < clip
    tail = not math.isfinite(lam_end)
    lo = clip if head else lam_start
    hi = max(LAM_MAX, lo + 1.0) if tail else lam_end
    n = steps - int(head) - int(tail)
    if n <= 0:  # two steps, both jumps: meet in the middle
        inner = torch.tensor([0.5 * (lo + hi)], dtype=torch.float64)
    elif name == "logsnr":
        inner = torch.linspace(lo, hi, n + 1, dtype=torch.float64)
    else:
        if not rho > 0:
            raise InterpolantError(f"rho must be positive, got {rho}")
        s_hi, s_lo = math.exp(-lo / rho), math.exp(-hi / rho)  # sigma~^(1/rho) at both ends
        inner = -rho * torch.log(torch.linspace(s_hi, s_lo, n + 1, dtype=torch.float64))
    ts = path.t_of_lam(inner)
    parts = [torch.tensor([t_start], dtype=torch.float64)] if head else []
    parts.append(ts)
    if tail:
        parts.append(torch.tensor([t_end], dtype=torch.float64))
    return torch.cat(parts)


def between(name: str, path: GaussianPath, steps: int, t_from: float, t_to: float,
            rho: float = 7.0) -> Tensor:
    """The grid ``name`` from ``t_from`` to ``t_to`` in either direction: where
    ``t_from < t_to`` (an inversion, data towards noise) it is :func:`make`'s grid from
    ``t_to`` down to ``t_from``, reversed, so an inversion visits the points sampling does."""
    if float(t_from) < float(t_to):
        return make(name, path, steps, t_to, t_from, rho).flip(0)
    return make(name, path, steps, t_from, t_to, rho)


def check(ts: Tensor, increasing: bool = False) -> Tensor:
    """Validate an explicit grid and return it as a float64 CPU tensor.

    A grid is a 1-D tensor of at least two finite times in ``[0, 1]``, strictly decreasing
    (sampling runs from noise towards data), or strictly increasing with ``increasing=True``
    (an inversion runs from data towards noise).
    """
    if not isinstance(ts, Tensor):
        try:
            ts = torch.as_tensor(ts, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise InterpolantError(
                f"a grid must be a name ({', '.join(NAMES)}) or a 1-D tensor of times, "
                f"got {type(ts).__name__}"
            ) from None
    ts = ts.detach().to("cpu", torch.float64)
    if ts.ndim != 1 or ts.numel() < 2:
        raise InterpolantError(
            f"a grid must be a 1-D tensor of at least 2 times, got shape {tuple(ts.shape)}"
        )
    if not torch.isfinite(ts).all() or ts.min() < 0 or ts.max() > 1:
        raise InterpolantError("grid times must be finite and lie in [0, 1]")
    wrong = ts[1:] <= ts[:-1] if increasing else ts[1:] >= ts[:-1]
    if wrong.any():
        bad = int(torch.nonzero(wrong)[0])
        way = ("increasing (an inversion runs from data at t=0 towards noise at t=1)"
               if increasing else "decreasing (noise at t=1 towards data at t=0)")
        raise InterpolantError(
            f"a grid must be strictly {way}; "
            f"t[{bad}]={ts[bad].item():.6g} is followed by t[{bad + 1}]={ts[bad + 1].item():.6g}"
        )
    return ts


def shift(t: Tensor | float, k: float) -> Tensor | float:
    """The time shift ``t' = k t / (1 + (k - 1) t)`` (Esser et al. 2024, SD3, sec. 5.3.2).

    A monotone bijection of ``[0, 1]`` fixing both ends; ``k > 1`` moves times towards noise.
    On the rectified-flow path it scales the noise level ``sigma / alpha = t / (1 - t)`` by
    ``k``, i.e. ``lam(t') = lam(t) - log k``. It shifts a training density (a density of
    :mod:`interpolant.training.densities` with ``:shift=k``) or a sampling grid
    (``grid=grids.shift(grids.make(...), k)``); diffusers calls ``k`` its ``shift``.
    """
    if isinstance(k, bool) or not (isinstance(k, (int, float)) and math.isfinite(k) and k > 0):
        raise InterpolantError(f"the time shift k must be a positive number, got {k!r}")
    return k * t / (1 + (k - 1) * t)


def resolution_shift(m: float, n: float) -> float:
    """SD3's resolution-dependent shift ``k = sqrt(m / n)``: training or sampling ``m``
    pixels (or tokens) with a schedule tuned for ``n`` keeps the per-pixel signal-to-noise."""
    if not (m > 0 and n > 0):
        raise InterpolantError(f"resolution_shift needs positive sizes m, n, got {m}, {n}")
    return math.sqrt(m / n)
