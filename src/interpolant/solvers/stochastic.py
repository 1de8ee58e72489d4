"""Stochastic samplers: Euler ancestral, Euler-Maruyama with tunable diffusion, and the
Langevin corrector that can follow any one-step predictor.

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
  (``lam < PURE_NOISE_LAM``, where ``g_nat`` is infinite or ~1e16) is taken without noise.

* Langevin correction (Song et al. 2021, "Score-Based Generative Modeling through SDEs",
  Algorithm 4): at fixed ``t``, ``x <- x + e score + sqrt(2 e) z`` with
  ``e = 2 snr^2 sigma(t)^2`` (Algorithm 4's ``2 (snr |z| / |score|)^2`` at the expected norms;
  see :func:`langevin`).
  :func:`with_corrector` wraps a predictor; ``ip.sample(..., langevin_steps=1, snr=0.16)``
  does the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, get, register, solver_name
from .ddim import first_order_steps
from .multistep import at_pure_noise


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

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        return first_order_steps(ancestral_table(path, ts, self.eta, self.s_noise), model, x, ts.tolist(), noise)


Diffusion = float | Callable[[float], float]


def natural_diffusion(path: GaussianPath, t: float) -> float:
    """``g_nat(t)^2 = 2 sigma^2 |d lam/dt| = 2 sigma sigma' - 2 sigma^2 alpha' / alpha``,
    the ``g^2`` of the forward SDE of ``path`` (``inf`` where ``alpha = 0``)."""
    a, s, da, ds = path.scalars(t)
    if a == 0.0:
        return math.inf  # rectified flow at t = 1
    return 2.0 * s * ds - 2.0 * s * s * da / a


def maruyama_table(
    path: GaussianPath, ts: Tensor, diffusion: Diffusion
) -> list[tuple[float, float, float]]:
    """Per step ``(c_x, c_0, c_z)``: ``x_{i+1} = c_x x + c_0 D + c_z z`` where, with
    ``eps = (x - alpha D) / sigma`` and ``k = sigma' + g^2 / (2 sigma)``,
    ``x_{i+1} = x + dt (alpha' D + k eps) + sqrt(g^2 |dt|) z``."""
    times, table = ts.tolist(), []
    for s, t in zip(times[:-1], times[1:]):
        a, sg, da, dsg = path.scalars(s)
        if callable(diffusion):
            g2 = float(diffusion(s))
            if not (g2 >= 0.0 and math.isfinite(g2)):
                raise InterpolantError(
                    f"the diffusion callable must return g(t)^2 >= 0 and finite, got {g2} "
                    f"at t={s}"
                )
        else:
            noisy = diffusion > 0.0 and not at_pure_noise(path, s)
            g2 = diffusion * natural_diffusion(path, s) if noisy else 0.0
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

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        return first_order_steps(maruyama_table(path, ts, self.diffusion), model, x, ts.tolist(), noise)


def langevin(
    model: Model, x: Tensor, t: float, path: GaussianPath, noise: Noise, steps: int, snr: float
) -> Tensor:
    """``steps`` Langevin corrector steps at time ``t`` (Song et al. 2021, Algorithm 4)::

        x <- x + e score(x, t) + sqrt(2 e) z,    e = 2 snr^2 sigma(t)^2

    Algorithm 4 sets ``e = 2 (snr |z| / |score|)^2`` so that drift and noise have the ratio
    ``snr``; we use the expected norms ``|z|^2 = d`` and ``|score|^2 = d / sigma^2`` (exact
    while noise dominates, an upper bound after). Per-sample norms make a sample near a mode
    (``|score| ~ 0``) jump arbitrarily far in low dimension, and the reference code's batch
    means make a sample depend on its batch. Each step costs one evaluation."""
    step = 2.0 * snr * snr * path.sigma(t) ** 2
    for _ in range(steps):
        score = model(x, t, "score")
        x = x + step * score + math.sqrt(2.0 * step) * noise.like(x)
    return x


@dataclass(frozen=True)
class PredictorCorrector(Solver):
    """A predictor step, then ``steps`` Langevin corrector steps at the new time (where
    ``sigma > 0``), Song et al. 2021 Algorithm 1. The predictor is run on the two-point grid of
    each step, so it must be a one-step method (a multistep one would lose its history);
    options of the predictor that depend on the number of steps (``edm``'s ``s_churn / N``)
    see ``N = 1``. NFE = predictor NFE + ``steps`` per step."""

    predictor: Solver
    steps: int = 1
    snr: float = 0.16

    def __post_init__(self) -> None:
        if not isinstance(self.predictor, Solver):
            raise InterpolantError("the predictor must be a solver (use with_corrector(name))")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise InterpolantError(f"langevin_steps must be an integer >= 0, got {self.steps!r}")
        if not (math.isfinite(self.snr) and self.snr > 0.0):
            raise InterpolantError(f"snr must be a finite number > 0, got {self.snr}")
        if self.predictor.min_steps > 1:
            raise InterpolantError(
                f"solver {solver_name(self.predictor)!r} is a multistep method; a Langevin "
                "corrector needs a one-step predictor such as 'euler-maruyama', 'ddpm', "
                "'ddim' or 'euler-ancestral'"
            )

    def validate(self, ts: Tensor, path: object) -> None:
        super().validate(ts, path)
        self.predictor.validate(ts[:2], path)

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        times = ts.tolist()
        for i in range(len(times) - 1):
            for state in self.predictor.run(model, x, ts[i : i + 2], path, noise):
                x = state.x
            if path.sigma(times[i + 1]) > 0.0:
                x = langevin(model, x, times[i + 1], path, noise, self.steps, self.snr)
            yield State(i + 1, times[i + 1], x, state.x0, model.nfe)


def with_corrector(
    solver: str | Solver, steps: int = 1, snr: float = 0.16, **options: object
) -> PredictorCorrector:
    """``solver`` (a name with its ``options``, or a solver value) followed by ``steps``
    Langevin corrector steps of signal-to-noise ratio ``snr`` after every step."""
    return PredictorCorrector(get(solver, **options), steps, snr)
