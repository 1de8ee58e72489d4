"""Euler and Heun on the probability-flow ODE ``dx/dt = u(x, t)`` in the path's own time.

``u`` is the velocity prediction (``alpha' x0 + sigma' eps`` on a Gaussian path), so these
solvers need nothing of the path but the velocity: they serve rectified flows, general
interpolants and diffusions alike. For rectified flow (``Linear``) ``euler`` is the usual
flow-matching sampler (diffusers' ``FlowMatchEulerDiscreteScheduler``) and ``heun`` its
second-order version (``FlowMatchHeunDiscreteScheduler``).

Euler:  ``x_{i+1} = x_i + (t_{i+1} - t_i) u(x_i, t_i)``.
Heun (explicit trapezoid, Karras et al. 2022, Algorithm 1 in ``t``)::

    d  = u(x_i, t_i);  x' = x_i + dt d
    x_{i+1} = x_i + dt (d + u(x', t_{i+1})) / 2

Where ``sigma(t_{i+1}) = 0`` the corrector is skipped (the velocity of a noise-predicting
network is undefined there), as in EDM's sampler; inverting (an increasing grid) likewise where
``alpha(t_{i+1}) = 0``, the pure-noise end of rectified flow, cosine and trigonometric paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, register


@register("euler")
@dataclass(frozen=True)
class Euler(Solver):
    """Explicit Euler on ``dx/dt = u(x, t)``; first order, one evaluation per step."""

    needs_gaussian = False
    invertible = True  # checked: tests/inversion

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        times = ts.tolist()
        dts = [t - s for s, t in zip(times[:-1], times[1:])]
        for i, dt in enumerate(dts):
            u = model(x, times[i], "velocity")
            x = torch.add(x, u, alpha=dt)
            yield State(i + 1, times[i + 1], x, None, model.nfe)


@register("heun")
@dataclass(frozen=True)
class Heun(Solver):
    """Heun's method on ``dx/dt = u(x, t)``; second order, two evaluations per step."""

    needs_gaussian = False
    invertible = True  # checked: tests/inversion
    nfe_per_step = 2

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        times = ts.tolist()
        ends = path.scalars(times[-1])[:2] if isinstance(path, GaussianPath) else (1.0, 1.0)
        last_is_clean = 0.0 in ends  # sigma = 0 (data), or alpha = 0 (inverting into noise)
        for i in range(len(times) - 1):
            dt = times[i + 1] - times[i]
            d = model(x, times[i], "velocity")
            x_euler = torch.add(x, d, alpha=dt)
            if last_is_clean and i == len(times) - 2:
                x = x_euler
            else:
                d_next = model(x_euler, times[i + 1], "velocity")
                x = torch.add(x, d + d_next, alpha=0.5 * dt)
            yield State(i + 1, times[i + 1], x, None, model.nfe)
