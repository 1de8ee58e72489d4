"""DDIM with its stochasticity ``eta``, and DDPM ancestral sampling (DDIM with ``eta = 1``).

Song, Meng & Ermon, "Denoising Diffusion Implicit Models" (ICLR 2021), eq. 12; Ho, Jain &
Abbeel, "Denoising Diffusion Probabilistic Models" (NeurIPS 2020), Algorithm 2.

A step from ``s`` to ``t`` (``t`` nearer the data, ``h = lam_t - lam_s > 0``) with the data
prediction ``x0 = D(x_s, s)`` and ``eps = (x_s - alpha_s x0) / sigma_s``::

    sigma_eta = eta * sigma_t * sqrt(1 - exp(-2h))           # DDPM posterior std when eta = 1
    x_t = alpha_t x0 + sqrt(sigma_t^2 - sigma_eta^2) eps + sigma_eta z

which for any Gaussian path is ``x_t = c_x x_s + c_0 x0 + sigma_eta z`` with
``c_x = sqrt(sigma_t^2 - sigma_eta^2) / sigma_s`` and
``c_0 = alpha_t (1 - exp(-h) sqrt(1 - eta^2 (1 - exp(-2h))))``. With ``eta = 0`` this is
``x_t = (sigma_t / sigma_s) x_s - alpha_t expm1(-h) x0``, the first-order DPM-Solver++ step.
For VP paths ``sigma_eta`` is DDIM's ``eta sqrt((1 - abar_t) / (1 - abar_s))
sqrt(1 - abar_s / abar_t)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, register, table_for
from .exponential import ddim_step, points


def ddim_table(path: GaussianPath, ts: Tensor, eta: float) -> list[tuple[float, float, float]]:
    """Per step ``(c_x, c_0, sigma_eta)``, computed in float64. ``eta = 0`` is the data-form
    DDIM step of :func:`.exponential.ddim_step`, which also serves increasing grids (inversion,
    ``h < 0``, up to a step into pure noise)."""
    if eta == 0.0:
        pts = points(path, ts)
        return [(*ddim_step("data", s, t), 0.0) for s, t in zip(pts[:-1], pts[1:])]
    alpha, sigma, lam = path.alpha(ts), path.sigma(ts), path.lam(ts)
    h = lam[1:] - lam[:-1]
    one_minus_e2h = -torch.expm1(-2.0 * h)
    sigma_eta = eta * sigma[1:] * torch.sqrt(one_minus_e2h)
    # c_0 = alpha_t (1 - exp(-h + log(sqrt(1 - eta^2 (1 - e^{-2h}))))), via expm1 for small h
    keep = 0.5 * torch.log1p(-(eta**2) * one_minus_e2h)
    c_0 = -alpha[1:] * torch.expm1(-h + keep)
    c_x = torch.sqrt(torch.clamp(sigma[1:] ** 2 - sigma_eta**2, min=0.0)) / sigma[:-1]
    # A step may start at pure noise (alpha_s = 0, h = inf): every coefficient stays finite.
    return list(zip(c_x.tolist(), c_0.tolist(), sigma_eta.tolist()))


@register("ddim")
@dataclass(frozen=True)
class DDIM(Solver):
    """DDIM; ``eta = 0`` is deterministic (the probability-flow ODE to first order),
    ``eta = 1`` is DDPM ancestral sampling. One network evaluation per step."""

    eta: float = 0.0
    invertible = True  # checked: tests/inversion

    def __post_init__(self) -> None:
        if not 0.0 <= self.eta <= 1.0:
            raise InterpolantError(f"eta must lie in [0, 1], got {self.eta}")

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.eta > 0.0

    def table(self, ts: Tensor, path: GaussianPath) -> tuple[tuple[float, float, float], ...]:
        """Per step ``(c_x, c_0, sigma_eta)`` (:func:`ddim_table`)."""
        return tuple(ddim_table(path, ts, self.eta))

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        return first_order_steps(table_for(self, ts, path), model, x, ts.tolist(), noise)

    def paper_run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        """Song et al.'s eq. 12 on any Gaussian path, step by step."""
        pts = points(path, ts)
        for i, (s, t) in enumerate(zip(pts[:-1], pts[1:])):
            x0 = model(x, s.t, "x0")
            eps = (x - s.alpha * x0) / s.sigma  # the noise the network's x0 implies
            # DDIM's sigma_tau: eta sqrt((1 - a_t)/(1 - a_s)) sqrt(1 - a_s/a_t) on VP paths
            sigma_eta = self.eta * t.sigma * math.sqrt(-math.expm1(-2.0 * (t.lam - s.lam)))
            direction = math.sqrt(max(t.sigma**2 - sigma_eta**2, 0.0)) * eps
            x = t.alpha * x0 + direction
            if sigma_eta > 0.0:
                x = x + sigma_eta * noise.like(x)
            yield State(i + 1, t.t, x, x0, model.nfe)


def first_order_steps(
    table: Iterable[tuple[float, float, float]], model: Model, x: Tensor, times: list[float],
    noise: Noise,
) -> Iterator[State]:
    """The loop shared by every first-order sampler with fresh noise (DDIM/DDPM, Euler
    ancestral, Euler-Maruyama): ``x <- c_x x + c_0 D(x, t_i) + c_z z`` per row of ``table``."""
    for i, (c_x, c_0, c_z) in enumerate(table):
        x0 = model(x, times[i], "x0")
        x = torch.mul(x, c_x).add_(x0, alpha=c_0)  # a fresh tensor: safe to update in place
        if c_z > 0.0:
            x.add_(noise.like(x), alpha=c_z)
        yield State(i + 1, times[i + 1], x, x0, model.nfe)


# DDPM ancestral sampling draws x_t from the posterior q(x_t | x_s, x0 = D(x_s)): on any grid
# that is DDIM with eta = 1 (diffusers' DDPMScheduler with variance_type="fixed_small").
register("ddpm", eta=1.0)(DDIM)
