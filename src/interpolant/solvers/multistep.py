"""Pseudo numerical methods: PNDM (S- and F-), PLMS and iPNDM.

Liu, Ren, Lin & Zhao, "Pseudo Numerical Methods for Diffusion Models on Manifolds" (ICLR 2022);
Zhang & Chen, "Fast Sampling of Diffusion Models with Exponential Integrator" (ICLR 2023, the
iPNDM of its appendix, k-diffusion's ``sample_ipndm``).

All of them move the state with the DDIM *transfer* of a combined noise prediction ``e``::

    phi(x, s -> t, e) = (alpha_t / alpha_s) x + alpha_t (sigma~_t - sigma~_s) e

which is exact when ``eps`` is constant (Euler on ``dx~/dsigma~ = eps`` in the scaled state
``x~ = x / alpha``, ``sigma~ = sigma / alpha``). The methods differ in how ``e`` is formed:

* ``plms`` (LDM / diffusers ``PNDMScheduler(skip_prk_steps=True)``): step 1 a pseudo improved
  Euler step ``e = (eps(x, s) + eps(phi(x, s -> t, eps(x, s)), t)) / 2`` (2 NFE), then
  Adams-Bashforth orders 2, 3, 4 on the history of ``eps``. NFE = steps + 1.
* ``pndm`` ``variant="f"`` (F-PNDM): three pseudo Runge-Kutta steps (4 NFE each, midpoint
  ``(s + t) / 2`` in time as in the paper's code), then AB4. NFE = steps + 9.
  ``variant="s"`` (S-PNDM): one pseudo improved Euler step, then AB2. NFE = steps + 1.
* ``ipndm``: no Runge-Kutta warm-up; Adams-Bashforth of order ``min(order, i + 1)``. NFE = steps.

The Adams-Bashforth weights are the constant ones of the papers (a uniform step is assumed). On
a grid that is not uniform in ``sigma~`` (every practical one) the pseudo methods are therefore
second order; they integrate polynomial ``eps(sigma~)`` of degree ``order - 1`` exactly on grids
uniform in ``sigma~``, which the tests check.

A step that starts at pure noise (:mod:`.exponential`: rectified flow, cosine and trigonometric
paths at ``t = 1``, where ``sigma~`` is infinite or ~1e16) cannot combine noise predictions,
whose combination is multiplied by ``sigma~_s``; it is a DDIM step (1 NFE), and so is a step
into pure noise when inverting (an increasing grid).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, combine, register
from .exponential import is_pure_noise, point

#: Adams-Bashforth weights of orders 1..4, newest first.
AB_WEIGHTS = (
    (1.0,),
    (3 / 2, -1 / 2),
    (23 / 12, -16 / 12, 5 / 12),
    (55 / 24, -59 / 24, 37 / 24, -9 / 24),
)


class Transfer(NamedTuple):
    """``phi(x, s -> t, e) = a x + b e``; for a step from pure noise ``a`` and ``b`` are NaN and
    the DDIM form ``x_t = c_x x + c_0 x0`` applies instead."""

    a: float
    b: float
    c_x: float
    c_0: float

    def __call__(self, x: Tensor, e: Tensor) -> Tensor:
        return torch.add(self.a * x, e, alpha=self.b)


def transfer(path: GaussianPath, s: float, t: float) -> Transfer:
    """The DDIM transfer from time ``s`` to time ``t`` in float64.

    ``b = alpha_t sigma~_s expm1(lam_s - lam_t)`` (accurate for short steps and finite when
    ``sigma_t = 0``)."""
    a_s, s_s = path.scalars(s)[:2]
    a_t, s_t = path.scalars(t)[:2]
    c_x, c_0 = s_t / s_s, a_t - s_t * a_s / s_s
    if is_pure_noise(point(path, s)) or is_pure_noise(point(path, t)):  # t: inverting
        return Transfer(math.nan, math.nan, c_x, c_0)
    h = path.lam(t) - path.lam(s)
    return Transfer(a_t / a_s, a_t * (s_s / a_s) * math.expm1(-h), c_x, c_0)


def _from_noise(model: Model, x: Tensor, s: float, alpha_s: float, sigma_s: float, phi: Transfer):
    """A DDIM step from pure noise: the new state and ``eps = (x - alpha_s x0) / sigma_s``."""
    x0 = model(x, s, "x0")
    return torch.add(phi.c_x * x, x0, alpha=phi.c_0), (x - alpha_s * x0) / sigma_s


def _table(path: GaussianPath, ts: Tensor) -> list[tuple[float, float, Transfer]]:
    times = ts.tolist()
    return [(s, t, transfer(path, s, t)) for s, t in zip(times[:-1], times[1:])]


def _pseudo_improved_euler(model: Model, x: Tensor, s: float, t: float, phi: Transfer, eps):
    """PNDM's first S-PNDM / PLMS step: ``e = (eps_s + eps(phi(x, s -> t, eps_s), t)) / 2``."""
    return 0.5 * (eps + model(phi(x, eps), t, "eps"))


