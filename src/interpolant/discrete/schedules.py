"""Noise schedules of discrete processes: ``alpha(t)``, the probability that a token is intact.

``alpha`` decreases from ``alpha(0) = 1`` (clean data) to ``alpha(1) = 0`` (pure noise). Every
schedule gives ``alpha(t)``, its derivative ``dalpha(t)`` and the inverse ``t_of_alpha``
(needed by the first-hitting sampler, which draws the next unmasking time in ``alpha``).

    linear      alpha(t) = 1 - t                              (MDLM, Sahoo et al. 2024)
    cosine      alpha(t) = 1 - cos(pi/2 (1 - t))              (MD4, Shi et al. 2024, table 1)
    polynomial  alpha(t) = 1 - t^w                            (MD4)
    tabulated   piecewise-linear through given (t_i, alpha_i) points

All values are float64 tensors; ``t`` is a float64 tensor of any shape.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name

__all__ = ["Cosine", "Linear", "Polynomial", "Schedule", "Tabulated", "schedule"]


def _as_time(t: Tensor | float) -> Tensor:
    return torch.as_tensor(t, dtype=torch.float64)


class Schedule:
    """``alpha(t)`` with ``alpha(0) = 1``, ``alpha(1) = 0``, strictly decreasing in between."""

    name = ""

    def alpha(self, t: Tensor | float) -> Tensor:
        raise NotImplementedError

    def dalpha(self, t: Tensor | float) -> Tensor:
        raise NotImplementedError

    def t_of_alpha(self, alpha: Tensor | float) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Linear(Schedule):
    """``alpha(t) = 1 - t``; the MD4/MDLM weight ``-alpha'/(1 - alpha)`` is ``1/t``."""

    name = "linear"

    def alpha(self, t: Tensor | float) -> Tensor:
        return 1.0 - _as_time(t)

    def dalpha(self, t: Tensor | float) -> Tensor:
        return torch.full_like(_as_time(t), -1.0)

    def t_of_alpha(self, alpha: Tensor | float) -> Tensor:
        return 1.0 - _as_time(alpha)


class Cosine(Schedule):
    """``alpha(t) = 1 - cos(pi/2 (1 - t))`` (MD4's cosine), ``alpha' = -pi/2 sin(pi/2 (1 - t))``."""

    name = "cosine"

    def alpha(self, t: Tensor | float) -> Tensor:
        return 1.0 - torch.cos(0.5 * math.pi * (1.0 - _as_time(t)))

    def dalpha(self, t: Tensor | float) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * (1.0 - _as_time(t)))

    def t_of_alpha(self, alpha: Tensor | float) -> Tensor:
        return 1.0 - torch.arccos(1.0 - _as_time(alpha)) * (2.0 / math.pi)


class Polynomial(Schedule):
    """``alpha(t) = 1 - t^w`` (MD4), ``w > 0``; ``w = 1`` is :class:`Linear`."""

    name = "polynomial"

    def __init__(self, w: float = 2.0) -> None:
        if not w > 0:
            raise InterpolantError(f"Polynomial schedule needs exponent w > 0, got {w}")
        self.w = float(w)

    def alpha(self, t: Tensor | float) -> Tensor:
        return 1.0 - _as_time(t) ** self.w

    def dalpha(self, t: Tensor | float) -> Tensor:
        return -self.w * _as_time(t) ** (self.w - 1.0)

    def t_of_alpha(self, alpha: Tensor | float) -> Tensor:
        return (1.0 - _as_time(alpha)) ** (1.0 / self.w)

    def __repr__(self) -> str:
        return f"Polynomial(w={self.w})"


class Tabulated(Schedule):
    """Piecewise-linear ``alpha`` through points ``(times[i], alphas[i])``.

    ``times`` must run from 0 to 1 increasing, ``alphas`` from 1 to 0 strictly decreasing
    (a masked token must never come back in the forward process).
    """

    name = "tabulated"

    def __init__(self, times: Tensor, alphas: Tensor) -> None:
        times = torch.as_tensor(times, dtype=torch.float64)
        alphas = torch.as_tensor(alphas, dtype=torch.float64)
        if times.ndim != 1 or times.shape != alphas.shape or len(times) < 2:
            raise InterpolantError("Tabulated schedule needs two 1-D tensors of equal length >= 2")
        if times[0] != 0 or times[-1] != 1 or not bool((times.diff() > 0).all()):
            raise InterpolantError("Tabulated schedule times must increase from 0 to 1")
        if alphas[0] != 1 or alphas[-1] != 0 or not bool((alphas.diff() < 0).all()):
            raise InterpolantError(
                "Tabulated schedule alphas must decrease strictly from 1 at t=0 to 0 at t=1 "
                f"(not monotone: {alphas.tolist()}); sort them or drop repeated values"
            )
        self.times, self.alphas = times, alphas

    @staticmethod
    def _interp(x: Tensor, xs: Tensor, ys: Tensor) -> tuple[Tensor, Tensor]:
        """Linear interpolation of increasing ``xs``; also the slope of the segment."""
        i = torch.searchsorted(xs, x.clamp(xs[0], xs[-1]), right=True).clamp(1, len(xs) - 1)
        slope = (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])
        return ys[i - 1] + slope * (x - xs[i - 1]), slope

    def alpha(self, t: Tensor | float) -> Tensor:
        return self._interp(_as_time(t), self.times, self.alphas)[0]

    def dalpha(self, t: Tensor | float) -> Tensor:
        return self._interp(_as_time(t), self.times, self.alphas)[1]

    def t_of_alpha(self, alpha: Tensor | float) -> Tensor:
        return self._interp(_as_time(alpha), self.alphas.flip(0), self.times.flip(0))[0]


_NAMED = {"linear": Linear, "cosine": Cosine, "polynomial": Polynomial}


def schedule(spec: str | Schedule) -> Schedule:
    """A schedule by name (``linear``, ``cosine``, ``polynomial``) or the schedule itself."""
    if isinstance(spec, Schedule):
        return spec
    if spec not in _NAMED:
        raise unknown_name("discrete schedule", spec, _NAMED)
    return _NAMED[spec]()
