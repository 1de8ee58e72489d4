"""Dynamic compensation (DC-Solver, Zhao, Wang, Lu & Zhou, ECCV 2024).

A multistep solver at few steps is off the exact trajectory; DC-Solver corrects the model
output it is about to use by re-reading the history of outputs at a *compensated* time. With
the outputs ``D_j`` at the times ``t_j`` of the last ``order + 1`` calls (``t_i`` the newest),

    tau_i   = rho_i t_i + (1 - rho_i) t_{i-1}
    D^dc_i  = sum_k l_k(tau_i) D_{i-k},   l_k the Lagrange basis on t_i, ..., t_{i-order}

and ``D^dc_i`` replaces ``D_i`` (also in the history later calls interpolate). ``rho_i = 1``
gives ``tau_i = t_i`` and, as Lagrange interpolation passes through its nodes, ``D_i``
itself: no compensation (tests: bitwise the plain sampler). The first ``order`` calls have
too short a history and are not compensated.

The ratios are fitted once per solver, grid and model (:func:`fit_ratios`), step by step: each
``rho_i`` minimises ``|x_{i+1} - x_ref(t_{i+1})|^2`` over a few samples, with ``x_ref`` a fine
solve of the same model (the paper fits by gradient descent on ~10 samples; here a bounded
scalar search of the same objective, deterministic).

As a denoiser transform (DESIGN.md) the compensated output is what the solver receives at that
call in every use; for a predictor-corrector such as UniPC that includes the corrector, which
the paper leaves uncompensated. Like the caches it keeps state across the calls of a run
(a new run starts when the time goes up or the batch changes): one wrapper per thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from ..errors import InterpolantError
from ..predictions import convert
from ..solvers import trajectory


def lagrange(times: Sequence[float], values: Sequence[Tensor], tau: float) -> Tensor:
    """``sum_k l_k(tau) values[k]`` on the nodes ``times`` (float64 weights)."""
    out = torch.zeros_like(values[0])
    for k, (tk, vk) in enumerate(zip(times, values)):
        weight = math.prod((tau - tj) / (tk - tj) for j, tj in enumerate(times) if j != k)
        out = out + weight * vk
    return out


class DynamicCompensation:
    """``denoiser`` with DC-Solver's compensated outputs (module docstring); ``ratios[i]`` is
    ``rho`` of call ``i`` of a run (calls beyond the list, and the first ``order``, use 1)."""

    def __init__(self, denoiser: Any, ratios: Sequence[float], order: int = 2) -> None:
        if not hasattr(denoiser, "path"):
            raise InterpolantError("dynamic compensation wraps a denoiser (with a path)")
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise InterpolantError(f"order must be an integer >= 1, got {order!r}")
        ratios = [float(r) for r in ratios]
        if not all(math.isfinite(r) for r in ratios):
            raise InterpolantError(f"ratios must be finite numbers, got {ratios}")
        self.denoiser, self.path, self.ratios, self.order = denoiser, denoiser.path, ratios, order
        self._times: list[float] = []
        self._outs: list[Tensor] = []
        self._key: tuple | None = None

    def __call__(self, x: Tensor, t: Tensor | float, cond: Any = None,
                 target: str = "x0") -> Tensor:
        t_now = float(t.max()) if isinstance(t, Tensor) else float(t)
        key = (tuple(x.shape), x.dtype, x.device)
        if key != self._key or (self._times and t_now >= self._times[-1]):
            self._times, self._outs, self._key = [], [], key  # a new run
        out = self.denoiser(x, t, cond, "x0")
        i = len(self._times)
        self._times.append(t_now)
        self._outs.append(out)
        rho = self.ratios[i] if i < len(self.ratios) else 1.0
        if i >= self.order and rho != 1.0:
            nodes = slice(i - self.order, i + 1)
            tau = rho * t_now + (1.0 - rho) * self._times[i - 1]
            out = lagrange(self._times[nodes], self._outs[nodes], tau).to(out.dtype)
            self._outs[-1] = out
        if target == "x0":
            return out
        return convert(out, "x0", target, x, t, self.path)

    def __getattr__(self, name: str) -> Any:  # nfe, parameter_dtypes, ... of the denoiser
        inner = self.__dict__.get("denoiser")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


def _states(den: Any, x: Tensor, grid: Tensor, cond: Any, solver: str,
            options: dict[str, Any]) -> list[Tensor]:
    with torch.no_grad():
        return [s.x for s in trajectory(den, x, solver, grid=grid, cond=cond, **options)]


def _substeps(path: Any, t0: Tensor, t1: Tensor, n: int) -> Tensor:
    """``n`` times from ``t0`` (included) towards ``t1`` (excluded), evenly in log-SNR; evenly
    in ``t`` where the log-SNR is too steep to invert in float64 (``t`` near 1 on a cosine
    path: neighbouring log-SNRs map back to the same ``t``)."""
    lam = path.lam(torch.stack([t0, t1]))
    ts = path.t_of_lam(torch.linspace(float(lam[0]), float(lam[1]), n + 1, dtype=torch.float64))
    ts[0], ts[-1] = t0, t1
    if not bool(torch.all(ts[1:] < ts[:-1])):
        ts = torch.linspace(float(t0), float(t1), n + 1, dtype=torch.float64)
    return ts[:-1]


def fit_ratios(denoiser: Any, x_start: Tensor, grid: Tensor, solver: str = "dpm++2m",
               order: int = 2, cond: Any = None, refine: int = 20, bounds: tuple[float, float]
               = (0.0, 2.0), **solver_options: Any) -> list[float]:
    """DC-Solver's ratios for ``solver`` on the explicit decreasing ``grid``, fitted on the
    starts ``x_start`` against a fine solve (DPM-Solver++(3M), ``refine`` log-SNR substeps per
    step of ``grid``). Each ratio is searched in ``bounds`` and kept only if it beats 1."""
    grid = torch.as_tensor(grid, dtype=torch.float64)
    if grid.ndim != 1 or grid.numel() < 2 or not bool(torch.all(grid[1:] < grid[:-1])):
        raise InterpolantError("fit_ratios needs an explicit decreasing grid of at least 2 times")
    fine = torch.cat([_substeps(denoiser.path, grid[i], grid[i + 1], refine)
                      for i in range(grid.numel() - 1)] + [grid[-1:]])
    ref = _states(denoiser, x_start, fine, cond, "dpm++3m", {})[refine - 1::refine]
    steps = grid.numel() - 1
    ratios = [1.0] * steps

    def error(i: int, rho: float) -> float:
        trial = ratios[:i] + [rho] + ratios[i + 1:]
        wrapped = DynamicCompensation(denoiser, trial, order)
        states = _states(wrapped, x_start, grid, cond, solver, solver_options)
        return float((states[i].double() - ref[i].double()).pow(2).mean())

    for i in range(order, steps):
        found = minimize_scalar(lambda r: error(i, r), bounds=bounds, method="bounded",
                                options={"xatol": 1e-3})
        if found.fun < error(i, 1.0):
            ratios[i] = float(found.x)
    return ratios
