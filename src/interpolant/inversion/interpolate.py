"""Interpolating two real samples through their noise: spherical linear interpolation.

Invert both samples to the noise end (:func:`.invert`), interpolate the latents, sample back.
The latents are interpolated by slerp (Shoemake 1985; the DDIM paper's interpolation, Song et
al. 2021, Sec. 5.3), per sample over all non-batch dimensions::

    theta = arccos(<z_a, z_b> / (|z_a| |z_b|))
    slerp(z_a, z_b; w) = sin((1 - w) theta) / sin(theta) z_a + sin(w theta) / sin(theta) z_b

A Gaussian latent in ``d`` dimensions has norm ``~sqrt(d)``; the straight line between two
nearly orthogonal ones passes at norm ``~sqrt(d / 2)`` in the middle, far from where the model
saw noise, while slerp keeps the norm.

NoiseDiffusion (Zheng et al., "NoiseDiffusion: Correcting Noise for Image Interpolation with
Diffusion Models beyond Spherical Linear Interpolation", ICLR 2024; the formula of its official
code) corrects the latents of *real* samples, which are not Gaussian. It inverts both only to an
intermediate time ``t`` (``l_a, l_b``, states of ``x_t = alpha_t x + sigma_t eps``), then with
``c = cos(pi w / 2)``, ``s = sin(pi w / 2)``, fresh-noise weight ``gamma`` and raw-image weight
``k`` (1.2 in the code)::

    a = sqrt(1 - gamma^2) c,   b = sqrt(1 - gamma^2) s,   mu = k a / (a + b),   nu = k b / (a + b)
    z = a clip(l_a) + b clip(l_b) + (mu - a) alpha_t x_a + (nu - b) alpha_t x_b + gamma sigma_t eps
    z = clip(z)                                          (clip to [-bound, bound])

so the noise part keeps its variance (``a^2 + b^2 + gamma^2 = 1``), the signal is ``alpha_t (mu
x_a + nu x_b)`` with ``mu + nu = k`` (the raw images re-injected), and extreme values are
suppressed; then it samples from ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..solvers.base import Noise
from ..solvers.sampling import sample
from .ode import check_data, invert

__all__ = ["interpolate", "noise_diffusion", "slerp"]


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


def noise_diffusion(l_a: Tensor, l_b: Tensor, x_a: Tensor, x_b: Tensor, w: float,
                    alpha_t: float, sigma_t: float, gamma: float = 0.0, boost: float = 1.2,
                    bound: float | None = 2.0,
                    generator: torch.Generator | None = None) -> Tensor:
    """NoiseDiffusion's corrected latent at weight ``w`` from the noisy states ``l_a, l_b`` at a
    time with ``(alpha_t, sigma_t)`` and the raw samples ``x_a, x_b`` (module docstring);
    ``bound=None`` turns the clipping off."""
    if not 0.0 <= gamma < 1.0:
        raise InterpolantError(f"gamma (the fresh-noise weight) must lie in [0, 1), got {gamma}")
    root = math.sqrt(1.0 - gamma * gamma)
    a, b = root * math.cos(0.5 * math.pi * w), root * math.sin(0.5 * math.pi * w)
    mu, nu = boost * a / (a + b), boost * b / (a + b)

    def clip(v: Tensor) -> Tensor:
        return v if bound is None else v.clamp(-bound, bound)

    z = a * clip(l_a) + b * clip(l_b) + (mu - a) * alpha_t * x_a + (nu - b) * alpha_t * x_b
    if gamma > 0.0:
        z = z + gamma * sigma_t * Noise(generator).like(z)
    return clip(z)


def interpolate(
    denoiser: Any,
    x_a: Tensor,
    x_b: Tensor,
    weights: Sequence[float] | Tensor,
    solver: str = "ddim",
    steps: int | None = None,
    grid: Any = None,
    cond: Any = None,
    method: str = "slerp",
    t: float = 0.5,
    **options: Any,
) -> Tensor:
    """Samples between ``x_a`` and ``x_b`` (each ``(B, ...)``), shape ``(len(weights), B, ...)``.

    ``method="slerp"``: the slerp of their latents at the noise end, sampled back (``w = 0`` and
    ``w = 1`` reconstruct the inputs within the solver's error). ``method="noisediffusion"``:
    both inverted to time ``t`` only (the official code: 140 of 250 DDIM steps, ``t ~ 0.56``),
    corrected by :func:`noise_diffusion` (its ``gamma``, ``boost``, ``bound`` and ``generator``
    among ``options``), sampled back from ``t``; ``steps`` counts the steps of ``[t_min, t]``.
    """
    check_data(x_a, "x_a")
    check_data(x_b, "x_b")
    if x_a.shape != x_b.shape:
        raise InterpolantError("x_a and x_b must have the same shape")
    if method not in ("slerp", "noisediffusion"):
        raise unknown_name("interpolation method", method, ("slerp", "noisediffusion"))
    nd = {k: options.pop(k) for k in ("gamma", "boost", "bound", "generator") if k in options}
    t_top = 1.0 if method == "slerp" else float(t)
    run = {"solver": solver, "steps": steps, "grid": grid, "cond": cond, **options}
    l_a, l_b = (invert(denoiser, x, t_end=t_top, **run) for x in (x_a, x_b))
    alpha_t, sigma_t = denoiser.path.alpha(t_top), denoiser.path.sigma(t_top)
    latents = [slerp(l_a, l_b, float(w)) if method == "slerp" else
               noise_diffusion(l_a, l_b, x_a, x_b, float(w), alpha_t, sigma_t, **nd)
               for w in weights]
    return torch.stack([sample(denoiser, z, t_start=t_top, **run) for z in latents])
