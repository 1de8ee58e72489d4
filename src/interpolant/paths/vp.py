"""Variance-preserving paths: ``alpha^2 + sigma^2 = 1`` (DDPM's linear betas as a continuous
schedule, the improved-DDPM cosine schedule, and any discrete ``alphas_cumprod``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation with linear extrapolation; ``xp`` increasing."""
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    x_lo, x_hi, f_lo, f_hi = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    return f_lo + (x - x_lo) * (f_hi - f_lo) / (x_hi - x_lo)


_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


@dataclass(frozen=True, eq=False)
class VPDiscrete(_VP):
    """A discrete DDPM schedule ``alphas_cumprod[k]``, k = 0..N-1, as a continuous path.

    Training index ``k`` sits at ``t = (k + 1) / N`` and ``log alpha`` is linear in ``t``
    between those points (extrapolated linearly outside), the convention of DPM-Solver
    (Lu et al. 2022). A model trained on integer timesteps ``k`` is evaluated at
    ``k = t N - 1``.
    """

    alphas_cumprod: Tensor
    _log_alpha_table: Tensor = field(init=False, repr=False)
    _t_table: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ac = torch.as_tensor(self.alphas_cumprod).detach().to("cpu", torch.float64).flatten()
        if ac.numel() < 2:
            raise InterpolantError("VPDiscrete needs at least 2 values of alphas_cumprod")
        if not (torch.all(ac > 0) and torch.all(ac < 1) and torch.all(ac[1:] < ac[:-1])):
            raise InterpolantError(
                "alphas_cumprod must lie in (0, 1) and be strictly decreasing "
                "(index 0 is the least noisy)"
            )
        n = ac.numel()
        object.__setattr__(self, "alphas_cumprod", ac)
        object.__setattr__(self, "_log_alpha_table", 0.5 * torch.log(ac))
        object.__setattr__(
            self, "_t_table", torch.arange(1, n + 1, dtype=torch.float64) / n
        )

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    @property
    def t_min(self) -> float:  # type: ignore[override]
        return 1.0 / self.num_train_timesteps

    @classmethod
    def from_betas(
        cls,
        schedule: str = "linear",
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
    ) -> VPDiscrete:
        """The beta schedules of diffusers (``DDPMScheduler(beta_schedule=...)``).

        ``linear``: betas evenly spaced; ``scaled_linear``: their square roots evenly
        spaced (Stable Diffusion, usually with 0.00085, 0.012); ``squaredcos_cap_v2``:
        ``beta_k = min(1 - abar((k+1)/N) / abar(k/N), 0.999)`` with the cosine ``abar``.
        """
        n = num_train_timesteps
        if schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float64)
        elif schedule == "scaled_linear":
            betas = torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2
        elif schedule == "squaredcos_cap_v2":
            k = torch.arange(n, dtype=torch.float64)
            abar = lambda u: torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
            betas = torch.clamp(1 - abar((k + 1) / n) / abar(k / n), max=0.999)
        else:
            raise InterpolantError(
                f"unknown beta schedule {schedule!r}; choose one of: {', '.join(_BETA_SCHEDULES)}"
            )
        return cls(torch.cumprod(1.0 - betas, dim=0))

    def _log_alpha(self, t: Tensor) -> Tensor:
        # Below t = 1/N the linear extrapolation would pass alpha = 1; it stops there
        # (sigma = 0, clean data) instead of giving alpha > 1 and sigma = NaN.
        return _interp(t, self._t_table, self._log_alpha_table).clamp(max=0.0)

    def _d_log_alpha(self, t: Tensor) -> Tensor:
        xp, fp = self._t_table, self._log_alpha_table
        idx = torch.searchsorted(xp, t.contiguous()).clamp(1, xp.numel() - 1)
        slope = (fp[idx] - fp[idx - 1]) / (xp[idx] - xp[idx - 1])
        return torch.where(self._log_alpha(t) < 0.0, slope, torch.zeros_like(slope))

    def _t_of_lam(self, lam: Tensor) -> Tensor:
        log_alpha = self._log_alpha_of_lam(lam)
        return _interp(log_alpha, self._log_alpha_table.flip(0), self._t_table.flip(0))

    def __hash__(self) -> int:
        return id(self)
