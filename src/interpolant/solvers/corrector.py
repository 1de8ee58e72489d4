"""The Langevin corrector, alone or after every step of a one-step predictor.

Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole, "Score-Based Generative Modeling through
Stochastic Differential Equations" (ICLR 2021), Algorithms 1 and 4: at fixed ``t``,
``x <- x + e score + sqrt(2 e) z`` with ``e = 2 snr^2 sigma(t)^2`` (see :func:`langevin`).
:func:`with_corrector` wraps a predictor; ``ip.sample(..., langevin_steps=1, snr=0.16)`` does
the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from .base import Model, Noise, Solver, State, get, solver_name


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
    each step, so it must be a one-step method: a multistep one (it would lose its history)
    or one that picks its own grid is refused. Options of the predictor that depend on the
    number of steps (``edm``'s ``s_churn / N``) see ``N = 1``.
    NFE = predictor NFE + ``steps`` per step."""

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
        if self.predictor.multistep or self.predictor.own_grid:
            why = "is a multistep method" if self.predictor.multistep else "picks its own grid"
            raise InterpolantError(
                f"solver {solver_name(self.predictor)!r} {why}; a Langevin corrector needs a "
                "one-step predictor such as 'euler-maruyama', 'ddpm', 'ddim', 'euler', 'heun' "
                "or 'euler-ancestral'"
            )

    @property
    def nfe_per_step(self) -> int:  # type: ignore[override]
        return self.predictor.nfe_per_step + self.steps

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.steps > 0 or self.predictor.stochastic

    @property
    def invertible(self) -> bool:  # type: ignore[override]
        return self.predictor.invertible

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
