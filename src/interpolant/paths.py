"""Forward processes: Gaussian paths ``x_t = alpha(t) x_0 + sigma(t) eps``.

Time runs from clean data at ``t = 0`` to the noise end at ``t = 1``. Every path gives
``alpha, sigma``, their time derivatives ``d_alpha, d_sigma``, the half log-SNR
``lam(t) = log(alpha / sigma)`` (decreasing in ``t``) and its inverse ``t_of_lam``.

Each method takes a Python float (and returns one) or a tensor of times (and returns a
tensor of the same shape and dtype). The maths runs in float64 either way.

``t_min`` is the default end of sampling: the smallest time at which the log-SNR is finite
and the path is numerically safe. ``t_max`` is the noise end, 1 for every path here.

References: DDPM (Ho et al. 2020), improved DDPM cosine schedule (Nichol & Dhariwal 2021),
score SDEs (Song et al. 2021), DPM-Solver's discrete-time convention (Lu et al. 2022),
EDM (Karras et al. 2022), rectified flow (Liu et al. 2022), stochastic interpolants
(Albergo & Vanden-Eijnden 2023).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

from .errors import InterpolantError, unknown_name

Time = TypeVar("Time", float, Tensor)

__all__ = [
    "GaussianPath",
    "VPLinear",
    "VPCosine",
    "VPDiscrete",
    "VE",
    "EDM",
    "Linear",
    "Trig",
    "broadcast_time",
    "available",
    "get",
]


def broadcast_time(coef: Tensor | float, x: Tensor) -> Tensor | float:
    """View a per-sample coefficient of shape ``(B,)`` so it broadcasts against ``x``."""
    if isinstance(coef, Tensor) and coef.ndim == 1:
        return coef.view(coef.shape[0], *([1] * (x.ndim - 1)))
    return coef


def _on_float64(fn: Callable[[Tensor], Tensor], t: Time) -> Time:
    """Evaluate ``fn`` in float64 and return the kind of value ``t`` was."""
    if isinstance(t, Tensor):
        if not t.is_floating_point():
            raise InterpolantError(f"times must be floating point, got a {t.dtype} tensor")
        return fn(t.to(torch.float64)).to(t.dtype)
    if isinstance(t, (int, float)):
        return float(fn(torch.tensor(float(t), dtype=torch.float64)))
    raise InterpolantError(f"times must be a float or a tensor, got {type(t).__name__}")


class GaussianPath:
    """Base class of the paths ``x_t = alpha(t) x_0 + sigma(t) eps``.

    Subclasses implement ``_alpha``, ``_sigma``, ``_d_alpha`` and ``_d_sigma`` on float64
    tensors, and may override ``_lam`` (for accuracy) and ``_t_of_lam`` (when an analytic
    inverse exists; the default is a bisection, exact to float64 resolution).
    """

    t_min: ClassVar[float] = 1e-3
    t_max: ClassVar[float] = 1.0
    default_grid: ClassVar[str] = "logsnr"

    # -- to implement ---------------------------------------------------------------
    def _alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _sigma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _d_alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _d_sigma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _lam(self, t: Tensor) -> Tensor:
        return torch.log(self._alpha(t)) - torch.log(self._sigma(t))

    def _t_of_lam(self, lam: Tensor) -> Tensor:
        # lam is decreasing in t: bisect on [0, 1]; 64 halvings reach float64 resolution.
        lo = torch.zeros_like(lam)
        hi = torch.ones_like(lam)
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            above = self._lam(mid) > lam  # still too close to data: move right
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return 0.5 * (lo + hi)

    # -- public ---------------------------------------------------------------------
    def alpha(self, t: Time) -> Time:
        """Signal scale ``alpha(t)``."""
        return _on_float64(self._alpha, t)

    def sigma(self, t: Time) -> Time:
        """Noise scale ``sigma(t)``."""
        return _on_float64(self._sigma, t)

    def d_alpha(self, t: Time) -> Time:
        """Time derivative of ``alpha``."""
        return _on_float64(self._d_alpha, t)

    def d_sigma(self, t: Time) -> Time:
        """Time derivative of ``sigma``."""
        return _on_float64(self._d_sigma, t)

    def lam(self, t: Time) -> Time:
        """Half log-SNR ``log(alpha(t) / sigma(t))``, decreasing in ``t``."""
        return _on_float64(self._lam, t)

    def t_of_lam(self, lam: Time) -> Time:
        """Inverse of :meth:`lam`."""
        return _on_float64(self._t_of_lam, lam)

    def scalars(self, t: float) -> tuple[float, float, float, float]:
        """``(alpha, sigma, d_alpha, d_sigma)`` at one time, as cached Python floats."""
        return _scalars(self, float(t))

    def sample(self, x0: Tensor, t: Tensor | float, noise: Tensor) -> Tensor:
        """Draw ``x_t = alpha(t) x0 + sigma(t) noise``; ``t`` is a float or of shape ``(B,)``."""
        if noise.shape != x0.shape:
            raise InterpolantError(
                f"noise has shape {tuple(noise.shape)} but x0 has shape {tuple(x0.shape)}"
            )
        t = check_time(t, x0)
        a, s = self.alpha(t), self.sigma(t)
        return broadcast_time(a, x0) * x0 + broadcast_time(s, x0) * noise

    def __repr__(self) -> str:  # dataclasses override this; kept for plain subclasses
        return type(self).__name__ + "()"


@lru_cache(maxsize=65536)
def _scalars(path: GaussianPath, t: float) -> tuple[float, float, float, float]:
    return (path.alpha(t), path.sigma(t), path.d_alpha(t), path.d_sigma(t))


def check_time(t: Tensor | float, x: Tensor) -> Tensor | float:
    """Check that ``t`` is a float, a 0-d tensor or of shape ``(B,)`` for a batch ``x``."""
    if isinstance(t, Tensor):
        if t.ndim == 0:
            return float(t)
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise InterpolantError(
                f"t must have shape (B,) = ({x.shape[0]},) to match x of shape "
                f"{tuple(x.shape)}, got {tuple(t.shape)}"
            )
        return t
    if isinstance(t, (int, float)):
        return float(t)
    raise InterpolantError(f"t must be a float or a tensor of shape (B,), got {type(t).__name__}")


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


_PATHS: dict[str, type[GaussianPath]] = {
    "vp-linear": VPLinear,
    "vp-cosine": VPCosine,
    "ve": VE,
    "edm": EDM,
    "linear": Linear,
    "trig": Trig,
}


def available() -> list[str]:
    """Names accepted by :func:`get` (``VPDiscrete`` is built from a schedule instead)."""
    return sorted(_PATHS) + [f"vp-discrete-{s}" for s in _BETA_SCHEDULES]


def get(name: str, **options: float) -> GaussianPath:
    """A path by name, e.g. ``get("vp-linear")`` or ``get("vp-discrete-scaled_linear")``."""
    if name.startswith("vp-discrete-") and name[len("vp-discrete-"):] in _BETA_SCHEDULES:
        return VPDiscrete.from_betas(name[len("vp-discrete-"):], **options)  # type: ignore[arg-type]
    if name not in _PATHS:
        raise unknown_name("path", name, available())
    try:
        return _PATHS[name](**options)
    except TypeError as exc:
        raise InterpolantError(f"path {name!r}: {exc}") from None
