"""DPM-Solver-v3: a multistep exponential integrator with empirical model statistics.

Zheng, Lu, Bao, Chen & Zhu, "DPM-Solver-v3: Improved Diffusion ODE Solver with Empirical Model
Statistics" (NeurIPS 2023, arXiv 2310.13268), sections 3.1-3.3 and Algorithm 1.

With ``eps`` the noise prediction and ``lam`` the half log-SNR, the probability-flow ODE is
``dx/dlam = (d log alpha / dlam) x - sigma eps``. Statistics ``l, s, b`` (functions of ``lam``,
one value per data dimension) re-parameterise the model output::

    N(x, lam) = sigma eps - l x                  (the part of the output not linear in x)
    f(x, lam) = N / alpha
    g(x, lam) = e^{-S(lam)} f - B(lam),   S = int_{lam_s}^{lam} s,   B = int_{lam_s}^{lam} e^{-S} b

and the exact solution of a step ``s -> t`` (``L = int_{lam_s}^{lam} l``) is (paper eq. 9)::

    x_t = (alpha_t / alpha_s) e^{-L_t} x_s
          - alpha_t e^{-L_t} int_{lam_s}^{lam_t} e^{L + S} (g(lam) + B(lam)) dlam

Expanding ``g`` around ``lam_s`` (``g^(k)`` estimated from the ``g`` of earlier grid points by
solving the Vandermonde system of the Taylor expansion) gives the weights
``w_k = alpha_t e^{-L_t} int e^{L + S} (lam - lam_s)^k / k! dlam`` of ``g^(k)``. The integrals
are Gauss-Legendre sums over the piecewise-linear statistics (exact for constant statistics).
The statistics that make ``g`` most nearly constant (paper eq. 10-12) are
``l = E[diag d(sigma eps)/dx]`` and ``s, b`` the least-squares fit ``f' ~ s f + b``;
:func:`interpolant.acceleration.model_statistics` computes them from a model and data.

**The reduction.** ``l = 1, s = b = 0`` gives ``N = -alpha x0``, ``g = -x0``: the data-prediction
Taylor expansion of DPM-Solver++ (:meth:`Statistics.dpmpp`, the default when no statistics are
given, the paper's "degenerated" case). Order 2 is then DPM-Solver++(2M) with
``solver_type="heun"``, order 3 DPM-Solver++(3M) with ``third_order="consistent"``
(tests/solvers/test_dpm_v3.py). ``l = 0, s = b = 0`` is the noise form (DPM-Solver).

**Corrector.** As the paper (and UniPC), after the model is evaluated at the new point ``t``
the step ``s -> t`` is redone with ``t``'s ``g`` added to the expansion (order one higher); the
model output ``N`` at ``t`` is kept, so this costs no evaluation. The paper's "pseudo-order"
variant (divided differences) is not implemented: derivatives always come from the exact
Vandermonde solve. Steps from pure noise or to clean data are data-form DDIM steps and no
history crosses them (:mod:`.exponential`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, register
from .exponential import Point, ddim_step, is_end_step, is_pure_noise, multistep_orders, points

_GL = [torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(16)]
_PIECES = 4  # composite Gauss-Legendre: pieces per step, 16 nodes each


@dataclass(frozen=True, eq=False)
class Statistics:
    """Empirical model statistics ``l, s, b`` at the increasing log-SNRs ``lams``.

    ``l, s, b`` have shape ``(K, *E)`` with ``E`` broadcastable against one sample (``()`` for
    one value per time, ``x.shape[1:]`` for one per dimension). Between the ``lams`` they are
    linear in ``lam``; beyond the ends, constant. Compared by identity.
    """

    lams: Tensor
    l: Tensor  # noqa: E741 (the paper's name)
    s: Tensor
    b: Tensor

    def __post_init__(self) -> None:
        lams = torch.as_tensor(self.lams).detach().to("cpu", torch.float64)
        if lams.ndim != 1 or lams.numel() < 2 or not bool(torch.all(lams[1:] > lams[:-1])):
            raise InterpolantError("statistics need at least 2 strictly increasing log-SNRs")
        for name in ("l", "s", "b"):
            v = torch.as_tensor(getattr(self, name)).detach().to("cpu", torch.float64)
            if v.ndim == 0 or v.shape[0] != lams.numel() or not bool(torch.isfinite(v).all()):
                raise InterpolantError(
                    f"statistic {name!r} must be finite with one row per log-SNR ({lams.numel()}),"
                    f" got shape {tuple(v.shape)}"
                )
            object.__setattr__(self, name, v)
        if not self.l.shape == self.s.shape == self.b.shape:
            raise InterpolantError("statistics l, s and b must have the same shape")
        object.__setattr__(self, "lams", lams)

    @classmethod
    def dpmpp(cls) -> Statistics:
        """``l = 1, s = b = 0`` everywhere: DPM-Solver-v3 becomes DPM-Solver++."""
        one = torch.ones(2, dtype=torch.float64)
        return cls(torch.tensor([-1.0, 1.0], dtype=torch.float64), one, 0 * one, 0 * one)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.l.shape[1:])

    def _locate(self, q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        k = self.lams.numel() - 1
        i = (torch.searchsorted(self.lams, q, right=True) - 1).clamp(0, k - 1)
        width = self.lams[i + 1] - self.lams[i]
        d = q - self.lams[i]
        return i, d, d.clamp(min=0.0).minimum(width)

    def value(self, name: str, q: Tensor) -> Tensor:
        """The statistic ``name`` at the log-SNRs ``q`` (shape ``(Q,)`` -> ``(Q, *E)``)."""
        v = getattr(self, name)
        i, _, dd = self._locate(q)
        slope = (v[i + 1] - v[i]) / _col(self.lams[i + 1] - self.lams[i], v)
        return v[i] + _col(dd, v) * slope

    def integral(self, name: str, lo: float, q: Tensor) -> Tensor:
        """``int_lo^q`` of the statistic ``name`` (exact for the piecewise-linear function)."""
        return self._primitive(name, q) - self._primitive(name, _f64(lo))

    def _primitive(self, name: str, q: Tensor) -> Tensor:
        v = getattr(self, name)
        gaps = _col(self.lams[1:] - self.lams[:-1], v)
        cum = torch.cat([torch.zeros_like(v[:1]), torch.cumsum(0.5 * gaps * (v[1:] + v[:-1]), 0)])
        i, d, dd = self._locate(q)
        slope = (v[i + 1] - v[i]) / _col(self.lams[i + 1] - self.lams[i], v)
        inside = cum[i] + _col(dd, v) * v[i] + 0.5 * _col(dd * dd, v) * slope
        return inside + _col(d - dd, v) * (v[i] + _col(dd, v) * slope)


def _f64(*values: float) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _col(q: Tensor, like: Tensor) -> Tensor:
    """``q`` of shape ``(Q,)`` as ``(Q, 1, ..., 1)`` against a statistic of shape ``(K, *E)``."""
    return q.reshape(-1, *([1] * (like.ndim - 1)))


def _gauss(lo: float, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Gauss-Legendre nodes and weights on ``[lo, hi_j]`` for each ``hi_j``: ``(J, 16)`` each."""
    xi, w = _GL
    half = (hi[:, None] - lo) / 2
    return lo + half * (xi[None] + 1), half * w[None]


