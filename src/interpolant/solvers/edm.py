"""The EDM sampler: Heun's method in ``sigma~`` with optional churn.

Karras, Aittala, Aila & Laine, "Elucidating the Design Space of Diffusion-Based Generative
Models" (NeurIPS 2022), Algorithm 2. On any Gaussian path it runs in the scaled state
``x~ = x / alpha`` and noise level ``sigma~ = sigma / alpha = exp(-lam)``, where the
probability-flow ODE is ``dx~/dsigma~ = (x~ - D) / sigma~ = eps``. Step ``i`` (``N`` steps)::

    gamma  = min(s_churn / N, sqrt(2) - 1)  if s_tmin <= sigma~_i <= s_tmax  else 0
    s^     = sigma~_i (1 + gamma);  x~^ = x~_i + sqrt(s^2 - sigma~_i^2) s_noise z
    d      = (x~^ - D(x~^, s^)) / s^;          x~_{i+1} = x~^ + (sigma~_{i+1} - s^) d
    if sigma~_{i+1} > 0:
        d' = (x~_{i+1} - D(x~_{i+1}, sigma~_{i+1})) / sigma~_{i+1}
        x~_{i+1} = x~^ + (sigma~_{i+1} - s^) (d + d') / 2

so a step costs 2 NFE and the last step to ``sigma = 0`` (Euler) costs 1. With ``s_churn = 0``
it is deterministic Heun in ``sigma~``. The churned level ``s^`` is held inside the path's time
range (at most ``t = 1``). A step from pure noise (``lam < PURE_NOISE_LAM``: ``sigma~`` infinite
or ~1e16, rectified flow, cosine and trigonometric paths at ``t = 1``) is a DDIM (Euler) step
without churn: Heun's average of two noise predictions is multiplied by ``sigma~`` there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, register
from .multistep import at_pure_noise


class EDMStep(NamedTuple):
    t_hat: float  # time of the churned level s^
    churn_x: float  # x^ = churn_x x + churn_z z   (in the path's own scale)
    churn_z: float
    alpha_hat: float
    sigma_hat: float
    alpha_next: float
    sigma_next: float
    c_x: float  # Euler: x_{i+1} = c_x x^ + c_0 D^   (= alpha' (x~^ + (sigma~' - s^) d))
    c_0: float
    heun: float  # 0 for an Euler step, else alpha' (sigma~' - s^) / 2


def edm_table(
    path: GaussianPath, ts: Tensor, s_churn: float, s_tmin: float, s_tmax: float, s_noise: float
) -> list[EDMStep]:
    """Per-step coefficients of Algorithm 2 on ``path``, in float64."""
    times, n = ts.tolist(), ts.numel() - 1
    table = []
    for s, t in zip(times[:-1], times[1:]):
        a_s, sg_s = path.scalars(s)[:2]
        a_t, sg_t = path.scalars(t)[:2]
        noise_start = at_pure_noise(path, s)
        st_s = sg_s / a_s if not noise_start else math.inf
        gamma = min(s_churn / n, math.sqrt(2.0) - 1.0) if s_tmin <= st_s <= s_tmax else 0.0
        t_hat, churn_x, churn_z = s, 1.0, 0.0
        if gamma > 0.0 and math.isfinite(st_s):
            t_hat = min(path.t_of_lam(-math.log(st_s * (1.0 + gamma))), path.t_max)
            t_hat = max(t_hat, s)
            a_h, sg_h = path.scalars(t_hat)[:2]
            st_h = sg_h / a_h
            if not at_pure_noise(path, t_hat):
                churn_x = a_h / a_s
                churn_z = a_h * math.sqrt(max(st_h**2 - st_s**2, 0.0)) * s_noise
            else:
                t_hat = s
        a_h, sg_h = path.scalars(t_hat)[:2]
        c_x = sg_t / sg_h
        c_0 = a_t - c_x * a_h
        heun = 0.0
        if sg_t > 0.0 and not noise_start:
            heun = 0.5 * (sg_t - a_t * sg_h / a_h)
        table.append(EDMStep(t_hat, churn_x, churn_z, a_h, sg_h, a_t, sg_t, c_x, c_0, heun))
    return table


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

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        table = edm_table(path, ts, self.s_churn, self.s_tmin, self.s_tmax, self.s_noise)
        times = ts.tolist()
        for i, st in enumerate(table):
            if st.churn_z > 0.0:
                x = st.churn_x * x + st.churn_z * noise.like(x)
            x0 = model(x, st.t_hat, "x0")
            x_next = torch.add(st.c_x * x, x0, alpha=st.c_0)
            if st.heun:
                eps = (x - st.alpha_hat * x0) / st.sigma_hat
                x0_next = model(x_next, times[i + 1], "x0")
                eps_next = (x_next - st.alpha_next * x0_next) / st.sigma_next
                x_next = x_next + st.heun * (eps_next - eps)
                x0 = x0_next
            x = x_next
            yield State(i + 1, times[i + 1], x, x0, model.nfe)