def _pseudo_runge_kutta(model, x, s, t, phi, phi_half, eps):
    """PNDM's pseudo RK4 (eq. 13): four evaluations at ``s``, the midpoint twice, and ``t``."""
    t_mid = 0.5 * (s + t)
    e2 = model(phi_half(x, eps), t_mid, "eps")
    e3 = model(phi_half(x, e2), t_mid, "eps")
    e4 = model(phi(x, e3), t, "eps")
    return (eps + 2.0 * e2 + 2.0 * e3 + e4) / 6.0


def _multistep(model, x, path, table, warmup, order, half=None) -> Iterator[State]:
    """The loop every method here shares: ``warmup(i)`` names the step's start rule
    (``"rk"``, ``"euler"`` or ``None`` for Adams-Bashforth of order ``order(i)``)."""
    history: list[Tensor] = []
    for i, (s, t, phi) in enumerate(table):
        if math.isnan(phi.a):
            x, eps = _from_noise(model, x, s, *path.scalars(s)[:2], phi)
            history.insert(0, eps)
        else:
            eps = model(x, s, "eps")
            rule = warmup(i)
            if rule == "euler":
                e = _pseudo_improved_euler(model, x, s, t, phi, eps)
            elif rule == "rk":
                e = _pseudo_runge_kutta(model, x, s, t, phi, half[i], eps)
            history.insert(0, eps)  # newest first
            if rule is None:
                e = combine(0.0, None, AB_WEIGHTS[min(order(i), len(history)) - 1], history)
            x = phi(x, e)
        del history[3:]
        yield State(i + 1, t, x, None, model.nfe)


@register("plms")
@dataclass(frozen=True)
class PLMS(Solver):
    """PLMS: a pseudo improved Euler step, then Adams-Bashforth 2, 3, 4 on ``eps``
    (diffusers' ``PNDMScheduler`` with ``skip_prk_steps=True``). NFE = steps + 1."""

    min_steps = 2
    warmup_nfe = 1
    multistep = True
    invertible = True  # checked: tests/inversion

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        table = _table(path, ts)
        yield from _multistep(
            model, x, path, table, lambda i: "euler" if i == 0 else None, lambda i: 4
        )


@register("pndm")
@dataclass(frozen=True)
class PNDM(Solver):
    """PNDM. ``variant="f"`` (F-PNDM, the paper's main method and diffusers' default): three
    pseudo Runge-Kutta steps (4 NFE each), then AB4; NFE = steps + 9.
    ``variant="s"`` (S-PNDM): a pseudo improved Euler step, then AB2; NFE = steps + 1."""

    variant: str = "f"
    multistep = True
    invertible = True  # checked: tests/inversion

    @property
    def warmup_nfe(self) -> int:  # type: ignore[override]
        return 9 if self.variant == "f" else 1

    def __post_init__(self) -> None:
        if self.variant not in ("f", "s"):
            raise InterpolantError(
                f"pndm variant must be 'f' (F-PNDM) or 's' (S-PNDM), got {self.variant!r}"
            )

    @property
    def min_steps(self) -> int:  # type: ignore[override]
        return 4 if self.variant == "f" else 2

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        table = _table(path, ts)
        if self.variant == "s":
            yield from _multistep(
                model, x, path, table, lambda i: "euler" if i == 0 else None, lambda i: 2
            )
            return
        half = [transfer(path, s, 0.5 * (s + t)) for s, t, _ in table[:3]]
        yield from _multistep(
            model, x, path, table, lambda i: "rk" if i < 3 else None, lambda i: 4, half
        )


@register("ipndm")
@dataclass(frozen=True)
class IPNDM(Solver):
    """iPNDM: Adams-Bashforth on ``eps`` over the DDIM transfer, with orders ``1, 2, ..`` up to
    ``order`` (at most 4) while the history fills. One evaluation per step."""

    order: int = 4
    multistep = True
    invertible = True  # checked: tests/inversion

    def __post_init__(self) -> None:
        if isinstance(self.order, bool) or self.order not in (1, 2, 3, 4):
            raise InterpolantError(f"ipndm order must be 1, 2, 3 or 4, got {self.order!r}")

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        order = self.order
        yield from _multistep(model, x, path, _table(path, ts), lambda i: None, lambda i: order)
