"""Interpolating two real samples through their noise: spherical linear interpolation.

Invert both samples to the noise end (:func:`.invert`), interpolate the latents, sample back.
The latents are interpolated by slerp (Shoemake 1985; the DDIM paper's interpolation, Song et
al. 2021, Sec. 5.3), per sample over all non-batch dimensions::

    theta = arccos(<z_a, z_b> / (|z_a| |z_b|))
    slerp(z_a, z_b; w) = sin((1 - w) theta) / sin(theta) z_a + sin(w theta) / sin(theta) z_b

A Gaussian latent in ``d`` dimensions has norm ``~sqrt(d)``; the straight line between two
nearly orthogonal ones passes at norm ``~sqrt(d / 2)`` in the middle, far from where the model
saw noise, while slerp keeps the norm. This is the baseline NoiseDiffusion (Zheng et al. 2024)
improves on for real images, whose inverted latents are not Gaussian.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..solvers.sampling import sample
from .ode import check_data, invert

__all__ = ["interpolate", "slerp"]


def slerp(z_a: Tensor, z_b: Tensor, w: float | Tensor) -> Tensor:
    """Spherical linear interpolation per sample (formula above); ``w`` a float or ``(B,)``.
    Falls back to the straight line where the two latents are parallel."""
    if z_a.shape != z_b.shape:
        raise InterpolantError(f"slerp needs equal shapes, got {tuple(z_a.shape)} and "
                               f"{tuple(z_b.shape)}")
    w = torch.as_tensor(w, dtype=z_a.dtype, device=z_a.device).reshape(-1, *[1] * (z_a.ndim - 1))
    a, b = z_a.flatten(1), z_b.flatten(1)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    theta = torch.arccos(cos.clamp(-1.0, 1.0)).reshape(-1, *[1] * (z_a.ndim - 1))
    sin = torch.sin(theta)
    parallel = sin.abs() < 1e-7
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    c_a = torch.where(parallel, 1.0 - w, torch.sin((1.0 - w) * theta) / safe)
    c_b = torch.where(parallel, w * torch.ones_like(sin), torch.sin(w * theta) / safe)
    return c_a * z_a + c_b * z_b


def interpolate(
    denoiser: Any,
    x_a: Tensor,
    x_b: Tensor,
    weights: Sequence[float] | Tensor,
    solver: str = "ddim",
    steps: int | None = None,
    grid: Any = None,
    cond: Any = None,
    **options: Any,
) -> Tensor:
    """Samples between ``x_a`` and ``x_b`` (each ``(B, ...)``): for every weight ``w`` the
    slerp of their latents, sampled back; shape ``(len(weights), B, ...)``. ``w = 0`` and
    ``w = 1`` reconstruct the inputs within the solver's error."""
    check_data(x_a, "x_a")
    check_data(x_b, "x_b")
    if x_a.shape != x_b.shape:
        raise InterpolantError("x_a and x_b must have the same shape")
    z_a, z_b = (invert(denoiser, x, solver=solver, steps=steps, grid=grid, cond=cond, **options)
                for x in (x_a, x_b))
    return torch.stack([sample(denoiser, slerp(z_a, z_b, float(w)), solver=solver, steps=steps,
                               grid=grid, cond=cond, **options) for w in weights])
