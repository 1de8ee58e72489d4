"""Variance-exploding paths (VE, EDM: ``alpha = 1``) and the interpolant paths of flow
matching (rectified flow ``Linear``, ``Trig``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import InterpolantError
from .base import GaussianPath


@dataclass(frozen=True)
class VE(GaussianPath):
    """Variance exploding: ``alpha = 1``, ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``.

    Song et al. 2021. Log-linear in ``t``, so ``lam(t) = -log sigma(t)`` is linear in ``t``.
    At ``t = 0`` the noise is ``sigma_min``, so ``t_min = 0``.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    t_min: ClassVar[float] = 0.0
    default_grid: ClassVar[str] = "karras"

    def __post_init__(self) -> None:
        if not (0 < self.sigma_min < self.sigma_max):
            raise InterpolantError(
                f"{type(self).__name__} needs 0 < sigma_min < sigma_max, "
                f"got {self.sigma_min}, {self.sigma_max}"
            )

    @property
    def _log_ratio(self) -> float:
        return math.log(self.sigma_max / self.sigma_min)

    def _alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def _sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.exp(t * self._log_ratio)

    def _d_alpha(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def _d_sigma(self, t: Tensor) -> Tensor:
        return self._sigma(t) * self._log_ratio

    def _lam(self, t: Tensor) -> Tensor:
        return -(math.log(self.sigma_min) + t * self._log_ratio)

    def _t_of_lam(self, lam: Tensor) -> Tensor:
        return (-lam - math.log(self.sigma_min)) / self._log_ratio


@dataclass(frozen=True)
class EDM(VE):
    """The EDM noise range (Karras et al. 2022): a VE path from 0.002 to 80.

    ``sigma_data`` is the data standard deviation used by EDM preconditioning.
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5


@dataclass(frozen=True)
class Linear(GaussianPath):
    """Rectified flow / conditional OT path: ``alpha = 1 - t``, ``sigma = t`` (Liu et al. 2022)."""

    default_grid: ClassVar[str] = "uniform"

    def _alpha(self, t: Tensor) -> Tensor:
        return 1.0 - t

    def _sigma(self, t: Tensor) -> Tensor:
        return t.clone()

    def _d_alpha(self, t: Tensor) -> Tensor:
        return -torch.ones_like(t)

    def _d_sigma(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def _lam(self, t: Tensor) -> Tensor:
        return torch.log1p(-t) - torch.log(t)

    def _t_of_lam(self, lam: Tensor) -> Tensor:
        return torch.sigmoid(-lam)


@dataclass(frozen=True)
class Trig(GaussianPath):
    """Trigonometric (GVP) path: ``alpha = cos(pi t / 2)``, ``sigma = sin(pi t / 2)``.

    Variance preserving; the path of Albergo & Vanden-Eijnden's trigonometric interpolant.
    """

    default_grid: ClassVar[str] = "uniform"

    def _alpha(self, t: Tensor) -> Tensor:
        return torch.cos(0.5 * math.pi * t)

    def _sigma(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * t)

    def _d_alpha(self, t: Tensor) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def _d_sigma(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)

    def _lam(self, t: Tensor) -> Tensor:
        return -torch.log(torch.tan(0.5 * math.pi * t))

    def _t_of_lam(self, lam: Tensor) -> Tensor:
        return torch.atan(torch.exp(-lam)) * (2.0 / math.pi)
