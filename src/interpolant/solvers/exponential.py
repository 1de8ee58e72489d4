"""What the exponential integrators share: time points, phi functions, the DDIM step, the
order schedule of multistep methods, and the one rule for steps at the ends of a path.

On a Gaussian path ``x_t = alpha_t x0 + sigma_t eps`` with half log-SNR ``lam = log(alpha /
sigma)``, the probability-flow ODE has the exact solution (Lu et al. 2022, DPM-Solver, eq. 3-4)::

    noise form:  x_t = (alpha_t / alpha_s) x_s - alpha_t int_{lam_s}^{lam_t} e^{-lam} eps dlam
    data form:   x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lam_s}^{lam_t} e^{lam} x0 dlam

Expanding the model output in ``u = (lam - lam_s) / h``, ``h = lam_t - lam_s``, turns each
integral into a sum over ``phi_k``: ``phi_1(z) = (e^z - 1) / z``, ``phi_{k+1}(z) = (phi_k(z) -
1/k!) / z``. Holding the output constant gives the first-order step, which is DDIM::

    noise form:  x_t = (alpha_t / alpha_s) x_s - sigma_t expm1(h) eps_s
    data form:   x_t = (sigma_t / sigma_s) x_s - alpha_t expm1(-h) x0_s

**The ends of a path.** A point whose log-SNR is below :data:`PURE_NOISE_LAM` is pure noise
(signal under 3e-7 of the noise: rectified flow, cosine and trigonometric paths at ``t = 1``,
where ``alpha`` is 0 or ~1e-17). A step that starts there, or ends at clean data
(``sigma_t = 0``, ``h`` infinite), is a data-form DDIM step, whose coefficients stay finite
(``x_t = (sigma_t / sigma_s) x_s + alpha_t x0`` from pure noise); no higher-order term and no
history crosses such a point (:func:`is_end_step`, :func:`multistep_orders`).

**Either direction.** Every formula above holds for ``h < 0``: an increasing grid integrates
the same ODE from data towards noise (an inversion, :mod:`interpolant.inversion`) with the same
tables. The mirrored end step, from a point with ``sigma > 0`` *into* pure noise, is again a
data-form DDIM step, ``x_t = alpha_t x0 + sigma_t (x_s - alpha_s x0) / sigma_s``, written so
that its coefficients stay finite where ``alpha_t = 0`` (:func:`ddim_step`). An inversion
cannot start at clean data (``sigma_s = 0``, no noise to take a direction from): it starts at
``path.t_min``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath

#: Below this half log-SNR (signal under 3e-7 of the noise) a point counts as pure noise.
PURE_NOISE_LAM = -15.0
FORMS = ("noise", "data")
TARGET = {"noise": "eps", "data": "x0"}
FEW_STEPS = 15  # diffusers' threshold for lower_order_final


class Point(NamedTuple):
    """A time with its ``alpha``, ``sigma`` and ``lam``, in float64."""

    t: float
    alpha: float
    sigma: float
    lam: float


def points(path: GaussianPath, ts: Tensor) -> list[Point]:
    """:class:`Point` at every time of ``ts``, each quantity evaluated once on the whole grid."""
    ts = ts.to(torch.float64)
    cols = (ts.tolist(), path.alpha(ts).tolist(), path.sigma(ts).tolist(), path.lam(ts).tolist())
    return [Point(*p) for p in zip(*cols)]


def point(path: GaussianPath, t: float) -> Point:
    return points(path, torch.tensor([float(t)], dtype=torch.float64))[0]


def point_at_lam(path: GaussianPath, lam: float) -> Point:
    return point(path, path.t_of_lam(lam))


def is_pure_noise(p: Point) -> bool:
    """Whether the state at ``p`` is pure noise (``lam < PURE_NOISE_LAM``)."""
    return p.lam < PURE_NOISE_LAM


def is_end_step(s: Point, t: Point) -> bool:
    """Whether the step ``s -> t`` starts at pure noise or ends at clean data (or, inverting,
    ends at pure noise): it must then be a data-form DDIM step."""
    return is_pure_noise(s) or is_pure_noise(t) or not math.isfinite(t.lam - s.lam)


def phi(k: int, z: float) -> float:
    """``phi_k(z) = sum_n z^n / (n + k)!`` (``k >= 1``), by its series near 0."""
    if abs(z) < 0.05:
        return sum(z**n / math.factorial(n + k) for n in range(16))
    val = math.expm1(z) / z
    for j in range(1, k):
        val = (val - 1.0 / math.factorial(j)) / z
    return val


def check_form(form: str) -> None:
    if form not in FORMS:
        raise InterpolantError(f"form must be 'noise' (eps, DPM-Solver) or 'data' (x0, "
                               f"DPM-Solver++), got {form!r}")


def ddim_step(form: str, s: Point, t: Point) -> tuple[float, float]:
    """``(c_x, c_m)`` of the first-order step ``x_t = c_x x_s + c_m M_s`` (the formulas
    above); in the data form finite for infinite ``h`` in either direction, where
    ``-alpha_t expm1(-h) = alpha_t - sigma_t alpha_s / sigma_s``."""
    h = t.lam - s.lam
    if form == "data":
        if not math.isfinite(h):
            return t.sigma / s.sigma, t.alpha - t.sigma * s.alpha / s.sigma
        return t.sigma / s.sigma, -t.alpha * math.expm1(-h)
    return t.alpha / s.alpha, -t.sigma * math.expm1(h)


def taylor_weights(form: str, s: Point, t: Point, order: int) -> tuple[float, list[float]]:
    """``(c_x, [w_0, .., w_{order-1}])``: ``x_t = c_x x_s + sum_k w_k d_k`` where ``d_k``
    approximates ``h^k M^(k)`` at ``s`` and ``w_k = g phi_{k+1}(z)`` (``g = alpha_t h, z = -h``
    in the data form; ``g = -sigma_t h, z = h`` in the noise form); ``h`` finite."""
    c_x, w0 = ddim_step(form, s, t)
    h = t.lam - s.lam
    g, z = (t.alpha * h, -h) if form == "data" else (-t.sigma * h, h)
    return c_x, [w0] + [g * phi(k + 1, z) for k in range(1, order)]


def multistep_orders(pts: list[Point], order: int, lower_order_final: bool) -> list[int]:
    """The order of each step of a multistep method on the grid ``pts``.

    Warm-up: step ``i`` uses at most ``i + 1`` points. No history crosses an end step
    (:func:`is_end_step`). ``lower_order_final`` on grids of fewer than ``FEW_STEPS`` steps:
    order 1 for the last step, at most 2 for the one before (as diffusers).
    """
    n = len(pts) - 1
    orders = []
    for i in range(n):
        k = min(order, i + 1)
        while k > 1 and any(is_end_step(a, b) for a, b in zip(pts[i - k + 1: i + 1],
                                                             pts[i - k + 2: i + 2])):
            k -= 1
        if lower_order_final and n < FEW_STEPS:
            k = min(k, n - i)
        orders.append(k)
    return orders
