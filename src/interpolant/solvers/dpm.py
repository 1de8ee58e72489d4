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
(multistep, :mod:`.dpmpp`). A step from pure noise (``alpha_s = 0``, or a log-SNR below
``NOISE_LAM``) or to clean data (``sigma_t = 0``) is taken to first order in the data form (DDIM),
whose coefficients stay finite (``x_t = (sigma_t / sigma_s) x_s + alpha_t x0`` from pure noise).

Registered here: ``dpm1``, ``dpm2``, ``dpm3`` (singlestep, one grid interval per step, NFE =
order x steps), ``dpm-fast`` and ``dpm-adaptive``.
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

FORMS = ("noise", "data")
TARGET = {"noise": "eps", "data": "x0"}
RATIOS = {1: (), 2: (0.5,), 3: (1.0 / 3.0, 2.0 / 3.0)}  # intermediate points r of the paper
# Below this log-SNR a point counts as pure noise (alpha ~ 0): the log-SNR grids jump from there
# to grids.LAM_MIN in one step, which is taken as DDIM (the noise form would lose all digits to
# alpha_t / alpha_s ~ 1e16 on cosine-like paths, where alpha(1) is 6e-17 rather than 0).
NOISE_LAM = grids.LAM_MIN - 0.5


def phi(k: int, z: float) -> float:
    """``phi_k(z) = sum_n z^n / (n + k)!`` (``k >= 1``), by its series near 0."""
    if abs(z) < 0.05:
        return sum(z**n / math.factorial(n + k) for n in range(16))
    val = math.expm1(z) / z
    for j in range(1, k):
        val = (val - 1.0 / math.factorial(j)) / z
    return val


class Point(NamedTuple):
    t: float
    alpha: float
    sigma: float
    lam: float


def point(path: GaussianPath, t: float) -> Point:
    alpha, sigma, _, _ = path.scalars(t)
    return Point(float(t), alpha, sigma, path.lam(float(t)))


def points(path: GaussianPath, ts: Tensor) -> list[Point]:
    """:func:`point` at every time of ``ts``, each quantity evaluated once on the whole grid."""
    ts = ts.to(torch.float64)
    cols = (ts.tolist(), path.alpha(ts).tolist(), path.sigma(ts).tolist(), path.lam(ts).tolist())
    return [Point(*p) for p in zip(*cols)]


def point_at_lam(path: GaussianPath, lam: float) -> Point:
    return point(path, path.t_of_lam(lam))


def check_form(form: str) -> None:
    if form not in FORMS:
        raise InterpolantError(f"form must be 'noise' (eps, DPM-Solver) or 'data' (x0, "
                               f"DPM-Solver++), got {form!r}")


def plain(s: Point, t: Point) -> bool:
    """Whether the step ``s -> t`` must be DDIM: from pure noise or to clean data."""
    return not math.isfinite(t.lam - s.lam) or s.lam < NOISE_LAM


def first_order(form: str, s: Point, t: Point) -> tuple[float, float]:
    """``(c_x, c_m)`` of ``x_t = c_x x_s + c_m M_s``: DDIM, finite for infinite ``h``."""
    h = t.lam - s.lam
    if form == "data":
        return t.sigma / s.sigma, -t.alpha * math.expm1(-h)
    return t.alpha / s.alpha, -t.sigma * math.expm1(h)


