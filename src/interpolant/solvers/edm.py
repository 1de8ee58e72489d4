"""The EDM sampler: Karras et al.'s Algorithm 2, line for line, on any Gaussian path.

Karras, Aittala, Aila & Laine, "Elucidating the Design Space of Diffusion-Based Generative
Models" (NeurIPS 2022), Algorithm 2. EDM's state is the scaled state ``x~ = x / alpha`` at noise
level ``sigma~ = sigma / alpha = exp(-lam)`` (its ``t_i``), where the probability-flow ODE is
``dx~/dsigma~ = (x~ - D(x~; sigma~)) / sigma~``; on VE/EDM paths (``alpha = 1``) these are ``x``
and ``sigma`` themselves. Step ``i`` of ``N``::

    3:  sample eps_i ~ N(0, S_noise^2 I)
    4:  gamma_i = min(S_churn / N, sqrt(2) - 1)  if S_tmin <= t_i <= S_tmax  else 0
    5:  t^_i = t_i + gamma_i t_i
    6:  x^_i = x_i + sqrt(t^_i^2 - t_i^2) eps_i
    7:  d_i = (x^_i - D(x^_i; t^_i)) / t^_i
    8:  x_{i+1} = x^_i + (t_{i+1} - t^_i) d_i
    9:  if t_{i+1} != 0:
    10:     d'_i = (x_{i+1} - D(x_{i+1}; t_{i+1})) / t_{i+1}
    11:     x_{i+1} = x^_i + (t_{i+1} - t^_i) (d_i / 2 + d'_i / 2)

so a step costs 2 NFE and the last step to ``sigma = 0`` costs 1. With ``S_churn = 0`` it is
deterministic Heun in ``sigma~`` (Algorithm 1). The churned level ``t^`` is held inside the
path's time range (at most ``t = 1``). A step from pure noise (:mod:`.exponential`: ``sigma~``
infinite or ~1e16), or in an inversion into it, is a DDIM step without churn: Heun's average
there would multiply two noise predictions by ``sigma~``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, register
from .exponential import Point, ddim_step, is_pure_noise, point, points


@register("edm")
@dataclass(frozen=True)
class EDMSampler(Solver):
    """Karras et al.'s Algorithm 2: Heun in ``sigma~`` with churn ``s_churn`` applied where
    ``s_tmin <= sigma~ <= s_tmax``, its noise scaled by ``s_noise``. ``s_churn = 0``
    (the default) is deterministic. NFE = 2 per step, 1 for a last step to ``sigma = 0``."""

    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = math.inf
    s_noise: float = 1.0
    nfe_per_step = 2
    invertible = True  # checked: tests/inversion

    def __post_init__(self) -> None:
        if not (math.isfinite(self.s_churn) and self.s_churn >= 0.0):
            raise InterpolantError(
                f"s_churn must be a finite number >= 0 (0 = deterministic), got {self.s_churn}"
            )
        if not (0.0 <= self.s_tmin <= self.s_tmax):
            raise InterpolantError(
                f"need 0 <= s_tmin <= s_tmax (the sigma~ range where churn applies), "
                f"got s_tmin={self.s_tmin}, s_tmax={self.s_tmax}"
            )
        if not (math.isfinite(self.s_noise) and self.s_noise >= 0.0):
            raise InterpolantError(f"s_noise must be a finite number >= 0, got {self.s_noise}")

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.s_churn > 0.0 and self.s_noise > 0.0

    def churned(self, path: GaussianPath, s: Point, n: int) -> Point:
        """Lines 4-5: the point ``t^_i`` of raised noise (``s`` itself without churn)."""
        sigma_s = s.sigma / s.alpha
        in_range = self.s_tmin <= sigma_s <= self.s_tmax
        gamma = min(self.s_churn / n, math.sqrt(2.0) - 1.0) if in_range else 0.0
        if gamma == 0.0:
            return s
        hat = point(path, min(path.t_of_lam(-math.log(sigma_s * (1.0 + gamma))), path.t_max))
        return hat if hat.t > s.t and not is_pure_noise(hat) else s

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        pts = points(path, ts)
        n = len(pts) - 1
        for i, (s, t) in enumerate(zip(pts[:-1], pts[1:])):
            if is_pure_noise(s) or is_pure_noise(t):  # DDIM from (inverting: into) pure noise
                x0 = model(x, s.t, "x0")
                c_x, c_0 = ddim_step("data", s, t)
                x = c_x * x + c_0 * x0
                yield State(i + 1, t.t, x, x0, model.nfe)
                continue
            hat = self.churned(path, s, n)  # lines 4-5
            x_i, t_i, t_hat, t_next = x / s.alpha, s.sigma / s.alpha, hat.sigma / hat.alpha, (
                t.sigma / t.alpha)
            x_hat = x_i  # line 6 (scaled state), with the noise of line 3
            if hat is not s:
                x_hat = x_i + math.sqrt(t_hat**2 - t_i**2) * self.s_noise * noise.like(x)
            x0 = model(hat.alpha * x_hat, hat.t, "x0")
            d = (x_hat - x0) / t_hat  # line 7
            x_next = x_hat + (t_next - t_hat) * d  # line 8
            if t.sigma != 0.0:  # lines 9-11
                x0 = model(t.alpha * x_next, t.t, "x0")
                d_prime = (x_next - x0) / t_next
                x_next = x_hat + (t_next - t_hat) * (0.5 * d + 0.5 * d_prime)
            x = t.alpha * x_next
            yield State(i + 1, t.t, x, x0, model.nfe)
