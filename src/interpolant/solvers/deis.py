"""DEIS: diffusion exponential integrator sampler, multistep tAB-DEIS of orders 1-3.

Zhang & Chen, "Fast Sampling of Diffusion Models with Exponential Integrator" (ICLR 2023),
Sec. 4 (tAB-DEIS, eq. 14-15). The exact solution of the probability-flow ODE in
``x~ = x / alpha`` and ``rho = sigma / alpha = e^{-lam}`` is ``x~_t = x~_s + int eps d rho``. DEIS
extrapolates ``eps`` by the Lagrange polynomial through the current and the ``p - 1`` previous
model outputs and integrates it exactly::

    x_t = (alpha_t / alpha_s) x_s + alpha_t sum_j C_j eps_j,
    C_j = int_{rho_s}^{rho_t} L_j(log rho) d rho,   L_j(nodes_k) = delta_jk,

with the Lagrange basis in ``log rho = -lam`` (the "logrho" variant of diffusers'
``DEISMultistepScheduler``; the paper's tAB interpolates in ``t``, which ties the method to the
time parametrisation, while ``log rho`` depends on the path only through its log-SNR).
``alpha_t C_j = -sigma_t h int_0^1 e^{h (1 - u)} L_j(u) du`` in ``u = (lam - lam_s) / h``, computed
once per grid by 24-point Gauss-Legendre quadrature in float64 (exact to rounding for the
degree-2 polynomial times exponential here). Order 1 is DDIM. The order of accuracy is ``p``.

``lower_order_final`` (default True): with fewer than 15 steps the last step is order 1 and
the one before at most 2 (as diffusers). A step from pure noise or to clean data is DDIM (see
:mod:`.dpm`), and history across such a point is not used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, combine, register, table_for
from .exponential import Point, ddim_step, is_end_step, multistep_orders, phi, points

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(24)
_U = 0.5 * (_NODES + 1.0)  # Gauss-Legendre on [0, 1]
_W = 0.5 * _WEIGHTS


def lagrange_basis(nodes: list[float], j: int, u: np.ndarray) -> np.ndarray:
    """The ``j``-th Lagrange basis polynomial through ``nodes``, evaluated at ``u``."""
    out = np.ones_like(u)
    for k, node in enumerate(nodes):
        if k != j:
            out *= (u - node) / (nodes[j] - node)
    return out


def deis_row(hist: list[Point], t: Point, order: int) -> tuple[float, list[float], str]:
    """``(c_x, [w_0, ..], target)``: ``x_t = c_x x_s + sum_j w_j M_j``, ``hist`` newest first."""
    s = hist[0]
    h = t.lam - s.lam
    if is_end_step(s, t):
        c_x, c0 = ddim_step("data", s, t)
        return c_x, [c0], "x0"
    nodes = [(p.lam - s.lam) / h for p in hist[:order]]
    kernel = np.exp(h * (1.0 - _U))
    weights = [float(-t.sigma * h * np.sum(_W * kernel * lagrange_basis(nodes, j, _U)))
               for j in range(order)]
    return t.alpha / s.alpha, weights, "eps"


def paper_step(hist: list[Point], t: Point, eps: list[Tensor], x: Tensor, order: int) -> Tensor:
    """tAB-DEIS from ``hist[0]`` to ``t`` with ``C_j`` in closed form: writing the Lagrange
    basis as ``L_j(u) = sum_k c_jk u^k``, ``int_0^1 e^{h (1 - u)} u^k du = k! phi_{k+1}(h)``."""
    s, h = hist[0], t.lam - hist[0].lam
    nodes = [(p.lam - s.lam) / h for p in hist[:order]]
    x_t = (t.alpha / s.alpha) * x
    for j, e in enumerate(eps[:order]):
        others = [n for k, n in enumerate(nodes) if k != j]
        coeffs = np.polynomial.polynomial.polyfromroots(others) / np.prod(
            [nodes[j] - n for n in others])
        integral = sum(c * math.factorial(k) * phi(k + 1, h) for k, c in enumerate(coeffs))
        x_t = x_t - t.sigma * h * float(integral) * e
    return x_t


@register("deis")
@dataclass(frozen=True)
class DEIS(Solver):
    """tAB-DEIS of ``order`` 1-3 (default 3, the paper's choice), eps-Lagrange in log-SNR.

    One network evaluation per step. Option ``lower_order_final``.
    """

    order: int = 3
    lower_order_final: bool = True
    multistep = True
    invertible = True  # checked: tests/inversion

    def __post_init__(self) -> None:
        if self.order not in (1, 2, 3):
            raise InterpolantError(f"deis has orders 1, 2, 3, got order={self.order!r}")

    def table(self, ts: Tensor, path: GaussianPath) -> tuple[tuple[float, float, tuple, str], ...]:
        """``(t_s, c_x, weights, target)`` per step (:func:`deis_row`)."""
        pts = points(path, ts)
        orders = multistep_orders(pts, self.order, self.lower_order_final)
        rows = (deis_row(pts[i - k + 1: i + 1][::-1], pts[i + 1], k) for i, k in enumerate(orders))
        return tuple((pts[i].t, c_x, tuple(w), tg) for i, (c_x, w, tg) in enumerate(rows))

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        times = ts.tolist()
        outs: list[Tensor] = []  # eps predictions, newest first
        for i, (t_s, c_x, weights, target) in enumerate(table_for(self, ts, path)):
            m = model(x, t_s, target)
            outs = [m] + outs[:2]
            x = combine(c_x, x, weights, outs)
            yield State(i + 1, times[i + 1], x, m if target == "x0" else None, model.nfe)

    def paper_run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        pts = points(path, ts)
        outs: list[Tensor] = []
        for i, k in enumerate(multistep_orders(pts, self.order, self.lower_order_final)):
            hist, t = pts[i - k + 1: i + 1][::-1], pts[i + 1]
            if is_end_step(hist[0], t):
                x0 = model(x, hist[0].t, "x0")
                c_x, c_0 = ddim_step("data", hist[0], t)
                x, outs = c_x * x + c_0 * x0, [x0] + outs[:2]
            else:
                outs = [model(x, hist[0].t, "eps")] + outs[:2]
                x = paper_step(hist, t, outs, x, k)
            yield State(i + 1, t.t, x, outs[0] if is_end_step(hist[0], t) else None, model.nfe)
