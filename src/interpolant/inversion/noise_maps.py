"""DDPM noise maps: the noises that make stochastic sampling reproduce given data exactly.

DDPM (DDIM with ``eta``, default 1) samples on the grid ``t_0 > ... > t_N`` by
(:func:`interpolant.solvers.ddim.ddim_table`)::

    x_{i+1} = c_x x_i + c_0 D(x_i, t_i) + s_i z_i,      z_i ~ N(0, I)

Given data ``x0`` and any states ``x_0 .. x_{N-1}`` (with ``x_N = x0``), the noises

    z_i = (x_{i+1} - c_x x_i - c_0 D(x_i, t_i)) / s_i

make the sampler return exactly those states: ``(x_0, z_0 .. z_{N-1})`` is a latent of ``x0``
(exact up to rounding). Two ways to choose the states:

* ``kind="edit-friendly"`` (Huberman-Spiegelglas, Kulikov & Michaeli, "An Edit Friendly DDPM
  Noise Space: Inversion and Manipulations", CVPR 2024, eq. 6-7): each ``x_i = alpha_i x0 +
  sigma_i eps_i`` with *independent* ``eps_i``. The paper states these maps are not standard
  normal and not independent across steps: the noise part of ``x_{i+1} - c_x x_i`` has variance
  ``sigma_{i+1}^2 + c_x^2 sigma_i^2 = s_i^2 + 2 c_x^2 sigma_i^2 > s_i^2``, and ``eps_{i+1}``
  appears in both ``z_i`` and ``z_{i+1}`` with opposite signs.
* ``kind="dpm-encoder"`` (Wu & De la Torre, "A Latent Space of Stochastic Diffusion Models for
  Zero-Shot Image Editing and Guidance", ICCV 2023, the DPM-Encoder of CycleDiffusion):
  ``x_0 = alpha_0 x0 + sigma_0 eps`` and each ``x_{i+1} ~ q(x_{i+1} | x_i, x0) = N(c_x x_i + c_0
  x0, s_i^2)``, the sampler's own step with the true ``x0``; then ``z_i = xi_i + c_0 (x0 -
  D(x_i, t_i)) / s_i``, which is ``N(0, I)`` where the model is exact.

Decoding the latent with another condition (or another model: :mod:`.cycle`) edits ``x0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..solvers.base import Model, Noise
from ..solvers.ddim import DDIM, ddim_table
from .common import predictor, sampling_points

KINDS = ("edit-friendly", "dpm-encoder")

__all__ = ["KINDS", "NoiseMap", "ddpm_decode", "noise_maps"]


class NoiseMap(NamedTuple):
    """A DDPM latent: the state ``x`` at the noise end and the noise ``zs[i]`` of every step
    (shape ``(N, *x.shape)``; zero where a step draws no noise)."""

    x: Tensor
    zs: Tensor


class Recorded(Noise):
    """A noise source that hands out given noises in order (the steps that draw noise)."""

    __slots__ = ("_zs",)

    def __init__(self, zs: Sequence[Tensor]) -> None:
        super().__init__(None)
        self._zs = list(zs)[::-1]

    def like(self, x: Tensor) -> Tensor:
        return self._zs.pop()


def _plan(denoiser: Any, x: Tensor, eta: float, steps: int | None, grid: Any, t_noise: float,
          t_data: float | None) -> tuple[Tensor, list[tuple[float, float, float]]]:
    if not 0.0 < float(eta) <= 1.0:
        raise InterpolantError(
            f"noise maps need a stochastic sampler: eta in (0, 1] (1 = DDPM), got {eta}; for "
            "eta = 0 use ip.invert"
        )
    pts = sampling_points(denoiser, x, steps, grid, t_noise, t_data)
    ts = torch.tensor([p.t for p in pts], dtype=torch.float64)
    return ts, ddim_table(denoiser.path, ts, float(eta))


def noise_maps(
    denoiser: Any,
    x0: Tensor,
    kind: str = "edit-friendly",
    steps: int | None = None,
    grid: Any = None,
    cond: Any = None,
    eta: float = 1.0,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    t_noise: float = 1.0,
    t_data: float | None = None,
) -> NoiseMap:
    """The DDPM latent of ``x0`` (the state at ``t_data``, default ``path.t_min``) on the
    sampling grid: ``kind`` ``"edit-friendly"`` or ``"dpm-encoder"`` (module docstring);
    ``cond`` is the condition of ``x0`` (its class), ``generator`` draws the states."""
    if kind not in KINDS:
        raise unknown_name("noise-map kind", kind, KINDS)
    ts, table = _plan(denoiser, x0, eta, steps, grid, t_noise, t_data)
    path, noise, predict = denoiser.path, Noise(generator), predictor(denoiser, cond)
    n = len(table)
    if kind == "edit-friendly":
        alpha, sigma = path.alpha(ts).tolist(), path.sigma(ts).tolist()
        states = [alpha[i] * x0 + sigma[i] * noise.like(x0) for i in range(n)] + [x0]
    else:
        states = [path.alpha(float(ts[0])) * x0 + path.sigma(float(ts[0])) * noise.like(x0)]
        for c_x, c_0, s in table[:-1]:
            states.append(c_x * states[-1] + c_0 * x0 + s * noise.like(x0))
        states.append(x0)
    zs = torch.zeros((n, *x0.shape), dtype=x0.dtype, device=x0.device)
    for i, (c_x, c_0, s) in enumerate(table):
        if s > 0.0:
            mean = c_x * states[i] + c_0 * predict(states[i], float(ts[i]), "x0")
            zs[i] = (states[i + 1] - mean) / s
    return NoiseMap(states[0], zs)


def ddpm_decode(
    denoiser: Any,
    latent: NoiseMap,
    steps: int | None = None,
    grid: Any = None,
    cond: Any = None,
    eta: float = 1.0,
    t_noise: float = 1.0,
    t_data: float | None = None,
) -> Tensor:
    """DDPM sampling (the ``ddim`` solver with ``eta``) from ``latent.x`` with the recorded
    noises ``latent.zs``; with the arguments of :func:`noise_maps` it returns ``x0`` (up to
    rounding), with another ``cond`` or denoiser it edits it."""
    if not isinstance(latent, NoiseMap):
        raise InterpolantError("ddpm_decode takes the NoiseMap that noise_maps returned")
    ts, table = _plan(denoiser, latent.x, eta, steps, grid, t_noise, t_data)
    if latent.zs.shape != (len(table), *latent.x.shape):
        raise InterpolantError(
            f"the noise map has {latent.zs.shape[0]} steps but this grid has {len(table)}; "
            "decode with the steps and grid it was made with"
        )
    drawn = [z for z, (_, _, s) in zip(latent.zs, table) if s > 0.0]
    model = Model(lambda x, t, target: denoiser(x, t, cond, target))
    x = latent.x
    for state in DDIM(eta=float(eta)).run(model, x, ts, denoiser.path, Recorded(drawn)):
        x = state.x
    return x
