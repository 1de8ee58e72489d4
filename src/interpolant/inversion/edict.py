"""EDICT: exact inversion by two coupled DDIM sequences.

Wallace, Gokul & Naik, "EDICT: Exact Diffusion Inversion via Coupled Transformations" (CVPR
2023), eq. 11-14. With the DDIM step from ``s`` to ``t`` written ``a x + b M(., s)``
(``(a, b)`` of :func:`interpolant.solvers.exponential.ddim_step`; the paper's noise form has
``a = alpha_t / alpha_s``, ``b = sigma_t - a sigma_s`` and ``M = eps``), a sampling step carries
two states ``(x, y)`` and mixes them with ``p`` (the paper uses 0.93)::

    x' = a x + b M(y, s)            y' = a y + b M(x', s)
    x_t = p x' + (1 - p) y'         y_t = p y' + (1 - p) x_t

Every line is an affine coupling, so the step inverts exactly in the reverse order::

    y' = (y_t - (1 - p) x_t) / p    x' = (x_t - (1 - p) y') / p
    y  = (y' - b M(x', s)) / a      x  = (x' - b M(y, s)) / a

Two network evaluations per step. The inversion starts from ``x = y = x0`` and returns the pair
at the noise end; sampling from the pair returns ``(x0, x0)`` up to rounding. ``form="data"``
uses the data-form DDIM step (``a = sigma_t / sigma_s``, ``M = x0``), which also serves paths
whose noise end is pure noise (``alpha(1) = 0``), where the noise form's ``a`` is infinite.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..errors import InterpolantError
from ..solvers.exponential import TARGET, check_form, ddim_step, is_pure_noise
from .common import check_pair, predictor, sampling_points

DEFAULT_P = 0.93

__all__ = ["DEFAULT_P", "edict_invert", "edict_sample"]


def _steps(denoiser: Any, x: Tensor, p: float, form: str, steps: int | None, grid: Any,
           t_noise: float, t_data: float | None) -> list[tuple[float, float, float]]:
    """``(t_s, a, b)`` per sampling step, after checking the options."""
    check_form(form)
    if not 0.0 < p <= 1.0:
        raise InterpolantError(f"EDICT's mixing p must lie in (0, 1] (the paper: 0.93), got {p}")
    pts = sampling_points(denoiser, x, steps, grid, t_noise, t_data)
    if form == "noise" and is_pure_noise(pts[0]):
        raise InterpolantError(
            "EDICT's noise form divides by alpha at the noise end, which is 0 on this path; "
            "use form='data' or a grid that starts below t = 1"
        )
    return [(s.t, *ddim_step(form, s, t)) for s, t in zip(pts[:-1], pts[1:])]


def edict_sample(denoiser: Any, latent: Tensor | tuple[Tensor, Tensor], p: float = DEFAULT_P,
                 form: str = "noise", steps: int | None = None, grid: Any = None,
                 cond: Any = None, t_noise: float = 1.0,
                 t_data: float | None = None) -> tuple[Tensor, Tensor]:
    """EDICT sampling from noise ``latent`` (both sequences start there) or from the pair
    :func:`edict_invert` returned; returns the pair ``(x, y)`` at ``t_data``."""
    x, y = check_pair(latent, "edict_sample")
    model, target = predictor(denoiser, cond), TARGET[form]
    for t_s, a, b in _steps(denoiser, x, p, form, steps, grid, t_noise, t_data):
        x_mid = (x * a).add_(model(y, t_s, target), alpha=b)
        y_mid = (y * a).add_(model(x_mid, t_s, target), alpha=b)
        x = (x_mid * p).add_(y_mid, alpha=1.0 - p)
        y = (y_mid * p).add_(x, alpha=1.0 - p)
    return x, y


def edict_invert(denoiser: Any, x0: Tensor, p: float = DEFAULT_P, form: str = "noise",
                 steps: int | None = None, grid: Any = None, cond: Any = None,
                 t_noise: float = 1.0, t_data: float | None = None) -> tuple[Tensor, Tensor]:
    """The EDICT latent pair of data ``x0`` (the state at ``t_data``, default ``path.t_min``);
    :func:`edict_sample` with the same arguments maps it back exactly (up to rounding)."""
    model, target = predictor(denoiser, cond), TARGET[form]
    x, y = x0, x0
    for t_s, a, b in reversed(_steps(denoiser, x0, p, form, steps, grid, t_noise, t_data)):
        y_mid = (y - (1.0 - p) * x) / p
        x_mid = (x - (1.0 - p) * y_mid) / p
        y = (y_mid - b * model(x_mid, t_s, target)) / a
        x = (x_mid - b * model(y, t_s, target)) / a
    return x, y
