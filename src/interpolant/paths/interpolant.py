"""General stochastic interpolants between two distributions.

Albergo, Boffi & Vanden-Eijnden, "Stochastic Interpolants: A Unifying Framework for Flows and
Diffusions" (2023), eq. 2.1::

    x_t = a(t) x_0 + b(t) x_1 + gamma(t) z,    z ~ N(0, I) independent of (x_0, x_1),

with ``a(0) = b(1) = 1``, ``a(1) = b(0) = 0`` and ``gamma >= 0``, ``gamma(0) = gamma(1) = 0``
(here ``t = 0`` is the data ``x_0``, as everywhere in the library, and ``x_1`` comes from a
second data set or from a Gaussian). With ``x_1 ~ N(0, I)`` and ``gamma = 0`` this is the
one-sided Gaussian path ``alpha = a``, ``sigma = b`` (tested). The velocity of the
probability-flow ODE is ``u(t, x) = E[a' x_0 + b' x_1 + gamma' z | x_t = x]`` and the score is
``s(t, x) = -E[z | x_t = x] / gamma(t)`` wherever ``gamma(t) > 0`` (the paper's
``eta_z``-denoiser, Theorem 2.8).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from ..errors import InterpolantError

Scalar = Callable[[float], float]


@dataclass(frozen=True)
class Interpolant:
    """``x_t = a(t) x_0 + b(t) x_1 + gamma(t) z``, given by six scalar functions of ``t``
    (the coefficients and their derivatives, in float64). Build one with a preset
    (:meth:`linear`, :meth:`trig`, :meth:`gaussian`) or from your own functions."""

    a: Scalar
    b: Scalar
    gamma: Scalar
    d_a: Scalar
    d_b: Scalar
    d_gamma: Scalar
    name: str = "interpolant"

    t_min: ClassVar[float] = 0.0
    t_max: ClassVar[float] = 1.0
    default_grid: ClassVar[str] = "uniform"

    def __post_init__(self) -> None:
        ends = [(self.a(0.0), 1.0), (self.a(1.0), 0.0), (self.b(0.0), 0.0), (self.b(1.0), 1.0)]
        if any(not math.isclose(v, want, abs_tol=1e-12) for v, want in ends):
            raise InterpolantError(
                f"interpolant {self.name!r} needs a(0) = b(1) = 1 and a(1) = b(0) = 0, got "
                f"a(0)={ends[0][0]}, a(1)={ends[1][0]}, b(0)={ends[2][0]}, b(1)={ends[3][0]}"
            )
        for t in (0.0, 0.25, 0.5, 0.75, 1.0):
            if not self.gamma(t) >= 0.0:
                raise InterpolantError(f"gamma(t) must be >= 0, got gamma({t}) = {self.gamma(t)}")
        if not math.isclose(self.gamma(0.0), 0.0, abs_tol=1e-12):
            raise InterpolantError(f"gamma(0) must be 0 (x_t is the data x_0 at t = 0), got "
                                   f"gamma(0) = {self.gamma(0.0)}")

    def __repr__(self) -> str:  # the coefficient functions have no useful repr
        return f"Interpolant({self.name})"

    def check_pinned(self, why: str) -> None:
        """Refuse ``gamma(1) != 0`` where a method starts from (or ends at) exact ``x_1`` draws
        (the paper's ``gamma(0) = gamma(1) = 0``); ``why`` names the method."""
        if not math.isclose(self.gamma(1.0), 0.0, abs_tol=1e-12):
            raise InterpolantError(f"{why} needs gamma(1) = 0 (x_t is the source x_1 at t = 1), "
                                   f"but {self.name} has gamma(1) = {self.gamma(1.0)}")

    def check_deterministic(self, why: str) -> None:
        """Refuse ``gamma > 0`` anywhere (on a grid of 101 times) where ``why`` has no noise
        ``z`` to draw."""
        worst = max(self.gamma(k / 100) for k in range(101))
        if worst > 0.0:
            raise InterpolantError(f"{why} needs gamma(t) = 0 throughout, but {self.name} has "
                                   f"gamma up to {worst:g}; use noise 0")

    def scalars(self, t: float) -> tuple[float, float, float, float, float, float]:
        """``(a, b, gamma, a', b', gamma')`` at ``t``."""
        t = float(t)
        return (self.a(t), self.b(t), self.gamma(t), self.d_a(t), self.d_b(t), self.d_gamma(t))

    @staticmethod
    def _noise(scale: float) -> tuple[Scalar, Scalar]:
        """``gamma(t) = scale sqrt(2 t (1 - t))`` (the paper's choice, eq. 4.7) and its
        derivative ``scale (1 - 2t) / sqrt(2 t (1 - t))`` (0 where gamma is 0)."""
        if not (math.isfinite(scale) and scale >= 0.0):
            raise InterpolantError(f"the noise scale of gamma must be >= 0, got {scale}")

        def gamma(t: float) -> float:
            return scale * math.sqrt(max(2.0 * t * (1.0 - t), 0.0))

        def d_gamma(t: float) -> float:
            root = math.sqrt(max(2.0 * t * (1.0 - t), 0.0))
            return scale * (1.0 - 2.0 * t) / root if root > 0.0 else 0.0

        return gamma, d_gamma

    @classmethod
    def linear(cls, noise: float = 0.0) -> Interpolant:
        """``a = 1 - t``, ``b = t``, ``gamma = noise sqrt(2 t (1 - t))``."""
        gamma, d_gamma = cls._noise(noise)
        return cls(lambda t: 1.0 - t, lambda t: t, gamma, lambda t: -1.0, lambda t: 1.0,
                   d_gamma, name=f"linear(noise={noise:g})")

    @classmethod
    def trig(cls, noise: float = 0.0) -> Interpolant:
        """``a = cos(pi t / 2)``, ``b = sin(pi t / 2)``, ``gamma = noise sqrt(2 t (1 - t))``."""
        gamma, d_gamma = cls._noise(noise)
        h = 0.5 * math.pi
        return cls(lambda t: math.cos(h * t), lambda t: math.sin(h * t), gamma,
                   lambda t: -h * math.sin(h * t), lambda t: h * math.cos(h * t), d_gamma,
                   name=f"trig(noise={noise:g})")

    @classmethod
    def gaussian(cls, path) -> Interpolant:  # a GaussianPath: alpha(1) = 0, sigma(0) = 0
        """The one-sided interpolant of a Gaussian path: ``a = alpha``, ``b = sigma``,
        ``gamma = 0`` (``x_1`` is then the noise ``eps``)."""
        return cls(path.alpha, path.sigma, lambda t: 0.0, path.d_alpha, path.d_sigma,
                   lambda t: 0.0, name=f"gaussian({type(path).__name__})")
