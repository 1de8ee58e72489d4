"""Time-Shift Sampler against exposure bias (Li, Qu, Zhang et al., "Alleviating Exposure Bias
in Diffusion Models through Sampling with Shifted Time Steps", ICLR 2024).

A sampler's state ``x`` at nominal time ``t`` carries errors from earlier steps, so it is
better coupled with a nearby time ``t_s`` whose forward marginal matches it. The paper picks,
in a window around ``t``, the time whose marginal variance is closest to the state's own
variance over its pixels, and feeds the network that time (only above a cutoff time):

    v(x) = Var_d(x)  (per sample, over all non-batch dimensions)
    m(s) = alpha(s)^2 v_data + sigma(s)^2
    t_s  = argmin_{s in [t - w, t + w]} |m(s) - v(x)|      if t > cutoff, else t

``v_data`` is the data's mean per-sample variance, ``E_x0 Var_d(x0)``
(:meth:`TimeShift.variance_of`); the paper's rule ``m(s) = 1 - alpha_bar(s)`` is
``v_data = 0`` on a variance-preserving path. The search runs over ``candidates`` times evenly
spaced across the window (``t`` itself among them, and preferred on ties).

As a denoiser transform (DESIGN.md: acceleration wraps a denoiser): the data prediction is the
network's at the shifted time, ``D(x, t_s)``, handed to the solver at its own ``t`` (other
targets are converted from it at ``(x, t)``). When the state's variance is the marginal's at
``t`` the shift is zero and the wrapper is the plain denoiser (tests: on exact marginals of a
Gaussian the shift vanishes as the dimension grows; with ``window = 0`` it is bitwise the
identity).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..predictions import convert


class TimeShift:
    """``denoiser`` with the Time-Shift Sampler's shifted times (module docstring)."""

    def __init__(self, denoiser: Any, window: float = 0.05, cutoff: float = 0.3,
                 data_variance: float = 0.0, candidates: int = 41) -> None:
        path = getattr(denoiser, "path", None)
        if path is None or not hasattr(path, "alpha") or not hasattr(path, "sigma"):
            raise InterpolantError("the Time-Shift Sampler needs a denoiser on a Gaussian path "
                                   "(alpha, sigma) to know the marginal variance")
        for name, value in (("window", window), ("data_variance", data_variance)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InterpolantError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (isinstance(cutoff, (int, float)) and 0 <= cutoff <= 1):
            raise InterpolantError(f"cutoff must be a time in [0, 1], got {cutoff!r}")
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            raise InterpolantError(f"candidates must be a positive integer, got {candidates!r}")
        self.denoiser, self.path = denoiser, path
        self.window, self.cutoff = float(window), float(cutoff)
        self.data_variance = float(data_variance)
        # offsets ordered by distance from 0, so that argmin prefers the nominal time on ties
        grid = torch.linspace(-self.window, self.window, 2 * (candidates // 2) + 1,
                              dtype=torch.float64)
        self._offsets = grid[torch.argsort(grid.abs(), stable=True)]

    @staticmethod
    def variance_of(x0: Tensor) -> float:
        """``E_x0 Var_d(x0)``: the mean over samples of each sample's variance over its
        dimensions (the ``data_variance`` of the rule)."""
        return float(x0.flatten(1).double().var(dim=1, unbiased=False).mean())

    def marginal_variance(self, s: Tensor) -> Tensor:
        """``m(s) = alpha(s)^2 v_data + sigma(s)^2``."""
        return self.path.alpha(s) ** 2 * self.data_variance + self.path.sigma(s) ** 2

    def shifted_time(self, x: Tensor, t: Tensor | float) -> Tensor:
        """``t_s`` per sample (float64, shape ``(B,)``)."""
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        v = x.detach().flatten(1).double().var(dim=1, unbiased=False).cpu()
        s = (t.cpu()[:, None] + self._offsets).clamp(self.path.t_min, 1.0)
        best = (self.marginal_variance(s) - v[:, None]).abs().argmin(dim=1)
        shifted = s.gather(1, best[:, None])[:, 0]
        return torch.where(t.cpu() > self.cutoff, shifted, t.cpu())

    def __call__(self, x: Tensor, t: Tensor | float, cond: Any = None,
                 target: str = "x0") -> Tensor:
        t_s = self.shifted_time(x, t).to(device=x.device, dtype=x.dtype)
        x0 = self.denoiser(x, t_s, cond, "x0")
        if target == "x0":
            return x0
        t_now = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(len(x))
        return convert(x0, "x0", target, x, t_now, self.path)

    def __getattr__(self, name: str) -> Any:  # nfe, parameter_dtypes, ... of the denoiser
        inner = self.__dict__.get("denoiser")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)
