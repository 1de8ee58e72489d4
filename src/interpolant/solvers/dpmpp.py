"""DPM-Solver++: data-prediction exponential integrators, singlestep 2S and multistep 2M/3M.

Lu, Zhou, Bao, Chen, Li & Zhu, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models" (arXiv 2211.01095, 2022), Algorithms 1-2 and Appendix; the SDE forms are
the "SDE-DPM-Solver++" of the same paper as k-diffusion's ``sample_dpmpp_{2m,3m}_sde`` write them.

A multistep step from ``s`` to ``t`` (``h = lam_t - lam_s``) with the data predictions
``M_0, M_1, M_2`` at ``s`` and the two previous grid points (``h_0, h_1`` the previous steps,
``r_j = h_j / h``) and the noise level ``eta`` (0 for the ODE, 1 for the SDE of the paper)::

    he = (1 + eta) h
    D1_0 = (M_0 - M_1) / r_0,   D1_1 = (M_1 - M_2) / r_1
    D1 = D1_0 + r_0 / (r_0 + r_1) (D1_0 - D1_1)       (approximates h M')
    D2 = (D1_0 - D1_1) / (r_0 + r_1)                   (approximates h^2 M'' / 2)
    x_t = (sigma_t / sigma_s) e^{-eta h} x_s + alpha_t he [phi_1(-he) M_0 + phi_2(-he) D1
          + c phi_3(-he) D2] + sigma_t sqrt(1 - e^{-2 eta h}) z

2M uses ``D1 = D1_0`` with weight ``phi_2`` (``solver_type="heun"``) or ``phi_1 / 2``
(``"midpoint"``, the default of the paper's code and diffusers); ``phi_k`` as in :mod:`.dpm`.

The third-order term. The Taylor expansion ``M(u) = M_0 + u h M' + u^2 h^2 M'' / 2`` makes the
weight of ``D2`` exactly ``c = 2`` (``third_order="consistent"``): then 3M is a third-order
method. The published code (DPM-Solver's ``multistep_dpm_solver_third_update``, diffusers,
k-diffusion) uses ``c = 1`` (``third_order="published"``), which keeps only half the
second-derivative term and leaves a method of order 2 (tests: slopes 3.0-3.1 vs 2.0-2.3).
Measured against the exact Gaussian-mixture flow (RMS error / data scale, 256 points;
``interpolant bench orders``), consistent vs published:

    ==================  =================  =================  =================
    preset/path/grid    NFE 5              NFE 10             NFE 20
    ==================  =================  =================  =================
    aniso2d/VP/logsnr   1.42e-1 / 1.41e-1  3.75e-2 / 3.43e-2  7.54e-3 / 7.62e-3
    mix8d/VP/logsnr     2.61e-1 / 2.61e-1  1.17e-1 / 1.17e-1  2.87e-2 / 1.12e-2
    aniso2d/EDM/karras  1.44e-1 / 1.43e-1  1.58e-1 / 1.43e-1  2.28e-2 / 1.62e-2
    mix8d/EDM/karras    2.75e-1 / 2.79e-1  1.91e-1 / 1.94e-1  1.90e-2 / 1.33e-2
    ==================  =================  =================  =================

At 5-20 NFE the published form is as good or better (up to 2.6x at 20 NFE; where the consistent
one wins it is by 2% at most); from about 50 NFE the consistent one is (aniso2d/VP: 7.4e-4 vs
1.0e-3). The default is therefore ``third_order="published"`` (also the choice of every
published implementation, so results match theirs); ``"consistent"`` is the third-order method.

diffusers' ``sde-dpmsolver++`` third-order update writes the ``D2`` weight as
``alpha_t ((1 - e^{-2h} - 2h) / (2h)^2 - 1/2)``, of order 1 instead of ``O(h)`` (a sign slip:
k-diffusion has ``-(phi_2(-he) - 1/2)``); we follow k-diffusion, so ``dpm++3m-sde`` has no
diffusers parity test.

The warm-up of 3M: its order-2 step uses the ``phi_1 / 2`` (midpoint) weight as diffusers does;
``dpm++3m-sde`` uses ``phi_2`` (heun), as k-diffusion's ``sample_dpmpp_3m_sde`` does (3.6e-6
apart at 10 steps on EDM/Karras otherwise). Either can be chosen with ``solver_type``.

``lower_order_final`` (default True) lowers the order of the last steps when the grid has fewer
than 15 steps, as diffusers does: order 1 for the last step, at most 2 for the one before.
The warm-up steps use the orders available (1, then 2). A step from pure noise or to clean data
is order 1, and history across such a point is not used (:mod:`.exponential`).

:func:`paper_step` is the step in the paper's notation; :func:`table_row` flattens the same step
into weights of ``x_s, M_0, M_1, M_2`` once per grid (the fast path of ``run``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, combine, register, table_for
from .dpm import DPMSolver
from .exponential import Point, ddim_step, multistep_orders, phi, points

THIRD_ORDER = ("consistent", "published")
THIRD_ORDER_DEFAULT = "published"
Row = tuple[float, tuple[float, ...], float]  # (c_x, weights of M_0, M_1, M_2, noise std)


def paper_step(x: Tensor, ms: list[Tensor], hist: list[Point], t: Point, order: int,
               eta: float, solver_type: str, third: str, noise: Noise) -> Tensor:
    """One multistep step from ``hist[0]`` to ``t`` as the module docstring writes it.

    ``ms`` are the data predictions at ``hist`` (newest first, as many as ``order``)."""
    s, h = hist[0], t.lam - hist[0].lam
    he = (1.0 + eta) * h
    decay = math.exp(-eta * h) if eta > 0 else 1.0
    x_t = (t.sigma / s.sigma) * decay * x - t.alpha * math.expm1(-he) * ms[0]
    if order == 2:
        d1 = (ms[0] - ms[1]) / ((s.lam - hist[1].lam) / h)
        midpoint = -0.5 * t.alpha * math.expm1(-he)  # D = M_0 + D1 / 2 with weight phi_1
        x_t = x_t + (midpoint if solver_type == "midpoint" else t.alpha * he * phi(2, -he)) * d1
    elif order == 3:
        r0, r1 = (s.lam - hist[1].lam) / h, (hist[1].lam - hist[2].lam) / h
        d1_0, d1_1 = (ms[0] - ms[1]) / r0, (ms[1] - ms[2]) / r1
        d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
        d2 = (d1_0 - d1_1) / (r0 + r1)
        c = 2.0 if third == "consistent" else 1.0
        x_t = x_t + t.alpha * he * (phi(2, -he) * d1 + c * phi(3, -he) * d2)
    if eta > 0:
        x_t = x_t + t.sigma * math.sqrt(-math.expm1(-2.0 * eta * h)) * noise.like(x)
    return x_t


def table_row(
    hist: list[Point], t: Point, order: int, eta: float, solver_type: str, third: str
) -> tuple[float, list[float], float]:
    """:func:`paper_step` as ``(c_x, [w_0, w_1, w_2], noise_std)``:
    ``x_t = c_x x_s + sum_j w_j M_j + noise_std z`` (``hist`` newest first)."""
    s = hist[0]
    h = t.lam - s.lam
    he = (1.0 + eta) * h
    c_x = (t.sigma / s.sigma) * (math.exp(-eta * h) if eta > 0 else 1.0)
    std = t.sigma * math.sqrt(-math.expm1(-2.0 * eta * h)) if eta > 0 else 0.0
    w = [-t.alpha * math.expm1(-he) if eta > 0 else ddim_step("data", s, t)[1], 0.0, 0.0]
    if order == 1:
        return c_x, w, std
    g = t.alpha * he
    r0 = (s.lam - hist[1].lam) / h
    if order == 2:
        c1 = 0.5 * w[0] if solver_type == "midpoint" else g * phi(2, -he)
        w[0] += c1 / r0
        w[1] -= c1 / r0
        return c_x, w, std
    r1 = (hist[1].lam - hist[2].lam) / h
    c1 = g * phi(2, -he)
    c2 = g * phi(3, -he) * (2.0 if third == "consistent" else 1.0)
    # D1 = (1 + a) D1_0 - a D1_1 with a = r0 / (r0 + r1);  D2 = (D1_0 - D1_1) / (r0 + r1)
    a = r0 / (r0 + r1)
    k0 = c1 * (1.0 + a) + c2 / (r0 + r1)  # weight of D1_0 = (M_0 - M_1) / r0
    k1 = -c1 * a - c2 / (r0 + r1)  # weight of D1_1 = (M_1 - M_2) / r1
    w[0] += k0 / r0
    w[1] += -k0 / r0 + k1 / r1
    w[2] -= k1 / r1
    return c_x, w, std


@dataclass(frozen=True)
class DPMSolverPPMultistep(Solver):
    """DPM-Solver++(2M) / (3M), one network evaluation per step; ``eta > 0`` is the SDE form.

    Options: ``solver_type`` (the order-2 weight: ``"midpoint"`` or ``"heun"``), ``third_order``
    (3M: ``"consistent"`` or ``"published"``), ``lower_order_final``, ``eta``.
    """

    order: int = 2
    eta: float = 0.0
    solver_type: str = "midpoint"
    third_order: str = THIRD_ORDER_DEFAULT
    lower_order_final: bool = True
    multistep = True
    invertible = True  # checked: tests/inversion

    def __post_init__(self) -> None:
        if self.order not in (1, 2, 3):
            raise InterpolantError(f"DPM-Solver++ multistep has orders 1-3, got {self.order!r}")
        if self.solver_type not in ("midpoint", "heun"):
            raise InterpolantError(
                f"solver_type must be 'midpoint' or 'heun', got {self.solver_type!r}"
            )
        if self.third_order not in THIRD_ORDER:
            raise InterpolantError(
                f"third_order must be 'consistent' or 'published', got {self.third_order!r}"
            )
        if not (isinstance(self.eta, (int, float)) and self.eta >= 0):
            raise InterpolantError(f"eta must be a number >= 0, got {self.eta!r}")

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.eta > 0

    def plan(self, ts: Tensor, path: GaussianPath) -> list[tuple[list[Point], Point, int]]:
        """``(history newest first, t, order)`` per step."""
        pts = points(path, ts)
        orders = multistep_orders(pts, self.order, self.lower_order_final)
        return [(pts[i - k + 1: i + 1][::-1], pts[i + 1], k) for i, k in enumerate(orders)]

    def table(self, ts: Tensor, path: GaussianPath) -> tuple[Row, ...]:
        """``(c_x, (w_0, w_1, w_2), noise_std)`` per step (:func:`table_row`)."""
        rows = (table_row(hist, t, k, self.eta, self.solver_type, self.third_order)
                for hist, t, k in self.plan(ts, path))
        return tuple((c_x, tuple(w), std) for c_x, w, std in rows)

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        table = table_for(self, ts, path)
        times = ts.tolist()
        outs: list[Tensor] = []  # data predictions, newest first
        for i, (c_x, w, std) in enumerate(table):
            outs = [model(x, times[i], "x0")] + outs[:2]
            x = combine(c_x, x, w, outs)
            if std > 0.0:
                x.add_(noise.like(x), alpha=std)
            yield State(i + 1, times[i + 1], x, outs[0], model.nfe)

    def paper_run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        outs: list[Tensor] = []
        for i, (hist, t, k) in enumerate(self.plan(ts, path)):
            outs = [model(x, hist[0].t, "x0")] + outs[:2]
            x = paper_step(x, outs, hist, t, k, self.eta, self.solver_type, self.third_order,
                           noise)
            yield State(i + 1, t.t, x, outs[0], model.nfe)


@dataclass(frozen=True)
class DPMSolverPPSDE(DPMSolverPPMultistep):
    """SDE-DPM-Solver++(2M)/(3M): ``eta = 1`` (default) samples the reverse SDE; ``eta = 0``
    is the ODE solver. A ``torch.Generator`` per sample makes samples batch-independent.
    ``solver_type`` defaults to ``"midpoint"`` for 2M and ``"heun"`` for 3M (k-diffusion)."""

    eta: float = 1.0
    solver_type: str = ""

    def __post_init__(self) -> None:
        if self.solver_type == "":
            object.__setattr__(self, "solver_type", "heun" if self.order == 3 else "midpoint")
        super().__post_init__()


register("dpm++2m", order=2, eta=0.0)(DPMSolverPPMultistep)
register("dpm++3m", order=3, eta=0.0)(DPMSolverPPMultistep)
register("dpm++2m-sde", order=2)(DPMSolverPPSDE)
register("dpm++3m-sde", order=3)(DPMSolverPPSDE)
# DPM-Solver++(2S), Algorithm 1 of the paper: singlestep order 2 in the data form, r = 1/2.
register("dpm++2s", order=2, form="data")(DPMSolver)
