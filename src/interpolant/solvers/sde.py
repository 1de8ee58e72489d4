"""Euler-Maruyama for the family of SDEs that share the probability-flow ODE's marginals, on
any path (Gaussian or a general stochastic interpolant).

Albergo, Boffi & Vanden-Eijnden, "Stochastic Interpolants" (2023), Theorem 2.7 / eq. 2.33:
for every ``eps(t) >= 0`` the time-reversed SDE ``dX = [u(t, X) - eps(t) s(t, X)] dt +
sqrt(2 eps(t)) dW`` (``t`` decreasing, ``u`` the velocity, ``s`` the score) has the same
marginals as the ODE ``dX = u dt``. Discretised at the left end of each step (``dt < 0``)::

    x <- x + dt (u(x, t) - eps(t) s(x, t)) + sqrt(2 eps(t) |dt|) z

``diffusion`` is ``eps``: a number or a callable ``t -> eps(t)``. Where ``eps(t) = 0`` the
score is not asked for (one evaluation instead of two); with ``eps = 0`` throughout this is
``euler``. On a Gaussian path ``eps = g^2 / 2`` gives ``euler-maruyama`` with ``g^2``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from .base import Model, Noise, Solver, State, register


@register("sde")
@dataclass(frozen=True)
class InterpolantSDE(Solver):
    """Euler-Maruyama on ``dX = [u - eps s] dt + sqrt(2 eps) dW`` (``t`` decreasing), any path.
    Two evaluations per step where ``eps(t) > 0`` (velocity and score), one where it is 0."""

    diffusion: float | Callable[[float], float] = 1.0
    needs_gaussian = False
    nfe_per_step = 2

    def __post_init__(self) -> None:
        d = self.diffusion
        if not callable(d) and not (isinstance(d, (int, float)) and not isinstance(d, bool)
                                    and math.isfinite(d) and d >= 0):
            raise InterpolantError(
                f"diffusion must be eps >= 0 (a finite number) or a callable t -> eps(t), got {d!r}"
            )

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return callable(self.diffusion) or self.diffusion > 0

    def eps(self, t: float) -> float:
        value = float(self.diffusion(t)) if callable(self.diffusion) else float(self.diffusion)
        if not (math.isfinite(value) and value >= 0.0):
            raise InterpolantError(f"the diffusion eps(t) must be finite and >= 0, got "
                                   f"{value} at t={t}")
        return value

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: Any, noise: Noise
    ) -> Iterator[State]:
        times = ts.tolist()
        for i, (s, t) in enumerate(zip(times[:-1], times[1:])):
            dt, eps = t - s, self.eps(s)
            drift = model(x, s, "velocity")
            if eps > 0.0:
                drift = drift - eps * model(x, s, "score")
            x = torch.add(x, drift, alpha=dt)
            if eps > 0.0:
                x = x + math.sqrt(2.0 * eps * abs(dt)) * noise.like(x)
            yield State(i + 1, t, x, None, model.nfe)
