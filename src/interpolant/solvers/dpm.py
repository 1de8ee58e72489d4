"""DPM-Solver: exponential integrators of the probability-flow ODE in the log-SNR.

Lu, Zhou, Bao, Chen, Li & Zhu, "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model
Sampling in Around 10 Steps" (NeurIPS 2022), Algorithms 1-5; the data-prediction form is
DPM-Solver++ (Lu et al. 2022b, arXiv 2211.01095).

A step from ``s`` to ``t`` (``h = lam_t - lam_s > 0``) solves the ODE exactly up to the model
output ``M``, expanded as ``M(u) = sum_k d_k u^k / k!`` in ``u = (lam - lam_s) / h``::

    noise form (M = eps):  x_t = (alpha_t / alpha_s) x_s - sigma_t h sum_k phi_{k+1}(h) d_k
    data form  (M = x0):   x_t = (sigma_t / sigma_s) x_s + alpha_t h sum_k phi_{k+1}(-h) d_k

with ``phi_1(z) = (e^z - 1) / z``, ``phi_{k+1}(z) = (phi_k(z) - 1/k!) / z``. The ``d_k`` come from
model evaluations at intermediate points ``lam_s + r h`` (singlestep, here) or at past grid points
(multistep, :mod:`.dpmpp`). A step from pure noise or to clean data is a data-form DDIM step (:mod:`.exponential`).

The singlestep steps in the papers' notation (:func:`paper_step`), with ``E(p) = expm1(z_p)``,
``B(p) = expm1(z_p) / z_p - 1``, ``z_p = h_p = lam_p - lam_s`` and ``(ratio, scale) =
(alpha_p / alpha_s, sigma_p)`` in the noise form, ``z_p = -h_p`` and ``(sigma_p / sigma_s,
alpha_p)`` in the data form, and ``DDIM(p) = ratio(p) x_s - scale(p) E(p) M_s``::

    DPM-Solver-2 (Alg. 1):  u = DDIM(s1);  x_t = DDIM(t) - scale(t) E(t) (M(u) - M_s) / (2 r1)
    DPM-Solver-3 (Alg. 2):  u1 = DDIM(s1);  D1 = M(u1) - M_s
                            u2 = DDIM(s2) - scale(s2) (r2 / r1) B(s2) D1;  D2 = M(u2) - M_s
                            x_t = DDIM(t) - scale(t) B(t) D2 / r2

Registered here: ``dpm1``, ``dpm2``, ``dpm3`` (singlestep, one grid interval per step, NFE =
order x steps) and ``dpm-fast``; ``dpm-adaptive`` is in :mod:`.dpm_adaptive`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .. import grids
from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, combine, register, table_for
from .exponential import (TARGET, Point, check_form, ddim_step, is_end_step, point_at_lam,
                          points, taylor_weights)

RATIOS = {1: (), 2: (0.5,), 3: (1.0 / 3.0, 2.0 / 3.0)}  # intermediate points r of the paper


class Stage(NamedTuple):
    """One row of a step: ``y = c_x x_s + sum_j c[j] M_j`` over the outputs so far."""

    c_x: float
    c: tuple[float, ...]


class Step(NamedTuple):
    """A singlestep step: evaluate at ``times[j]`` then form ``stages[j]``; the last is ``x_t``."""

    times: tuple[float, ...]
    stages: tuple[Stage, ...]
    target: str


def singlestep(form: str, path: GaussianPath, s: Point, t: Point, order: int,
               ratios: Sequence[float] | None = None) -> Step:
    """DPM-Solver-1/2/3 from ``s`` to ``t`` (Algorithms 1 and 2; ``r1 = 1/2``; ``1/3, 2/3``).

    Order 2: ``u = DDIM(s -> s1)``; ``x_t = DDIM(s -> t) + c0 / (2 r1) (M_1 - M_0)``.
    Order 3: ``u1`` as above; ``u2 = step(s -> s2) with d_1 = (r2 / r1)(M_1 - M_0)``;
    ``x_t = step(s -> t) with d_1 = (M_2 - M_0) / r2`` (``h phi_2`` weights).
    """
    h = t.lam - s.lam
    if is_end_step(s, t) or order == 1:
        form = "data" if is_end_step(s, t) else form
        c_x, c0 = ddim_step(form, s, t)
        return Step((s.t,), (Stage(c_x, (c0,)),), TARGET[form])
    ratios = RATIOS[order] if ratios is None else ratios
    mids = [point_at_lam(path, s.lam + r * h) for r in ratios]
    rs = [(m.lam - s.lam) / h for m in mids]
    c_x1, c1 = ddim_step(form, s, mids[0])
    first = Stage(c_x1, (c1,))
    c_x, (w0, w1) = taylor_weights(form, s, t, 2)
    if order == 2:
        c0 = w0 / (2.0 * rs[0])
        final = Stage(c_x, (w0 - c0, c0))
        return Step((s.t, mids[0].t), (first, final), TARGET[form])
    c_x2, (v0, v1) = taylor_weights(form, s, mids[1], 2)
    q = rs[1] / rs[0]
    second = Stage(c_x2, (v0 - v1 * q, v1 * q))
    final = Stage(c_x, (w0 - w1 / rs[1], 0.0, w1 / rs[1]))
    return Step((s.t, mids[0].t, mids[1].t), (first, second, final), TARGET[form])


def take(step: Step, model: Model, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Run the stages of one step from ``x``; returns ``x_t`` and the model outputs."""
    outs: list[Tensor] = []
    y = x
    for t_j, stage in zip(step.times, step.stages):
        outs.append(model(y, t_j, step.target))
        y = combine(stage.c_x, x, stage.c, outs)
    return y, outs


