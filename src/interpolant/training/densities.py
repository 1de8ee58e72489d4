"""Time densities: how training draws ``t`` in ``[0, 1]`` (``t = 0`` data, ``t = 1`` noise).

Every density is a callable ``density(n, generator, path) -> Tensor`` of ``n`` float64 times.

* ``uniform``: ``t ~ U[lo, hi]`` (DDPM, Ho et al. 2020; continuous-time VDM); by default
  ``[path.t_min, path.t_max]``, the path's numerically safe range (``1 / N`` for
  ``VPDiscrete``, whose extrapolation below its first index is not a valid VP path).
* ``logit-normal``: ``t = sigmoid(m + s n)``, ``n ~ N(0, 1)`` (Esser et al. 2024, SD3;
  defaults ``m = 0, s = 1``).
* ``edm``: EDM's log-normal noise levels (Karras et al. 2022): ``ln sigma_e ~ N(P_mean,
  P_std^2)`` with ``P_mean = -1.2, P_std = 1.2``, where ``sigma_e = sigma / alpha`` is the noise
  level of the path in the variance-exploding parametrisation ``x_t / alpha = x0 + sigma_e eps``.
  Since ``lam = log(alpha / sigma) = -ln sigma_e``, the time is ``t = path.t_of_lam(-ln sigma_e)``,
  so the density works on every Gaussian path, not only on VE/EDM. Noise levels the path cannot
  reach (``lam`` outside ``[lam(1), lam(t_min)]``) are excluded by sampling the *truncated* normal by
  inversion: ``u ~ U[Phi(a), Phi(b)]``, ``ln sigma_e = P_mean + P_std Phi^{-1}(u)``.
* ``edm2``: the same with EDM2's ``P_mean = -0.4, P_std = 1.0`` (Karras et al. 2024).
* ``mode`` / ``mode-<s>``: SD3's mode sampling with heavy tails (Esser et al. 2024, eq. 20):
  ``t = f(u; s) = 1 - u - s (cos^2(pi u / 2) - 1 + u)``, ``u ~ U[0, 1]``; ``s = 1.29`` by
  default (their best), ``s = 0`` is uniform, ``s`` in ``[-1, 2 / (pi - 2)]`` keeps ``f``
  monotone; ``s > 0`` favours the middle times.
* ``cosmap``: SD3's CosMap (eq. 21), ``t = 1 - 1 / (tan(pi u / 2) + 1)``, of density
  ``2 / (pi - 2 pi t + 2 pi t^2)``: the cosine schedule's log-SNR put on rectified flow.
* ``<name>:shift=<k>`` (any density): times moved by SD3's resolution-dependent shift
  ``t' = k t / (1 + (k - 1) t)`` (:func:`interpolant.grids.shift`; ``k = sqrt(m / n)`` from
  :func:`interpolant.grids.resolution_shift` for ``m`` pixels against a base of ``n``), e.g.
  ``logit-normal:shift=3``. :class:`Shifted` wraps a density object.
* a user callable with the same signature.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..grids import shift as _shift
from ..paths import GaussianPath

Density = Callable[[int, "torch.Generator | None", GaussianPath], Tensor]

__all__ = ["Density", "Uniform", "LogitNormal", "EDMLogNormal", "ModeSampling", "CosMap",
           "Shifted", "available", "get"]


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise InterpolantError(f"number of times must be a positive int, got {n!r}")


@dataclass(frozen=True)
class Uniform:
    """``t ~ U[lo, hi]``; ``None`` means the path's ``t_min`` / ``t_max``."""

    lo: float | None = None
    hi: float | None = None

    def bounds(self, path: GaussianPath) -> tuple[float, float]:
        lo = float(path.t_min) if self.lo is None else self.lo
        hi = float(path.t_max) if self.hi is None else self.hi
        if not (0.0 <= lo < hi <= 1.0):
            raise InterpolantError(f"Uniform needs 0 <= lo < hi <= 1, got {lo}, {hi}")
        return lo, hi

    def __call__(self, n: int, generator: torch.Generator | None, path: GaussianPath) -> Tensor:
        _check_n(n)
        lo, hi = self.bounds(path)
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return lo + (hi - lo) * u


@dataclass(frozen=True)
class LogitNormal:
    """``t = sigmoid(m + s n)``, ``n ~ N(0, 1)`` (SD3's logit-normal sampling)."""

    m: float = 0.0
    s: float = 1.0

    def __post_init__(self) -> None:
        if not self.s > 0:
            raise InterpolantError(f"LogitNormal needs s > 0, got {self.s}")

    def __call__(self, n: int, generator: torch.Generator | None, path: GaussianPath) -> Tensor:
        _check_n(n)
        z = torch.randn(n, generator=generator, dtype=torch.float64)
        return torch.sigmoid(self.m + self.s * z)