def _b_integral(stats: Statistics, lo: float, q: Tensor) -> Tensor:
    """``B(q) = int_lo^q e^{-S} b`` with ``S`` anchored at ``lo``; ``(Q,) -> (Q, *E)``."""
    if not bool(stats.b.any()):
        return torch.zeros(q.numel(), *stats.event_shape, dtype=torch.float64)
    nodes, w = _gauss(lo, q)
    flat = nodes.reshape(-1)
    vals = torch.exp(-stats.integral("s", lo, flat)) * stats.value("b", flat)
    vals = vals.reshape(*nodes.shape, *stats.event_shape)
    return (vals * w.reshape(*w.shape, *([1] * len(stats.event_shape)))).sum(1)


def step(stats: Statistics, x: Tensor, nodes: list[tuple[Point, Tensor]], t: Point) -> Tensor:
    """One DPM-Solver-v3 step from ``nodes[0]`` to ``t`` as the module docstring writes it.

    ``nodes`` are ``(point, f)`` pairs, the base point first; their number is the order."""
    s, lam_s = nodes[0][0], nodes[0][0].lam
    lam = torch.tensor([p.lam for p, _ in nodes] + [t.lam], dtype=torch.float64)
    anchor_s = torch.exp(-stats.integral("s", lam_s, lam[:-1]))
    b_at = _b_integral(stats, lam_s, lam[:-1])
    gs = [_as(anchor_s[i], f) * f - _as(b_at[i], f) for i, (_, f) in enumerate(nodes)]
    order = len(nodes)
    derivs = [gs[0]]
    if order > 1:  # sum_k (lam_i - lam_s)^k / k! g^(k) = g_i - g_0, i = 1..order-1
        u = lam[1:order] - lam_s
        vander = torch.stack([u**k / math.factorial(k) for k in range(1, order)], 1)
        inv = torch.linalg.inv(vander)
        derivs += [sum(float(inv[k, i]) * (gs[i + 1] - gs[0]) for i in range(order - 1))
                   for k in range(order - 1)]
    edges = torch.linspace(lam_s, t.lam, _PIECES + 1, dtype=torch.float64)
    q, w = _gauss(0.0, torch.ones(1, dtype=torch.float64))
    width = edges[1:] - edges[:-1]
    q = (edges[:-1, None] + width[:, None] * q).reshape(-1)
    w = (width[:, None] * w).reshape(-1)
    # quadrature weights times e^{L + S} at the nodes q: every integral below is a sum over them
    kernel = _col(w, stats.l) * torch.exp(stats.integral("l", lam_s, q)
                                          + stats.integral("s", lam_s, q))
    decay = torch.exp(-stats.integral("l", lam_s, _f64(t.lam))[0])
    x_t = _as((t.alpha / s.alpha) * decay, x) * x
    for k, d in enumerate(derivs):
        w_k = t.alpha * decay * (kernel * _col((q - lam_s) ** k / math.factorial(k), kernel)).sum(0)
        x_t = x_t - _as(w_k, x) * d
    if bool(stats.b.any()):
        c_b = t.alpha * decay * (kernel * _b_integral(stats, lam_s, q)).sum(0)
        x_t = x_t - _as(c_b, x)
    return x_t


