"""Consistency models (Song, Dhariwal, Chen & Sutskever 2023, "Consistency Models").

A consistency function maps every point of a probability-flow trajectory to the trajectory's
point at ``t_min``: ``f(x_t, t) = f(x_s, s)`` and ``f(x, t_min) = x``. On a Gaussian path
``x_t = alpha x0 + sigma eps`` we write it in the noise-to-signal ratio ``s = sigma / alpha``
(EDM's sigma; ``s_min = s(t_min)``) as Song et al. eq. 7, scaled back to ``x_{t_min}``::

    f(x, t) = alpha_min (c_skip(s) x / alpha + c_out(s) F(c_in x, t))
    c_skip = sigma_d^2 / ((s - s_min)^2 + sigma_d^2)
    c_out  = sigma_d (s - s_min) / sqrt(sigma_d^2 + s^2)

which is finite where ``alpha = 0`` (multiply through by ``alpha``) and gives ``f(x, t_min) = x``
exactly. A student started from a teacher's weights keeps the teacher's parameterisation instead
(Luo et al. 2023, Latent Consistency Models, eq. 9): the raw network is the teacher's kind of
prediction ``F(x, t)`` (``eps``, ``v``, ...) converted to a data prediction ``x0^`` on the path,
and ``f(x, t) = alpha_min (c_skip x / alpha + (1 - c_skip) x0^)``, again exact at ``t_min``.

The loss compares the student at the noisier point of a pair of adjacent grid points with a
stop-gradient target at the cleaner one (eq. 10)::

    L = lambda(t_n) d(f_theta(x_{n+1}, t_{n+1}), f_target(x_n, t_n))

where the pair comes from a teacher ODE step (distillation, :mod:`.distillation`) or from the
same noise at both times (training, :mod:`.ict`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..grids import make as make_grid
from ..network import call_network, takes_cond
from ..paths import GaussianPath, broadcast_time
from ..predictions import TARGETS, convert

ConsistencyFn = Callable[[Tensor, Tensor], Tensor]

__all__ = ["ConsistencyModel", "pseudo_huber", "consistency_loss", "consistency_grid",
           "multistep_times", "consistency_sample"]

_LAM_FLOOR = -15.0  # s = sigma / alpha is capped at exp(15) where alpha = 0 (pure noise)


def noise_ratio(path: GaussianPath, t: Tensor) -> Tensor:
    """``s(t) = sigma / alpha = exp(-lam)`` in float64, capped at ``exp(15)`` at pure noise."""
    return torch.exp(-torch.clamp(path.lam(t.to(torch.float64)), min=_LAM_FLOOR))


class ConsistencyModel(nn.Module):
    """``f(x, t, cond)`` of the module docstring around a raw network ``F = net(x, t, cond)``.

    ``sigma_data`` is the data's standard deviation (0.5 in the papers' images in [-1, 1]).
    ``prediction`` (e.g. ``"v"``): the network is a teacher-like predictor of that kind, seen
    by ``f`` through its data prediction (LCM's parameterisation, module docstring); ``None``:
    Song et al.'s ``F(c_in x, t)``.
    """

    def __init__(self, net: nn.Module, path: GaussianPath, sigma_data: float = 0.5,
                 prediction: str | None = None) -> None:
        super().__init__()
        if not isinstance(path, GaussianPath):
            raise InterpolantError(f"a consistency model needs a Gaussian path, got "
                                   f"{type(path).__name__}")
        if not sigma_data > 0:
            raise InterpolantError(f"sigma_data must be positive, got {sigma_data}")
        if prediction is not None and prediction not in TARGETS:
            raise InterpolantError(f"unknown prediction {prediction!r}; choose one of: "
                                   f"{', '.join(TARGETS)}")
        self.net, self.path, self.sigma_data = net, path, float(sigma_data)
        self.prediction = prediction
        self._with_cond = takes_cond(net)
        t_min = path.t_min
        self.alpha_min = path.alpha(t_min)
        self.s_min = path.sigma(t_min) / self.alpha_min

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(c_x, c_F, c_in)`` with ``f = c_x x + c_F F(c_in x, t)``, float64 ``(B,)``."""
        t = t.to(torch.float64)
        a, s = self.path.alpha(t), self.path.sigma(t)
        sd, a_min = self.sigma_data, self.alpha_min
        r = s - self.s_min * a  # alpha (s~ - s~_min)
        norm = sd * sd * a * a + s * s  # alpha^2 (sigma_d^2 + s~^2)
        c_x = a_min * sd * sd * a / (r * r + sd * sd * a * a)
        return c_x, a_min * sd * r / torch.sqrt(norm), 1.0 / torch.sqrt(norm)

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        if not isinstance(t, Tensor) or t.shape != (x.shape[0],):
            raise InterpolantError(f"t must be a tensor of shape ({x.shape[0]},)")
        c_x, c_f, c_in = (broadcast_time(c.to(device=x.device, dtype=x.dtype), x)
                          for c in self.coefficients(t))
        if self.prediction is not None:  # c_x = alpha_min c_skip / alpha
            c_in = torch.ones_like(c_in)
            a = broadcast_time(self.path.alpha(t.to(torch.float64)).to(x.dtype), x)
            c_f = self.alpha_min - c_x * a  # alpha_min (1 - c_skip)
        out = call_network(self.net, self._with_cond, c_in * x, t.to(x.dtype), cond)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InterpolantError(f"the student network returned {shape} for data of shape "
                                   f"{tuple(x.shape)}; it must return the data's shape")
        out = out.to(x.dtype)
        if self.prediction is not None:
            out = convert(out, self.prediction, "x0", x, t.to(x.dtype), self.path)
        return c_x * x + c_f * out


def pseudo_huber(a: Tensor, b: Tensor, c: float | None = None) -> Tensor:
    """Per sample ``sqrt(|a - b|^2 + c^2) - c`` (Song & Dhariwal 2023, eq. 8); ``c`` defaults
    to ``0.00054 sqrt(d)`` for ``d`` numbers per sample. ~``|a-b|^2 / 2c`` near 0, ~``|a-b|``
    far from it."""
    d = (a - b).flatten(1)
    c = 0.00054 * math.sqrt(d.shape[1]) if c is None else float(c)
    return torch.sqrt((d * d).sum(1) + c * c) - c


def squared_l2(a: Tensor, b: Tensor) -> Tensor:
    """Per sample ``|a - b|^2``."""
    return ((a - b).flatten(1) ** 2).sum(1)


METRICS = {"l2": squared_l2, "pseudo-huber": pseudo_huber}


def consistency_loss(f: ConsistencyFn, f_target: ConsistencyFn, x_next: Tensor,
                     t_next: Tensor, x_prev: Tensor, t_prev: Tensor,
                     weight: Tensor | None = None, metric: str = "l2") -> Tensor:
    """``mean lambda d(f(x_{n+1}, t_{n+1}), sg f_target(x_n, t_n))`` (Song et al. 2023, eq. 10).

    ``f`` and ``f_target`` are called as ``f(x, t)`` with ``t`` of shape ``(B,)``; the target
    is computed without gradient (the stop-gradient of the papers).
    """
    if metric not in METRICS:
        raise InterpolantError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    with torch.no_grad():
        target = f_target(x_prev, t_prev)
    d = METRICS[metric](f(x_next, t_next), target)
    return (d if weight is None else weight.to(d.dtype) * d).mean()


def consistency_grid(path: GaussianPath, n: int, rho: float = 7.0) -> Tensor:
    """The increasing discretisation ``t_min = t_0 < ... < t_n = 1``: EDM's rho-spaced grid in
    ``s = sigma / alpha`` (Song et al. 2023, section 5) through :func:`interpolant.grids.make`."""
    return make_grid("karras", path, n, 1.0, path.t_min, rho).flip(0)


def multistep_times(path: GaussianPath, nfe: int) -> Tensor:
    """Default times of an ``nfe``-step consistency sampler: ``1`` and then the noise levels of
    an ``nfe``-step Karras grid (decreasing, ``nfe`` entries)."""
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise InterpolantError(f"nfe must be a positive integer, got {nfe!r}")
    return make_grid("karras", path, nfe, 1.0, path.t_min)[:-1]


def consistency_sample(f: Callable[..., Tensor], path: GaussianPath, x1: Tensor,
                       times: Tensor, generator: torch.Generator | None = None,
                       cond: Any = None, eta: float = 1.0) -> Tensor:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1).

    ``x = f(x1, tau_0)``; then for each later ``tau`` re-noise the ``t_min`` point ``x`` to
    ``tau`` with the exact law of ``x_tau`` given ``x_{t_min}`` under the path,
    ``x_tau = (alpha_tau / alpha_min) x + r_tau e`` with ``r_tau^2 = sigma_tau^2 -
    (alpha_tau s_min)^2``, and take ``x = f(x_tau, tau)``. Algorithm 1 draws ``e = z`` fresh
    (``eta = 1``); ``e = eta z + sqrt(1 - eta^2) e^`` mixes in the noise ``e^`` implied by the
    previous state and its ``f`` (``eta = 0``: a deterministic sampler, DDIM-like, whose output
    is a function of ``x1`` and can be compared with the exact flow map).
    """
    if not 0.0 <= eta <= 1.0:
        raise InterpolantError(f"eta must lie in [0, 1], got {eta}")
    a_min, s_min = path.alpha(path.t_min), path.sigma(path.t_min) / path.alpha(path.t_min)

    def spread(t: float) -> tuple[float, float]:
        a, s = path.alpha(t), path.sigma(t)
        return a / a_min, math.sqrt(max(s * s - (a * s_min) ** 2, 0.0))

    state, x, prev = x1, x1, None
    for tau in times.tolist():
        if prev is not None:
            gain, r = spread(prev)
            e = (state - gain * x) / r  # the noise that state carries about x
            if eta > 0.0:
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                e = eta * z + math.sqrt(1.0 - eta * eta) * e
            gain, r = spread(tau)
            state = gain * x + r * e
        x = f(state, torch.full((x.shape[0],), tau, dtype=x.dtype, device=x.device), cond)
        prev = tau
    return x