def paper_step(form: str, path: GaussianPath, s: Point, t: Point, order: int, model: Model,
               x: Tensor) -> tuple[Tensor, Tensor]:
    """One step of DPM-Solver-``order`` as the module docstring writes it: ``(x_t, M_s)``."""
    if is_end_step(s, t) or order == 1:
        form = "data" if is_end_step(s, t) else form
    m_s = model(x, s.t, TARGET[form])
    sgn = 1.0 if form == "noise" else -1.0
    h = t.lam - s.lam

    def ddim(p: Point) -> Tensor:
        ratio, scale = (p.alpha / s.alpha, p.sigma) if sgn > 0 else (p.sigma / s.sigma, p.alpha)
        return ratio * x - scale * math.expm1(sgn * (p.lam - s.lam)) * m_s

    def scale_b(p: Point) -> float:
        z = sgn * (p.lam - s.lam)
        return (p.sigma if sgn > 0 else p.alpha) * (math.expm1(z) / z - 1.0)

    if is_end_step(s, t) or order == 1:
        return ddim(t), m_s
    mids = [point_at_lam(path, s.lam + r * h) for r in RATIOS[order]]
    r = [(m.lam - s.lam) / h for m in mids]
    d1 = model(ddim(mids[0]), mids[0].t, TARGET[form]) - m_s
    if order == 2:
        e_t = math.expm1(sgn * h)
        return ddim(t) - (t.sigma if sgn > 0 else t.alpha) * e_t / (2.0 * r[0]) * d1, m_s
    u2 = ddim(mids[1]) - scale_b(mids[1]) * (r[1] / r[0]) * d1
    d2 = model(u2, mids[1].t, TARGET[form]) - m_s
    return ddim(t) - scale_b(t) * d2 / r[1], m_s


