"""The Gaussian path interface and the time helpers every layer shares (see ``paths``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

from ..errors import InterpolantError

Time = TypeVar("Time", float, Tensor)


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
