"""BDIA: exact inversion of DDIM by bi-directional integration approximation.

Zhang, Lewis & Kleijn, "Exact Diffusion Inversion via Bi-directional Integration
Approximation" (ECCV 2024), the BDIA-DDIM update. On the sampling grid ``t_0 > ... > t_N``
(noise to data) let ``Phi_i(t)`` be the DDIM map from ``z_i`` at ``t_i`` to time ``t`` with the
one data prediction ``D_i = D(z_i, t_i)`` (:func:`interpolant.solvers.exponential.ddim_step`)::

    Phi_i(t) = (sigma_t / sigma_i) z_i - alpha_t expm1(lam_i - lam_t) D_i

Sampling takes one DDIM step, then integrates each interval ``[t_{i-1}, t_{i+1}]`` as the
backward half ``t_{i-1} -> t_i`` plus the forward half ``t_i -> t_{i+1}``, both from ``z_i``::

    z_1     = Phi_0(t_1)
    z_{i+1} = Phi_i(t_{i+1}) + gamma (z_{i-1} - Phi_i(t_{i-1}))        i = 1 .. N-1

``gamma = 0`` is DDIM; ``gamma = 1`` is the paper's ``z_{i+1} = z_{i-1} - Delta(t_i -> t_{i-1} |
z_i) + Delta(t_i -> t_{i+1} | z_i)``. Each update is affine in ``z_{i-1}`` given ``z_i``, so for
``gamma > 0`` it inverts exactly (one evaluation per step)::

    z_{i-1} = Phi_i(t_{i-1}) + (z_{i+1} - Phi_i(t_{i+1})) / gamma

from the pair ``(z_N, z_{N-1})`` at the data end; ``z_{N-1}`` comes from the data ``z_N = x0``
by one DDIM inversion step (the one approximate step). The latent is the pair ``(z_0, z_1)``:
sampling from it returns ``x0`` up to rounding, amplified by at most ``gamma^-N``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..errors import InterpolantError
from ..solvers.exponential import Point, ddim_step
from .common import Predict, check_pair, predictor, sampling_points

DEFAULT_GAMMA = 0.96

__all__ = ["DEFAULT_GAMMA", "bdia_invert", "bdia_sample"]


def _phi(z: Tensor, d: Tensor, s: Point, t: Point) -> Tensor:
    """The DDIM map ``Phi(t)`` from ``z`` at ``s`` with data prediction ``d``."""
    c_x, c_0 = ddim_step("data", s, t)
    return (z * c_x).add_(d, alpha=c_0)


def _check_gamma(gamma: float, inverting: bool) -> float:
    gamma = float(gamma)
    if not 0.0 <= gamma <= 1.0:
        raise InterpolantError(f"BDIA's gamma must lie in [0, 1], got {gamma}")
    if inverting and gamma == 0.0:
        raise InterpolantError(
            "BDIA with gamma = 0 is DDIM, which has no exact inverse; use gamma in (0, 1] "
            "(e.g. 0.96) or ip.invert for DDIM inversion"
        )
    return gamma


def bdia_sample(denoiser: Any, latent: Tensor | tuple[Tensor, Tensor],
                gamma: float = DEFAULT_GAMMA, steps: int | None = None, grid: Any = None,
                cond: Any = None, t_noise: float = 1.0, t_data: float | None = None) -> Tensor:
    """BDIA-DDIM sampling from ``latent``: noise ``z_0`` (the first step is DDIM) or the pair
    ``(z_0, z_1)`` that :func:`bdia_invert` returns. Returns the state at ``t_data``."""
    gamma = _check_gamma(gamma, inverting=False)
    z_prev, z = check_pair(latent, "bdia_sample")
    pts = sampling_points(denoiser, z, steps, grid, t_noise, t_data)
    predict = predictor(denoiser, cond)
    if z is z_prev:  # from noise: one DDIM step
        z = _phi(z_prev, predict(z_prev, pts[0].t, "x0"), pts[0], pts[1])
    for i in range(1, len(pts) - 1):
        d = predict(z, pts[i].t, "x0")
        z_next = _phi(z, d, pts[i], pts[i + 1])
        if gamma > 0.0:
            z_next.add_(z_prev - _phi(z, d, pts[i], pts[i - 1]), alpha=gamma)
        z_prev, z = z, z_next
    return z


def bdia_invert(denoiser: Any, x0: Tensor, gamma: float = DEFAULT_GAMMA,
                steps: int | None = None, grid: Any = None, cond: Any = None,
                t_noise: float = 1.0, t_data: float | None = None) -> tuple[Tensor, Tensor]:
    """The BDIA latent ``(z_0, z_1)`` of data ``x0`` (taken as the state at ``t_data``, default
    ``path.t_min``) on the sampling grid of ``steps`` steps; ``bdia_sample`` with the same
    arguments maps it back to ``x0`` exactly (up to rounding)."""
    gamma = _check_gamma(gamma, inverting=True)
    pts = sampling_points(denoiser, x0, steps, grid, t_noise, t_data)
    predict: Predict = predictor(denoiser, cond)
    n = len(pts) - 1
    z_next = x0  # z_{i+1}
    z = _phi(x0, predict(x0, pts[n].t, "x0"), pts[n], pts[n - 1])  # one DDIM inversion step
    for i in range(n - 1, 0, -1):
        d = predict(z, pts[i].t, "x0")
        z_prev = _phi(z, d, pts[i], pts[i - 1])
        z_prev.add_(z_next - _phi(z, d, pts[i], pts[i + 1]), alpha=1.0 / gamma)
        z_next, z = z, z_prev
    return z, z_next
