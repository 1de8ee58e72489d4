"""Cold diffusion: deterministic degradations and their two sampling algorithms.

Bansal et al., "Cold Diffusion: Inverting Arbitrary Image Transforms Without Noise" (2022).
A degradation ``D(x0, t)`` (``t`` in ``[0, 1]``, ``D(x0, 0) = x0``) and a restoration network
``R(x_t, t) ~ x0`` are sampled on a grid ``1 = t_S > ... > t_0 = 0`` by

    naive    (Alg. 1):  x_{s-1} = D(R(x_s, s), s-1)
    improved (Alg. 2):  x_{s-1} = x_s - D(x0^, s) + D(x0^, s-1),       x0^ = R(x_s, s).

What holds (each is tested):

* with an exact ``R`` (``R(D(x0, s), s) = x0``) both return ``x0`` exactly;
* for ``D(x, s) = x + s e`` (:class:`Additive`; the paper's Sec. 3.3 first-order model of a
  degradation) the improved step is ``x_{s-1} = x_s - (t_s - t_{s-1}) e`` whatever ``R``
  returns, so it reaches ``x0`` exactly with any ``R``;
* for a linear degradation ``D(x, s) = A_s x`` (:class:`Blur`, :class:`Mask`) the improved
  steps telescope: ``x_final = A_1 x0 + sum_s (A_{s-1} - A_s) x0^_s``. If ``R`` errs by a
  constant ``c`` (``x0^ = x0 + c``) the end error is ``(I - A_1) c``, against ``c`` for the
  naive sampler: no larger for a blur or a mask (spectra in ``[0, 1]``), zero for the part of
  ``c`` a blur keeps (a constant offset), equal for pixels that the mask removes entirely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name

Degradation = Callable[[Tensor, float], Tensor]
Restoration = Callable[[Tensor, float], Tensor]
METHODS = ("improved", "naive")

__all__ = ["Blur", "Mask", "Additive", "METHODS", "sample"]


def _check_t(t: float) -> float:
    if not 0.0 <= float(t) <= 1.0:
        raise InterpolantError(f"a degradation level t must lie in [0, 1], got {t}")
    return float(t)


@dataclass(frozen=True)
class Blur:
    """Gaussian blur as the heat semigroup on the periodic pixel grid:
    ``D(x, t) = exp(t max_std^2 / 2 Lap) x`` over the last two dimensions (``Lap`` the
    5-point Laplacian, applied by FFT), a Gaussian blur of standard deviation about
    ``sqrt(t) max_std`` pixels; constants are kept and ``D(., s) D(., t) = D(., s + t)``."""

    max_std: float = 2.0

    def __post_init__(self) -> None:
        if not self.max_std > 0:
            raise InterpolantError(f"Blur needs max_std > 0, got {self.max_std}")

    def __call__(self, x: Tensor, t: float) -> Tensor:
        t = _check_t(t)
        if x.ndim < 2:
            raise InterpolantError(f"Blur acts on (..., H, W) images, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        fh = 2.0 - 2.0 * torch.cos(2 * torch.pi * torch.fft.fftfreq(h, dtype=torch.float64))
        fw = 2.0 - 2.0 * torch.cos(2 * torch.pi * torch.fft.fftfreq(w, dtype=torch.float64))
        gain = torch.exp(-0.5 * t * self.max_std**2 * (fh[:, None] + fw[None, :]))
        out = torch.fft.ifft2(torch.fft.fft2(x.to(torch.float64)) * gain).real
        return out.to(x.dtype)


@dataclass(frozen=True)
class Mask:
    """Pixels removed in a fixed random order: ``D(x, t) = x * [u >= t]`` with one priority
    ``u ~ U(0, 1)`` per position of ``shape`` (drawn from ``seed``); all removed at ``t = 1``."""

    shape: tuple[int, ...]
    seed: int = 0
    priority: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        object.__setattr__(self, "priority", torch.rand(self.shape, generator=gen,
                                                        dtype=torch.float64))

    def __call__(self, x: Tensor, t: float) -> Tensor:
        t = _check_t(t)
        if tuple(x.shape[-len(self.shape):]) != tuple(self.shape):
            raise InterpolantError(f"Mask was made for shape {self.shape}, got x of shape "
                                   f"{tuple(x.shape)}")
        keep = self.priority >= t if t < 1.0 else torch.zeros_like(self.priority, dtype=bool)
        return x * keep.to(x.dtype)


@dataclass(frozen=True)
class Additive:
    """``D(x, t) = x + t e``: a fixed direction ``e`` added in proportion to ``t`` (the
    first-order model of a degradation in the paper's Sec. 3.3)."""

    direction: Tensor

    def __call__(self, x: Tensor, t: float) -> Tensor:
        return x + _check_t(t) * self.direction.to(x.dtype)


def sample(restore: Restoration, degrade: Degradation, x: Tensor, steps: int,
           method: str = "improved") -> Tensor:
    """Run ``steps`` steps of the naive or improved sampler from ``x = D(x0, 1)`` on the
    uniform grid ``t_s = s / steps`` down to ``t = 0``; returns the final state."""
    if method not in METHODS:
        raise unknown_name("cold-diffusion sampler", method, METHODS)
    if steps < 1:
        raise InterpolantError(f"steps must be >= 1, got {steps}")
    for s in range(steps, 0, -1):
        t, t_prev = s / steps, (s - 1) / steps
        x0 = restore(x, t)
        if x0.shape != x.shape:
            raise InterpolantError(f"the restoration returned shape {tuple(x0.shape)} for a "
                                   f"state of shape {tuple(x.shape)}")
        x = (x - degrade(x0, t) + degrade(x0, t_prev) if method == "improved"
             else degrade(x0, t_prev))
    return x