def fast_orders(nfe: int, order: int) -> list[int]:
    """DPM-Solver-fast's orders (Lu et al. 2022, Sec. 3.4): ``K = nfe // 3 + 1`` steps of
    order 3 ending ``[2, 1]``, ``[1]`` or ``[2]`` (order 2: ``[2] * nfe/2`` or ``[2]..+[1]``)."""
    if order == 3:
        k = nfe // 3 + 1
        tail = {0: [2, 1], 1: [1], 2: [2]}[nfe % 3]
        return [3] * (k - len(tail)) + tail
    if order == 2:
        return [2] * (nfe // 2) + [1] * (nfe % 2)
    return [1] * nfe


@dataclass(frozen=True)
class DPMSolver(Solver):
    """DPM-Solver-``order`` singlestep, ``order`` evaluations per grid interval.

    ``form="noise"`` (default, the paper's eps form) or ``"data"`` (DPM-Solver++ singlestep).
    Intermediate points at ``lam_s + r h`` with ``r = 1/2`` (order 2), ``1/3, 2/3`` (order 3).
    """

    order: int = 2
    form: str = "noise"
    invertible = True  # checked: tests/inversion

    @property
    def nfe_per_step(self) -> int:  # type: ignore[override]
        return self.order

    def __post_init__(self) -> None:
        if self.order not in (1, 2, 3):
            raise InterpolantError(f"DPM-Solver has orders 1, 2, 3, got order={self.order!r}")
        check_form(self.form)

    def plan(self, ts: Tensor, path: GaussianPath) -> list[tuple[Point, Point, int]]:
        """``(s, t, order)`` per step."""
        pts = points(path, ts)
        return [(s, t, self.order) for s, t in zip(pts[:-1], pts[1:])]

    def table(self, ts: Tensor, path: GaussianPath) -> tuple[tuple[float, Step], ...]:
        """``(t, step)`` per step of the plan: where it ends and its stages."""
        plan = self.plan(ts, path)
        return tuple((t.t, singlestep(self.form, path, s, t, k)) for s, t, k in plan)

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        for i, (t, step) in enumerate(table_for(self, ts, path)):
            x, outs = take(step, model, x)
            yield State(i + 1, t, x, outs[0] if step.target == "x0" else None, model.nfe)

    def paper_run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        for i, (s, t, k) in enumerate(self.plan(ts, path)):
            form = "data" if is_end_step(s, t) else self.form
            x, m_s = paper_step(self.form, path, s, t, k, model, x)
            yield State(i + 1, t.t, x, m_s if form == "data" else None, model.nfe)


@register("dpm-fast")
@dataclass(frozen=True)
class DPMSolverFast(DPMSolver):
    """DPM-Solver-fast (Lu et al. 2022, Sec. 3.4): the grid's ``steps`` is the NFE budget.

    It takes ``K = NFE // 3 + 1`` steps of orders ``[3, ..., 3, 2, 1]`` (NFE % 3 == 0),
    ``[3, ..., 3, 1]`` (1) or ``[3, ..., 3, 2]`` (2). ``skip="logsnr"`` (default, the paper's
    choice) places the ``K`` steps uniformly in log-SNR between the grid's ends and uses only
    ``t_start`` and ``t_end`` of the grid it receives; ``skip="grid"`` takes the grid's points at
    the cumulative orders, as the reference code does for other step types. Where the log-SNR grid
    starts at pure noise (``alpha(t_start) = 0``) its first jump is a first-order step, so
    the NFE is then below the budget.
    """

    order: int = 3
    skip: str = "logsnr"
    nfe_per_step = 1  # the grid's steps are the NFE budget
    own_grid = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.skip not in ("logsnr", "grid"):
            raise InterpolantError(f"skip must be 'logsnr' or 'grid', got {self.skip!r}")

    def plan(self, ts: Tensor, path: GaussianPath) -> list[tuple[Point, Point, int]]:
        orders = fast_orders(ts.numel() - 1, self.order)
        if self.skip == "logsnr":
            outer = grids.between("logsnr", path, len(orders), float(ts[0]), float(ts[-1]))
        else:
            idx = torch.cumsum(torch.tensor([0] + orders), 0)
            outer = ts[idx]
        pts = points(path, outer)
        return [(s, t, k) for s, t, k in zip(pts[:-1], pts[1:], orders)]


register("dpm1", order=1)(DPMSolver)
register("dpm2", order=2)(DPMSolver)
register("dpm3", order=3)(DPMSolver)