def taylor_weights(form: str, s: Point, t: Point, order: int) -> tuple[float, list[float]]:
    """``(c_x, [w_0, ..., w_{order-1}])`` with ``x_t = c_x x_s + sum_k w_k d_k`` (``h`` finite)."""
    c_x, w0 = first_order(form, s, t)
    h = t.lam - s.lam
    g, z = (t.alpha * h, -h) if form == "data" else (-t.sigma * h, h)
    return c_x, [w0] + [g * phi(k + 1, z) for k in range(1, order)]


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

    Order 2: ``u = first_order(s -> s1)``; ``x_t = first_order(s -> t) + c0 / (2 r1) (M_1 - M_0)``.
    Order 3: ``u1`` as above; ``u2 = step(s -> s2) with d_1 = (r2 / r1)(M_1 - M_0)``;
    ``x_t = step(s -> t) with d_1 = (M_2 - M_0) / r2`` (``h phi_2`` weights).
    """
    h = t.lam - s.lam
    if plain(s, t) or order == 1:
        form = "data" if plain(s, t) else form
        c_x, c0 = first_order(form, s, t)
        return Step((s.t,), (Stage(c_x, (c0,)),), TARGET[form])
    ratios = RATIOS[order] if ratios is None else ratios
    mids = [point_at_lam(path, s.lam + r * h) for r in ratios]
    rs = [(m.lam - s.lam) / h for m in mids]
    c_x1, c1 = first_order(form, s, mids[0])
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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.skip not in ("logsnr", "grid"):
            raise InterpolantError(f"skip must be 'logsnr' or 'grid', got {self.skip!r}")

    def plan(self, ts: Tensor, path: GaussianPath) -> list[tuple[Point, Point, int]]:
        orders = fast_orders(ts.numel() - 1, self.order)
        if self.skip == "logsnr":
            outer = grids.make("logsnr", path, len(orders), float(ts[0]), float(ts[-1]))
        else:
            idx = torch.cumsum(torch.tensor([0] + orders), 0)
            outer = ts[idx]
        pts = points(path, outer)
        return [(s, t, k) for s, t, k in zip(pts[:-1], pts[1:], orders)]


register("dpm1", order=1)(DPMSolver)
register("dpm2", order=2)(DPMSolver)
register("dpm3", order=3)(DPMSolver)


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
    choice), so a sample depends on its batch. From pure noise (log-SNR below ``NOISE_LAM``) it
    first jumps to ``grids.LAM_MIN`` by DDIM, and where ``sigma(t_end) = 0`` it adapts up to
    ``grids.LAM_MAX`` and ends with one DDIM step. ``max_attempts`` bounds the loop.
    """

    order: int = 3
    rtol: float = 0.05
    atol: float = 0.0078
    h_init: float = 0.05
    theta: float = 0.9
    max_attempts: int = 10000

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
        n = 0
        if start.lam < NOISE_LAM:
            inner = point_at_lam(path, min(grids.LAM_MIN, end.lam - 1.0))
            x, _ = take(singlestep(self.form, path, start, inner, 1), model, x)
            n, start = n + 1, inner
            yield State(n, start.t, x, None, model.nfe)
        last = point_at_lam(path, grids.LAM_MAX) if not math.isfinite(end.lam) else end
        lo_ratios = (0.5,) if self.order == 2 else (1.0 / 3.0,)
        s, h, x_prev = start, self.h_init, x
        for _ in range(self.max_attempts):
            if last.lam - s.lam <= 1e-12 * max(1.0, abs(last.lam)):
                break
            t = last if h >= last.lam - s.lam else point_at_lam(path, s.lam + h)
            hi = singlestep(self.form, path, s, t, self.order)
            x_hi, outs = take(hi, model, x)
            lo = singlestep(self.form, path, s, t, self.order - 1, lo_ratios)
            x_lo = lo.stages[-1].c_x * x + sum(c * m for c, m in zip(lo.stages[-1].c, outs))
            delta = torch.clamp(self.rtol * torch.maximum(x_lo.abs(), x_prev.abs()), min=self.atol)
            err = float(((x_hi - x_lo) / delta).flatten(1).square().mean(1).sqrt().max())
            if err <= 1.0:
                x, x_prev, s, n = x_hi, x_lo, t, n + 1
                yield State(n, s.t, x, None, model.nfe)
            h = min(self.theta * h * max(err, 1e-12) ** (-1.0 / self.order), last.lam - s.lam)
        else:
            raise InterpolantError(
                f"dpm-adaptive did not reach t_end in {self.max_attempts} attempts; "
                "raise rtol/atol or max_attempts"
            )
        if last is not end:
            x, outs = take(singlestep(self.form, path, last, end, 1), model, x)
            yield State(n + 1, end.t, x, outs[0], model.nfe)
