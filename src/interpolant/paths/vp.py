"""Variance-preserving paths: ``alpha^2 + sigma^2 = 1`` (DDPM's linear betas as a continuous
schedule, the improved-DDPM cosine schedule; discrete ``alphas_cumprod`` in :mod:`.discrete`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InterpolantError
from .base import GaussianPath


class _VP(GaussianPath):
    """Variance preserving: ``alpha^2 + sigma^2 = 1``; subclasses give ``log alpha``."""

    def _log_alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _d_log_alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _alpha(self, t: Tensor) -> Tensor:
        return torch.exp(self._log_alpha(t))

    def _sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt(-torch.expm1(2.0 * self._log_alpha(t)))

    def _d_alpha(self, t: Tensor) -> Tensor:
        return self._alpha(t) * self._d_log_alpha(t)

    def _d_sigma(self, t: Tensor) -> Tensor:
        return -self._alpha(t) * self._d_alpha(t) / self._sigma(t)

    def _lam(self, t: Tensor) -> Tensor:
        log_alpha = self._log_alpha(t)
        return log_alpha - 0.5 * torch.log(-torch.expm1(2.0 * log_alpha))

    @staticmethod
    def _log_alpha_of_lam(lam: Tensor) -> Tensor:
        # alpha^2 = 1 / (1 + exp(-2 lam))
        return -0.5 * torch.logaddexp(torch.zeros_like(lam), -2.0 * lam)


@dataclass(frozen=True)
class VPLinear(_VP):
    """The continuous VP SDE of DDPM: ``beta(t) = beta_min + t (beta_max - beta_min)``.

    ``log alpha(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2`` (Song et al. 2021).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        if not (0 <= self.beta_min < self.beta_max):
            raise InterpolantError(
                f"VPLinear needs 0 <= beta_min < beta_max, got {self.beta_min}, {self.beta_max}"
            )

    def _log_alpha(self, t: Tensor) -> Tensor:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def _d_log_alpha(self, t: Tensor) -> Tensor:
        return -0.5 * t * (self.beta_max - self.beta_min) - 0.5 * self.beta_min

    def _t_of_lam(self, lam: Tensor) -> Tensor:
        # -2 log alpha = d t^2 / 2 + beta_min t = log(1 + exp(-2 lam)); solve the quadratic.
        d = self.beta_max - self.beta_min
        tmp = 2.0 * d * torch.logaddexp(torch.zeros_like(lam), -2.0 * lam)
        return tmp / (torch.sqrt(self.beta_min**2 + tmp) + self.beta_min) / d


@dataclass(frozen=True)
class SubVP(VPLinear):
    """The sub-VP SDE of Song et al. 2021 (eq. 29): VPLinear's drift with the diffusion
    ``beta(t) (1 - exp(-2 B(t)))``, ``B(t) = int_0^t beta``. Its marginals keep VPLinear's
    ``alpha = exp(-B / 2)`` and shrink the noise to ``sigma = 1 - alpha^2`` (variance
    ``(1 - e^{-B})^2``, below VP's ``1 - e^{-B}``), so ``alpha^2 + sigma^2 < 1``.
    """

    def _sigma(self, t: Tensor) -> Tensor:
        return -torch.expm1(2.0 * self._log_alpha(t))

    def _d_sigma(self, t: Tensor) -> Tensor:
        return -2.0 * self._alpha(t) ** 2 * self._d_log_alpha(t)

    def _lam(self, t: Tensor) -> Tensor:
        log_alpha = self._log_alpha(t)
        return log_alpha - torch.log(-torch.expm1(2.0 * log_alpha))

    def _t_of_lam(self, lam: Tensor) -> Tensor:
        # alpha / (1 - alpha^2) = e^lam:  alpha = 2 e^lam / (1 + sqrt(1 + 4 e^{2 lam}))
        log_alpha = math.log(2.0) + lam - torch.log1p(torch.sqrt(1.0 + 4.0 * torch.exp(2.0 * lam)))
        d = self.beta_max - self.beta_min
        tmp = 2.0 * d * (-2.0 * log_alpha)
        return tmp / (torch.sqrt(self.beta_min**2 + tmp) + self.beta_min) / d


@dataclass(frozen=True)
class VPCosine(_VP):
    """Cosine schedule: ``alpha(t) = cos(phi(t)) / cos(phi(0))``, ``phi(t) = (t+s)/(1+s) pi/2``.

    Nichol & Dhariwal 2021. ``alpha(1) = 0``, so the log-SNR at ``t = 1`` is (numerically) minus
    infinity; the log-SNR grids clip it (see :mod:`interpolant.grids`).
    """

    s: float = 0.008

    def __post_init__(self) -> None:
        if not self.s > 0:
            raise InterpolantError(f"VPCosine needs s > 0, got {self.s}")

    def _phi(self, t: Tensor) -> Tensor:
        return (t + self.s) / (1.0 + self.s) * (math.pi / 2)

    def _log_alpha(self, t: Tensor) -> Tensor:
        return torch.log(torch.cos(self._phi(t))) - math.log(math.cos(self._phi_0))

    def _d_log_alpha(self, t: Tensor) -> Tensor:
        return -torch.tan(self._phi(t)) * (math.pi / 2) / (1.0 + self.s)

    @property
    def _phi_0(self) -> float:
        return self.s / (1.0 + self.s) * (math.pi / 2)

    def _t_of_lam(self, lam: Tensor) -> Tensor:
        alpha = torch.exp(self._log_alpha_of_lam(lam))
        phi = torch.arccos(alpha * math.cos(self._phi_0))
        return phi * 2.0 * (1.0 + self.s) / math.pi - self.s
