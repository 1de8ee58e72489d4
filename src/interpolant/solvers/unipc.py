"""UniPC: unified predictor-corrector multistep solver (variants B(h) = bh1, bh2).

Zhao, Bai, Rao, Zhou & Lu, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
Diffusion Models" (NeurIPS 2023), Algorithms 1-3 (UniP-p predictor, UniC corrector).

With the model outputs ``M_0`` at ``s`` and ``M_k`` at the previous points ``s_k``
(``r_k = (lam_{s_k} - lam_s) / h < 0``, ``D_k = (M_k - M_0) / r_k``), in the data form
(``hh = -h``; the noise form has ``hh = h``, ``alpha_t -> sigma_t`` in the ``B(h)`` terms and its
own DDIM ``base = (alpha_t / alpha_s) x_s - sigma_t expm1(h) eps_0``)::

    base  = (sigma_t / sigma_s) x_s - alpha_t expm1(hh) M_0          (DDIM)
    B(h)  = hh (bh1) or expm1(hh) (bh2)
    b_i   = hh phi_{i+1}(hh) i! / B(h),   R_{ij} = r_j^(i-1)          (i = 1..p)
    UniP-p:  x_t = base - alpha_t B(h) sum_k rho^p_k D_k,  R[:-1,:-1] rho^p = b[:-1]
             (rho^p = 1/2 for p = 2)
    UniC-p:  x_t^c = base - alpha_t B(h) (sum_k rho^c_k D_k + rho^c_p (M_t - M_0)),
             R rho^c = b with r_p = 1 (rho^c = 1/2 for p = 1)

``M_t`` is the model at the predicted ``x_t``: the next step evaluates it anyway, so the
corrector costs no network evaluation; the next step then starts from the corrected ``x_t^c``
with that same ``M_t``. UniP-p is of order p, and with UniC of order p + 1. The last step is not
corrected (that would cost one more evaluation), nor are the steps listed in
``disable_corrector``; ``corrector=False`` gives plain UniP. The states yielded are the
predictions (the correction of step i happens during step i + 1).

``lower_order_final`` (default True): on grids of fewer than 15 steps the order of step i is
at most ``steps - i`` (diffusers' UniPC does this on every grid; at 15 steps and more we keep
the full order). Warm-up orders rise 1, 2, ...; a step from pure noise or to clean data is DDIM,
uncorrected.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, combine, register, table_for
from .exponential import (FORMS, TARGET, Point, check_form, ddim_step, is_end_step,
                          multistep_orders, phi, points)

VARIANTS = ("bh1", "bh2")
Row = tuple[float, tuple[float, ...], tuple[float, ...]]  # (c_x, predictor, corrector weights)


def unipc_rows(
    form: str, hist: list[Point], t: Point, order: int, variant: str
) -> tuple[float, list[float], list[float]]:
    """``(c_x, predictor weights over [M_0, M_1, ..], corrector weights over [M_t, M_0, ..])``."""
    s = hist[0]
    if is_end_step(s, t):
        c_x, base = ddim_step("data", s, t)
        return c_x, [base], []
    c_x, base = ddim_step(form, s, t)
    h = t.lam - s.lam
    hh = -h if form == "data" else h
    scale = t.alpha if form == "data" else t.sigma
    b_h = hh if variant == "bh1" else math.expm1(hh)
    rks = [(p.lam - s.lam) / h for p in hist[1:]] + [1.0]
    b = [hh * phi(i + 1, hh) * math.factorial(i) / b_h for i in range(1, order + 1)]
    big_r = [[r ** (i - 1) for r in rks] for i in range(1, order + 1)]
    if order == 1:
        rho_p: list[float] = []
    elif order == 2:
        rho_p = [0.5]
    else:
        rho_p = _solve([row[:-1] for row in big_r[:-1]], b[:-1])
    rho_c = [0.5] if order == 1 else _solve(big_r, b)
    g = -scale * b_h  # x_t = base + g * (sum_k rho_k D_k)
    pred = [base] + [0.0] * (order - 1)
    corr = [0.0, base] + [0.0] * (order - 1)
    for k, (rho_pk, rho_ck, r) in enumerate(zip(rho_p + [0.0], rho_c, rks[:-1]), start=1):
        pred[k] += g * rho_pk / r
        pred[0] -= g * rho_pk / r
        corr[k + 1] += g * rho_ck / r
        corr[1] -= g * rho_ck / r
    corr[0] += g * rho_c[-1]
    corr[1] -= g * rho_c[-1]
    return c_x, pred, corr


def paper_update(form: str, hist: list[Point], t: Point, ms: list[Tensor], x: Tensor,
                 order: int, variant: str, m_t: Tensor | None = None) -> Tensor:
    """UniP-``order`` from ``hist[0]`` to ``t`` (``m_t = None``), or UniC-``order`` with the
    model output ``m_t`` at the predicted ``x_t``, in the paper's notation (``b`` by the
    paper's recursion ``h phi_{k+1}``, the systems by ``torch.linalg.solve``)."""
    s, h = hist[0], t.lam - hist[0].lam
    hh = -h if form == "data" else h
    ratio, scale = (t.sigma / s.sigma, t.alpha) if form == "data" else (t.alpha / s.alpha, t.sigma)
    x_t = ratio * x - scale * math.expm1(hh) * ms[0]  # DDIM
    if is_end_step(s, t) or (order == 1 and m_t is None):
        return x_t
    b_h = hh if variant == "bh1" else math.expm1(hh)
    rks = [(p.lam - s.lam) / h for p in hist[1:order]] + [1.0]
    h_phi, fact, b = math.expm1(hh) / hh - 1.0, 1.0, []
    for i in range(1, order + 1):
        b.append(h_phi * fact / b_h)
        fact *= i + 1
        h_phi = h_phi / hh - 1.0 / fact
    big_r = torch.tensor([[r ** (i - 1) for r in rks] for i in range(1, order + 1)],
                         dtype=torch.float64)
    d1s = [(m - ms[0]) / r for m, r in zip(ms[1:order], rks)]
    if m_t is None:  # UniP-p: rho = 1/2 for p = 2
        rho = [0.5] if order == 2 else torch.linalg.solve(big_r[:-1, :-1],
                                                          torch.tensor(b[:-1], dtype=torch.float64)).tolist()
        return x_t - scale * b_h * sum(r * d for r, d in zip(rho, d1s))
    rho = [0.5] if order == 1 else torch.linalg.solve(big_r, torch.tensor(b, dtype=torch.float64)).tolist()
    correction = sum((r * d for r, d in zip(rho[:-1], d1s)), rho[-1] * (m_t - ms[0]))
    return x_t - scale * b_h * correction


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve the small system ``a y = b`` (at most 3 x 3) by Gaussian elimination with
    partial pivoting, in Python floats (float64)."""
    n = len(b)
    m = [list(row) + [rhs] for row, rhs in zip(a, b)]
    for k in range(n):
        piv = max(range(k, n), key=lambda i: abs(m[i][k]))
        m[k], m[piv] = m[piv], m[k]
        for i in range(k + 1, n):
            f = m[i][k] / m[k][k]
            m[i] = [u - f * v for u, v in zip(m[i], m[k])]
    y = [0.0] * n
    for k in reversed(range(n)):
        y[k] = (m[k][n] - sum(m[k][j] * y[j] for j in range(k + 1, n))) / m[k][k]
    return y


@register("unipc")
@dataclass(frozen=True)
class UniPC(Solver):
    """UniPC-``order`` (1-3), data-prediction form by default (``form="noise"`` for eps).

    One network evaluation per step. ``variant``: ``"bh2"`` (default, as diffusers) or
    ``"bh1"``. Options ``corrector``, ``disable_corrector`` (step indices), ``lower_order_final``.
    """

    order: int = 2
    variant: str = "bh2"
    form: str = "data"
    corrector: bool = True
    disable_corrector: tuple[int, ...] = ()
    lower_order_final: bool = True
    multistep = True
    invertible = True  # checked: tests/inversion

    def __post_init__(self) -> None:
        if self.order not in (1, 2, 3):
            raise InterpolantError(f"unipc has orders 1, 2, 3, got order={self.order!r}")
        if self.variant not in VARIANTS:
            raise InterpolantError(f"variant must be 'bh1' or 'bh2', got {self.variant!r}")
        if self.form not in FORMS:
            check_form(self.form)
        object.__setattr__(self, "disable_corrector", tuple(self.disable_corrector))

    def table(self, ts: Tensor, path: GaussianPath) -> tuple[tuple[float, str, Row], ...]:
        """``(t_s, form, (c_x, predictor weights, corrector weights))`` per step."""
        pts = points(path, ts)
        orders = multistep_orders(pts, self.order, self.lower_order_final)
        forms = ["data" if is_end_step(pts[i], pts[i + 1]) else self.form
                 for i in range(len(orders))]
        rows = (unipc_rows(f, pts[i - k + 1: i + 1][::-1], pts[i + 1], k, self.variant)
                for i, (k, f) in enumerate(zip(orders, forms)))
        return tuple((pts[i].t, f, (c_x, tuple(pred), tuple(corr)))
                     for i, (f, (c_x, pred, corr)) in enumerate(zip(forms, rows)))

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        table = table_for(self, ts, path)
        times = ts.tolist()
        outs: list[Tensor] = []  # model outputs, newest first
        x_prev = x
        for i, (t_s, form, row) in enumerate(table):
            m = model(x, t_s, TARGET[form])
            if i > 0 and self._corrects(i - 1, table[i - 1][2], table[i - 1][1] == form):
                c_xc, _, corr = table[i - 1][2]
                x = combine(c_xc, x_prev, corr, [m] + outs)
            outs = [m] + outs[:2]
            x_prev = x
            x = combine(row[0], x, row[1], outs)
            yield State(i + 1, times[i + 1], x, m if form == "data" else None, model.nfe)

    def paper_run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        pts = points(path, ts)
        prev = None  # (form, history, t, order, outputs, start state) of the step before
        outs: list[Tensor] = []
        for i, k in enumerate(multistep_orders(pts, self.order, self.lower_order_final)):
            hist, t = pts[i - k + 1: i + 1][::-1], pts[i + 1]
            form = "data" if is_end_step(hist[0], t) else self.form
            m = model(x, hist[0].t, TARGET[form])
            if prev is not None and self._corrects(i - 1, not is_end_step(prev[1][0], prev[2]),
                                                   prev[0] == form):
                x = paper_update(*prev[:3], prev[4], prev[5], prev[3], self.variant, m_t=m)
            outs = [m] + outs[:2]
            prev = (form, hist, t, k, outs, x)
            x = paper_update(form, hist, t, outs, x, k, self.variant)
            yield State(i + 1, t.t, x, m if form == "data" else None, model.nfe)

    def _corrects(self, i: int, row: Row | bool, same: bool) -> bool:
        corrected = bool(row[2]) if isinstance(row, tuple) else row
        return self.corrector and i not in self.disable_corrector and corrected and same