@dataclass(frozen=True)
class EDMLogNormal:
    """``ln(sigma / alpha) ~ N(p_mean, p_std^2)`` truncated to the path's range, mapped to ``t``."""

    p_mean: float = -1.2
    p_std: float = 1.2

    def __post_init__(self) -> None:
        if not self.p_std > 0:
            raise InterpolantError(f"EDMLogNormal needs p_std > 0, got {self.p_std}")

    def log_sigma_range(self, path: GaussianPath) -> tuple[float, float]:
        """``(-lam(t_min), -lam(t_max))``: the path's range of ``ln sigma_e`` (may be infinite)."""
        lo = torch.tensor([float(path.t_min), float(path.t_max)], dtype=torch.float64)
        lam = path.lam(lo)  # +inf at t = 0 on VP paths: no lower limit
        a, b = float(-lam[0]), float(-lam[1])
        return (-math.inf if math.isnan(a) else a), (math.inf if math.isnan(b) else b)

    def _cdf(self, log_sigma: float) -> float:
        """``Phi((ln sigma - p_mean) / p_std)`` (infinite arguments allowed)."""
        return 0.5 * math.erfc(-(log_sigma - self.p_mean) / (self.p_std * math.sqrt(2.0)))

    def __call__(self, n: int, generator: torch.Generator | None, path: GaussianPath) -> Tensor:
        _check_n(n)
        a, b = self.log_sigma_range(path)
        lo, hi = self._cdf(a), self._cdf(b)
        if not hi > lo:
            raise InterpolantError(
                f"the path {path!r} reaches no noise level of the EDM log-normal density"
            )
        u = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
        u = u.clamp(min=math.ulp(0.0), max=1.0 - 2**-53)
        log_sigma = self.p_mean + self.p_std * torch.special.ndtri(u)
        return path.t_of_lam(-log_sigma).clamp(float(path.t_min), float(path.t_max))


@dataclass(frozen=True)
class ModeSampling:
    """``t = 1 - u - s (cos^2(pi u / 2) - 1 + u)``, ``u ~ U[0, 1]`` (SD3's mode sampling)."""

    s: float = 1.29

    def __post_init__(self) -> None:
        if not -1.0 <= self.s <= 2.0 / (math.pi - 2.0):
            raise InterpolantError(f"mode sampling needs -1 <= s <= 2 / (pi - 2) = 1.7519 "
                                   f"(else t = f(u) is not monotone), got s = {self.s}")

    def __call__(self, n: int, generator: torch.Generator | None, path: GaussianPath) -> Tensor:
        _check_n(n)
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        t = 1.0 - u - self.s * (torch.cos(0.5 * math.pi * u) ** 2 - 1.0 + u)
        return t.clamp(0.0, 1.0)


@dataclass(frozen=True)
class CosMap:
    """``t = 1 - 1 / (tan(pi u / 2) + 1)``, ``u ~ U[0, 1]`` (SD3's CosMap)."""

    def __call__(self, n: int, generator: torch.Generator | None, path: GaussianPath) -> Tensor:
        _check_n(n)
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return (1.0 - 1.0 / (torch.tan(0.5 * math.pi * u) + 1.0)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Shifted:
    """``density``'s times moved by ``t' = k t / (1 + (k - 1) t)`` (SD3's time shift),
    kept in the path's ``[t_min, t_max]``."""

    density: Density
    k: float

    def __post_init__(self) -> None:
        _shift(0.5, self.k)  # validates k

    def __call__(self, n: int, generator: torch.Generator | None, path: GaussianPath) -> Tensor:
        t = draw(self.density, n, generator, path)
        return _shift(t, self.k).clamp(float(path.t_min), float(path.t_max))


_DENSITIES: dict[str, Callable[[], Density]] = {
    "uniform": Uniform,
    "logit-normal": LogitNormal,
    "edm": EDMLogNormal,
    "edm2": lambda: EDMLogNormal(-0.4, 1.0),
    "mode": ModeSampling,
    "cosmap": CosMap,
}


def available() -> list[str]:
    """Names accepted by :func:`get` (``mode-<s>`` sets s; ``<name>:shift=<k>`` shifts any)."""
    return sorted([*_DENSITIES, "mode-<s>", "<name>:shift=<k>"])


def _by_name(density: str) -> Density:
    base, sep, shift = density.partition(":shift=")
    if sep:
        try:
            k = float(shift)
        except ValueError:
            raise InterpolantError(f"time density {density!r}: the shift must be a number, "
                                   f"e.g. {base}:shift=3") from None
        return Shifted(_by_name(base), k)
    mode = re.fullmatch(r"mode-(-?\d+(?:\.\d+)?)", density)
    if mode:
        return ModeSampling(float(mode.group(1)))
    if density not in _DENSITIES:
        raise unknown_name("time density", density, available())
    return _DENSITIES[density]()


def get(density: str | Density) -> Density:
    """A density by name, or a user callable ``(n, generator, path) -> (n,) times`` as is."""
    if isinstance(density, str):
        return _by_name(density)
    if callable(density):
        return density
    raise InterpolantError(f"density must be a name or a callable, got {type(density).__name__}")


def draw(density: Density, n: int, generator: torch.Generator | None,
         path: GaussianPath) -> Tensor:
    """Call ``density`` and check its output: ``n`` finite times in ``[0, 1]``."""
    t = density(n, generator, path)
    if not isinstance(t, Tensor) or t.shape != (n,):
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise InterpolantError(f"a time density must return shape ({n},), got {shape}")
    t = t.to(torch.float64)
    if not bool(torch.all((t >= 0) & (t <= 1))):
        raise InterpolantError("a time density returned times outside [0, 1]")
    return t
