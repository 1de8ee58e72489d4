"""Adaptive DPM-Solver (Lu et al. 2022, "DPM-Solver: A Fast ODE Solver for Diffusion
Probabilistic Model Sampling in Around 10 Steps", Sec. 3.4 and Algorithms 4-5)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import grids
from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, State, register
from .dpm import DPMSolver, singlestep, take
from .exponential import check_form, is_pure_noise, point, point_at_lam


@register("dpm-adaptive")
@dataclass(frozen=True)
class DPMSolverAdaptive(DPMSolver):
    """Adaptive DPM-Solver-12 (``order=2``) or -23 (``order=3``), Lu et al. 2022, Algs. 4-5.

    Each attempt from ``s`` with log-SNR step ``h`` computes a lower-order solution (order 1,
    resp. order 2 with ``r1 = 1/3``) and a higher one (order 2 with ``r1 = 1/2``, resp. order 3)
    sharing their model evaluations (``order`` NFE per attempt), then::

        delta = max(atol, rtol * max(|x_lo|, |x_prev|));  E = max_batch RMS((x_hi - x_lo) / delta)
        accept x_hi if E <= 1;   h <- min(theta h E^(-1/order), lam_end - lam_s)

    It chooses its own grid and uses only ``t_start`` and ``t_end`` of the grid it receives
    (``steps`` does not matter). One step size serves the whole batch (the reference code's
    choice), so a sample depends on its batch. From pure noise (:mod:`.exponential`) it
    first jumps to ``grids.LAM_MIN`` by DDIM, and where ``sigma(t_end) = 0`` it adapts up to
    ``grids.LAM_MAX`` and ends with one DDIM step. Inverting (an increasing grid) it adapts
    ``|h|`` the same way towards the noise end, and into pure noise it adapts up to
    ``grids.LAM_MIN`` and ends with one DDIM step. ``max_attempts`` bounds the loop.
    """

    order: int = 3
    rtol: float = 0.05
    atol: float = 0.0078
    h_init: float = 0.05
    theta: float = 0.9
    max_attempts: int = 10000
    own_grid = True
    invertible = True  # checked: tests/inversion (|h| adapted, signed by the direction)
    paper_run = None  # run() is Algorithms 4-5 themselves

    def max_nfe(self, steps: int) -> None:
        """Its tolerances, not a step count, decide its NFE."""
        return None

    def __post_init__(self) -> None:
        if self.order not in (2, 3):
            raise InterpolantError(
                f"dpm-adaptive has order 2 (DPM-Solver-12) or 3 (DPM-Solver-23), got {self.order!r}"
            )
        check_form(self.form)
        for name in ("rtol", "atol", "h_init", "theta"):
            if not getattr(self, name) > 0:
                raise InterpolantError(f"dpm-adaptive needs {name} > 0, got {getattr(self, name)}")

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        start, end = point(path, float(ts[0])), point(path, float(ts[-1]))
        sgn = 1.0 if ts[-1] < ts[0] else -1.0  # the direction of lam: -1 when inverting
        n = 0
        if is_pure_noise(start):
            inner = point_at_lam(path, min(grids.LAM_MIN, end.lam - 1.0))
            x, _ = take(singlestep(self.form, path, start, inner, 1), model, x)
            n, start = n + 1, inner
            yield State(n, start.t, x, None, model.nfe)
        last = point_at_lam(path, grids.LAM_MAX) if not math.isfinite(end.lam) else end
        if sgn < 0 and is_pure_noise(end):  # inverting: adapt up to the clip, then DDIM
            last = point_at_lam(path, min(grids.LAM_MIN, start.lam - 1.0))
        lo_ratios = (0.5,) if self.order == 2 else (1.0 / 3.0,)
        s, h, x_prev = start, self.h_init, x
        for _ in range(self.max_attempts):
            if sgn * (last.lam - s.lam) <= 1e-12 * max(1.0, abs(last.lam)):
                break
            t = last if h >= sgn * (last.lam - s.lam) else point_at_lam(path, s.lam + sgn * h)
            hi = singlestep(self.form, path, s, t, self.order)
            x_hi, outs = take(hi, model, x)
            lo = singlestep(self.form, path, s, t, self.order - 1, lo_ratios)
            x_lo = lo.stages[-1].c_x * x + sum(c * m for c, m in zip(lo.stages[-1].c, outs))
            delta = torch.clamp(self.rtol * torch.maximum(x_lo.abs(), x_prev.abs()), min=self.atol)
            err = float(((x_hi - x_lo) / delta).flatten(1).square().mean(1).sqrt().max())
            if err <= 1.0:
                x, x_prev, s, n = x_hi, x_lo, t, n + 1
                yield State(n, s.t, x, None, model.nfe)
            h = min(self.theta * h * max(err, 1e-12) ** (-1.0 / self.order),
                    sgn * (last.lam - s.lam))
        else:
            raise InterpolantError(
                f"dpm-adaptive did not reach t_end in {self.max_attempts} attempts; "
                "raise rtol/atol or max_attempts"
            )
        if last is not end:
            x, outs = take(singlestep(self.form, path, last, end, 1), model, x)
            yield State(n + 1, end.t, x, outs[0], model.nfe)
