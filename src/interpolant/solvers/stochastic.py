"""Stochastic samplers: Euler ancestral and Euler-Maruyama with tunable diffusion (the Langevin
corrector that can follow any one-step predictor is in :mod:`.corrector`).

* ``euler-ancestral`` (k-diffusion ``sample_euler_ancestral``, diffusers
  ``EulerAncestralDiscreteScheduler``), in ``sigma~ = sigma / alpha`` and ``x~ = x / alpha``::

      sigma~_up   = min(sigma~_t, eta sigma~_t sqrt(1 - exp(-2h)))      # h = lam_t - lam_s
      sigma~_down = sqrt(sigma~_t^2 - sigma~_up^2)
      x~_t = x~_s + (sigma~_down - sigma~_s) (x~_s - D) / sigma~_s + s_noise sigma~_up z

  For ``eta <= 1`` this is DDIM with the same ``eta`` (``alpha_t sigma~_up`` is DDIM's
  ``sigma_eta``); ``eta = 0`` is the deterministic Euler step in ``sigma~``.

* ``euler-maruyama``: the family of reverse-time SDEs whose marginals are the path's,
  ``dx = [u(x, t) - g(t)^2 / 2 * score(x, t)] dt + g(t) dW`` (``u`` the probability-flow
  velocity, ``dt < 0``), discretised by Euler-Maruyama at the left end of each step.
  ``diffusion`` is a float ``c`` giving ``g^2 = c g_nat^2`` with the natural diffusion
  ``g_nat(t)^2 = 2 sigma^2 |d lam / dt|`` (the forward SDE's ``g^2``: ``c = 1`` is the reverse
  SDE of Song et al. 2021 / DDPM, ``c = 0`` the probability-flow ODE, i.e. ``euler``), or a
  callable ``t -> g(t)^2`` (absolute, in path time). A step from pure noise
  (:mod:`.exponential`, where ``g_nat`` is infinite or ~1e16) is taken without noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, register
from .ddim import first_order_steps
from .exponential import is_pure_noise, point, points


def ancestral_table(
    path: GaussianPath, ts: Tensor, eta: float, s_noise: float
) -> list[tuple[float, float, float]]:
    """Per step ``(c_x, c_0, c_z)``: ``x_t = c_x x_s + c_0 D + c_z z`` in float64, from
    ``alpha_t sigma~_up = sigma_t u`` and ``alpha_t sigma~_down = sigma_t sqrt(1 - u^2)`` with
    ``u = min(1, eta sqrt(1 - exp(-2h)))``."""
    lam, alpha, sigma = path.lam(ts), path.alpha(ts), path.sigma(ts)
    u = torch.clamp(eta * torch.sqrt(-torch.expm1(-2.0 * (lam[1:] - lam[:-1]))), max=1.0)
    c_x = sigma[1:] * torch.sqrt(1.0 - u * u) / sigma[:-1]
    c_0 = alpha[1:] - c_x * alpha[:-1]
    c_z = sigma[1:] * u * s_noise
    return list(zip(c_x.tolist(), c_0.tolist(), c_z.tolist()))


@register("euler-ancestral")
@dataclass(frozen=True)
class EulerAncestral(Solver):
    """Euler ancestral sampling in ``sigma~``: an Euler step to ``sigma~_down``, then fresh
    noise of level ``sigma~_up``. ``eta = 1`` (default) as in k-diffusion and diffusers."""

    eta: float = 1.0
    s_noise: float = 1.0

    def __post_init__(self) -> None:
        for name in ("eta", "s_noise"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise InterpolantError(f"{name} must be a finite number >= 0, got {value}")

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.eta > 0.0 and self.s_noise > 0.0

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        table = ancestral_table(path, ts, self.eta, self.s_noise)
        return first_order_steps(table, model, x, ts.tolist(), noise)

    def paper_run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        """k-diffusion's ``sample_euler_ancestral`` in the scaled state (the formulas above);
        from pure noise, where ``x~`` is infinite, the same step written unscaled."""
        pts = points(path, ts)
        for i, (s, t) in enumerate(zip(pts[:-1], pts[1:])):
            x0 = model(x, s.t, "x0")
            u = min(1.0, self.eta * math.sqrt(-math.expm1(-2.0 * (t.lam - s.lam))))
            if is_pure_noise(s):
                eps = (x - s.alpha * x0) / s.sigma
                x = t.alpha * x0 + t.sigma * math.sqrt(1.0 - u * u) * eps
            else:
                sig_s, sig_t = s.sigma / s.alpha, t.sigma / t.alpha
                sig_up = u * sig_t
                sig_down = math.sqrt(sig_t**2 - sig_up**2)
                d = (x / s.alpha - x0) / sig_s
                x = t.alpha * (x / s.alpha + (sig_down - sig_s) * d)
            if u * t.sigma * self.s_noise > 0.0:
                x = x + t.sigma * u * self.s_noise * noise.like(x)
            yield State(i + 1, t.t, x, x0, model.nfe)


Diffusion = float | Callable[[float], float]


def natural_diffusion(path: GaussianPath, t: float) -> float:
    """``g_nat(t)^2 = 2 sigma^2 |d lam/dt| = 2 sigma sigma' - 2 sigma^2 alpha' / alpha``,
    the ``g^2`` of the forward SDE of ``path`` (``inf`` where ``alpha = 0``)."""
    a, s, da, ds = path.scalars(t)
    if a == 0.0:
        return math.inf  # rectified flow at t = 1
    return 2.0 * s * ds - 2.0 * s * s * da / a


def diffusion_g2(path: GaussianPath, diffusion: Diffusion, s: float) -> float:
    """``g(s)^2``: ``diffusion(s)`` for a callable, else ``diffusion * g_nat(s)^2`` (0 at pure
    noise)."""
    if callable(diffusion):
        g2 = float(diffusion(s))
        if not (g2 >= 0.0 and math.isfinite(g2)):
            raise InterpolantError(
                f"the diffusion callable must return g(t)^2 >= 0 and finite, got {g2} at t={s}"
            )
        return g2
    noisy = diffusion > 0.0 and not is_pure_noise(point(path, s))
    return diffusion * natural_diffusion(path, s) if noisy else 0.0


def maruyama_table(
    path: GaussianPath, ts: Tensor, diffusion: Diffusion
) -> list[tuple[float, float, float]]:
    """Per step ``(c_x, c_0, c_z)``: ``x_{i+1} = c_x x + c_0 D + c_z z`` where, with
    ``eps = (x - alpha D) / sigma`` and ``k = sigma' + g^2 / (2 sigma)``,
    ``x_{i+1} = x + dt (alpha' D + k eps) + sqrt(g^2 |dt|) z``."""
    times, table = ts.tolist(), []
    for s, t in zip(times[:-1], times[1:]):
        a, sg, da, dsg = path.scalars(s)
        g2 = diffusion_g2(path, diffusion, s)
        dt, k = t - s, dsg + g2 / (2.0 * sg)
        table.append((1.0 + dt * k / sg, dt * (da - k * a / sg), math.sqrt(g2 * -dt)))
    return table


@register("euler-maruyama")
@dataclass(frozen=True)
class EulerMaruyama(Solver):
    """Euler-Maruyama on the reverse SDE with diffusion ``g^2 = diffusion * g_nat^2`` (a float,
    default 1: the DDPM-like reverse SDE; 0: the probability-flow ODE) or ``g^2 = diffusion(t)``
    (a callable). One evaluation per step."""

    diffusion: Diffusion = 1.0

    def __post_init__(self) -> None:
        d = self.diffusion
        if not callable(d) and not (
            isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d) and d >= 0
        ):
            raise InterpolantError(
                f"diffusion must be a finite number >= 0 (a multiple of the natural diffusion) "
                f"or a callable t -> g(t)^2, got {d!r}"
            )

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return callable(self.diffusion) or self.diffusion > 0

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        table = maruyama_table(path, ts, self.diffusion)
        return first_order_steps(table, model, x, ts.tolist(), noise)

    def paper_run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        """``x <- x + dt (u - g^2 score / 2) + sqrt(g^2 |dt|) z`` with ``u`` and ``score``
        from one data prediction."""
        times = ts.tolist()
        for i, (s, t) in enumerate(zip(times[:-1], times[1:])):
            a, sg, da, dsg = path.scalars(s)
            x0 = model(x, s, "x0")
            eps = (x - a * x0) / sg
            velocity, score = da * x0 + dsg * eps, -eps / sg
            g2 = diffusion_g2(path, self.diffusion, s)
            x = x + (t - s) * (velocity - 0.5 * g2 * score)
            if g2 > 0.0:
                x = x + math.sqrt(g2 * (s - t)) * noise.like(x)
            yield State(i + 1, t, x, x0, model.nfe)