def _as(c: Tensor | float, x: Tensor) -> Tensor | float:
    return c.to(device=x.device, dtype=x.dtype) if isinstance(c, Tensor) else c


@dataclass(frozen=True)
class DPMSolverV3(Solver):
    """DPM-Solver-v3, multistep, one network evaluation per step.

    Options: ``statistics`` (a :class:`Statistics`; default ``Statistics.dpmpp()``, with which
    and ``use_corrector=False`` this is DPM-Solver++), ``order`` (1-3), ``use_corrector`` (the
    free corrector of the paper, default on),
    ``lower_order_final`` (as DPM-Solver++: lower orders at the end of grids under 15 steps).
    """

    statistics: Statistics | None = None
    order: int = 2
    use_corrector: bool = True
    lower_order_final: bool = True
    multistep = True

    def __post_init__(self) -> None:
        if self.order not in (1, 2, 3):
            raise InterpolantError(f"dpm-v3 has orders 1-3, got {self.order!r}")
        if self.statistics is not None and not isinstance(self.statistics, Statistics):
            raise InterpolantError(
                "statistics must be an interpolant.solvers.dpm_v3.Statistics (see "
                f"interpolant.acceleration.model_statistics), got {type(self.statistics).__name__}"
            )

    def _stats(self, x: Tensor) -> Statistics:
        stats = self.statistics or Statistics.dpmpp()
        try:
            torch.broadcast_shapes(stats.event_shape, tuple(x.shape[1:]))
        except RuntimeError:
            raise InterpolantError(
                f"dpm-v3 statistics of shape {stats.event_shape} do not fit samples of shape "
                f"{tuple(x.shape[1:])}; compute them on data shaped like the samples"
            ) from None
        return stats

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        stats = self._stats(x)
        pts = points(path, ts)
        orders = multistep_orders(pts, self.order, self.lower_order_final)
        hist: list[tuple[Point, Tensor]] = []  # (point, f), newest first, no end step between
        prev: tuple[Tensor, int] | None = None  # x at the previous point, its step's order
        for i, k in enumerate(orders):
            s, t = pts[i], pts[i + 1]
            x0 = model(x, s.t, "x0")
            f = None if is_pure_noise(s) else _f(stats, x, x0, s)
            if f is None:
                hist = []
            else:
                if prev is not None and self.use_corrector and len(hist) >= 1:
                    nodes = [hist[0], (s, f)] + hist[1:]
                    x = step(stats, prev[0], nodes[:min(prev[1] + 1, len(nodes))], s)
                hist = [(s, f)] + hist[:2]
            prev = None
            if is_end_step(s, t):
                c_x, c_m = ddim_step("data", s, t)
                x, hist = c_x * x + c_m * x0, []
            else:
                prev = (x, k)
                x = step(stats, x, hist[:k], t)
            yield State(i + 1, t.t, x, x0, model.nfe)


def _f(stats: Statistics, x: Tensor, x0: Tensor, p: Point) -> Tensor:
    """``f = (sigma eps - l x) / alpha = ((1 - l) x) / alpha - x0`` at the point ``p``."""
    one_minus_l = 1.0 - stats.value("l", _f64(p.lam))[0]
    return _as(one_minus_l / p.alpha, x) * x - x0


register("dpm-v3")(DPMSolverV3)
