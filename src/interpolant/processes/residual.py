"""Residual-plus-noise processes for restoration, as stochastic interpolants.

With ``x_0`` the clean image and ``x_1`` the degraded input (upsampled to the same shape),

    x_t = x_0 + eta(t) (x_1 - x_0) + kappa(t) z
        = (1 - eta) x_0 + eta x_1 + kappa z,

i.e. :class:`interpolant.paths.Interpolant` with ``a = 1 - eta``, ``b = eta``,
``gamma = kappa``; the end ``t = 1`` is the input plus noise, ``x_1 + kappa(1) z``, so
``gamma(1) > 0`` here (sample from it, e.g. with the exact two-sided oracle's marginal).

* ResShift (Yue, Wang & Loy, NeurIPS 2023, eq. 1-3): transitions
  ``q(x_k | x_{k-1}, x_0) = N(x_{k-1} + alpha_k (x_1 - x_0), kappa^2 alpha_k I)`` with
  ``alpha_k = eta_k - eta_{k-1}`` compose to ``kappa(t) = kappa sqrt(eta(t))``; ``sqrt(eta)``
  grows geometrically (eq. 10), here ``eta(t) = eta_min^(1 - t^p) - eta_min (1 - t)``
  (geometric in ``t^p``, shifted to be 0 at ``t = 0``).
* RDDM (Liu et al., "Residual Denoising Diffusion Models", CVPR 2024, eq. 3-5): transitions
  ``x_k = x_{k-1} + alpha_k r + beta_k eps_k`` compose to ``eta = sum alpha_k`` and
  ``kappa^2 = sum beta_k^2``; with constant ``alpha_k``, ``beta_k^2`` that is ``eta(t) = t``,
  ``kappa(t) = beta sqrt(t)`` (:func:`rddm`).

The marginal moments follow from composing the transitions (tested against the recursion).
Both chains add independent noise increments, so their posterior given ``x_0`` (ResShift's
eq. 7, RDDM's eq. 10) is, for ``t < s`` and ``e_u = x_u - x_0 - eta_u (x_1 - x_0)``::

    e_t | e_s ~ N((kappa_t^2 / kappa_s^2) e_s, kappa_t^2 (1 - kappa_t^2 / kappa_s^2) I),

the ancestral sampler :func:`sample` with a restoration network's ``x_0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths.interpolant import Interpolant

__all__ = ["residual", "resshift", "rddm", "sample"]

Scalar = Callable[[float], float]


def residual(eta: Scalar, d_eta: Scalar, noise: float, name: str = "residual") -> Interpolant:
    """``x_t = x_0 + eta(t) (x_1 - x_0) + noise sqrt(eta(t)) z`` with ``eta(0) = 0``,
    ``eta(1) = 1``, ``eta' >= 0`` (``gamma' = noise eta' / (2 sqrt(eta))``, 0 at ``eta = 0``
    by the convention of :meth:`Interpolant._noise`)."""
    if not (math.isfinite(noise) and noise >= 0.0):
        raise InterpolantError(f"the noise scale must be a finite number >= 0, got {noise}")
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        if not eta(t) >= 0.0:
            raise InterpolantError(f"eta(t) must be >= 0, got eta({t}) = {eta(t)}")

    def gamma(t: float) -> float:
        return noise * math.sqrt(max(eta(t), 0.0))

    def d_gamma(t: float) -> float:
        root = math.sqrt(max(eta(t), 0.0))
        return noise * d_eta(t) / (2.0 * root) if root > 0.0 else 0.0

    return Interpolant(lambda t: 1.0 - eta(t), eta, gamma, lambda t: -d_eta(t), d_eta,
                       d_gamma, name=name)


def resshift(kappa: float = 2.0, p: float = 0.3, eta_min: float = 0.04**2) -> Interpolant:
    """ResShift's shifting schedule with noise ``kappa``: ``eta(t) = eta_min^(1 - t^p) -
    eta_min (1 - t)``."""
    if not (0.0 < eta_min < 1.0 and p > 0.0):
        raise InterpolantError(f"resshift needs 0 < eta_min < 1 and p > 0, got {eta_min}, {p}")
    log_min = math.log(eta_min)

    def eta(t: float) -> float:  # = eta_min (exp(-log(eta_min) t^p) - 1 + t): 0 at t = 0
        return eta_min * (math.expm1(-log_min * t**p) + t)

    def d_eta(t: float) -> float:
        grow = -log_min * p * t ** (p - 1.0) * math.exp(-log_min * t**p) if t > 0 else 0.0
        return eta_min * (grow + 1.0)

    return residual(eta, d_eta, kappa, name=f"resshift(kappa={kappa:g}, p={p:g})")


def rddm(beta: float = 1.0) -> Interpolant:
    """RDDM with constant ``alpha_k`` and ``beta_k^2``: ``eta(t) = t``, ``kappa = beta sqrt(t)``."""
    return residual(lambda t: t, lambda t: 1.0, beta, name=f"rddm(beta={beta:g})")


def sample(restore: Callable[[Tensor, float], Tensor], path: Interpolant, x1: Tensor,
           steps: int, t_end: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """Ancestral sampling of a residual process from the degraded input ``x1``: start at
    ``x1 + kappa(1) z`` and step ``s -> t`` on the uniform grid from 1 to ``t_end`` with the
    posterior above at ``x_0 = restore(x, s)``; at ``kappa_t = 0`` the step returns ``x_0``."""
    if steps < 1 or not 0.0 <= t_end < 1.0:
        raise InterpolantError(f"need steps >= 1 and 0 <= t_end < 1, got {steps}, {t_end}")

    def noise() -> Tensor:
        return torch.randn(x1.shape, generator=generator, dtype=x1.dtype).to(x1.device)

    x = x1 + path.gamma(1.0) * noise()
    times = torch.linspace(1.0, t_end, steps + 1, dtype=torch.float64).tolist()
    for s, t in zip(times[:-1], times[1:]):
        x0 = restore(x, s)
        keep = (path.gamma(t) / path.gamma(s)) ** 2  # kappa_t^2 / kappa_s^2
        x = x0 + path.b(t) * (x1 - x0) + keep * (x - x0 - path.b(s) * (x1 - x0))
        if keep > 0.0:
            x = x + path.gamma(t) * math.sqrt(1.0 - keep) * noise()
    return x
