"""SuperDiff AND: sample where several models' densities are equal (Skreta et al. 2025).

"The Superposition of Diffusion Models Using the Itô Density Estimator", the logical AND.
Models ``i = 1..M`` on one path with scores ``s_i``; the reverse SDE of the forward
``dx = f x dt + g dW`` driven by ``s = sum_j kappa_j s_j`` is, by Euler-Maruyama over a step
``dt = t_b - t_a < 0`` (the ``euler-maruyama`` solver at its natural diffusion),

    x_b = x_a + dt (f x_a - g^2 sum_j kappa_j s_j) + g sqrt(|dt|) z.

Put into the Itô density estimator (:func:`.superdiff.ito_increment`) the change of every
model's log-density over the step is linear in ``kappa`` (the ``f x . s_i`` terms cancel):

    d log q^i = (-f D + g^2 / 2 |s_i|^2) dt + g sqrt(|dt|) s_i . z - g^2 dt sum_j kappa_j s_i . s_j.

AND picks ``kappa`` so that after the step all log-densities are equal (the paper's linear
equation, its Proposition 6; with an existing difference it is closed in the same step):

    log q^i + d log q^i = log q^M + d log q^M   (i < M),        sum_j kappa_j = 1,

one ``M x M`` solve per sample. For ``M = 2`` with ``d = s_1 - s_2`` and equal estimates this is
``kappa_1 = 1/2 - d . z / (g sqrt(|dt|) |d|^2)``: the weights follow the noise that is about to
be added. The sampler therefore draws the step's noise itself; it is a sampler, not a denoiser
transform (OR, which needs no noise, is :class:`.superdiff.SuperDiffOR`).

Measured on the oracle (tests/guidance/test_superdiff_and.py): the noise term of ``kappa``
cancels the step's noise along ``s_1 - s_2``, so the estimator, which assumes the full noise,
drifts from the exact log-densities by O(1) (about 2.5 nats over 40 steps) while the estimates
stay equal; the exact log-densities of the samples are equal where equality is reachable, and
the samples land on what the models share, as the paper describes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..solvers.base import Noise
from ..solvers.sampling import Generator, make_grid
from ..solvers.stochastic import natural_diffusion
from .base import path_of
from .superdiff import ito_increment

__all__ = ["AndResult", "and_weights", "superdiff_and"]


@dataclass(frozen=True)
class AndResult:
    """The samples ``x``, the Itô estimates ``log_q`` ``(B, M)`` at the last state (equal
    across models by construction), the last weights ``kappa`` ``(B, M)`` and the NFE."""

    x: Tensor
    log_q: Tensor
    kappa: Tensor
    nfe: int


def and_weights(path: Any, log_q: Tensor, scores: Tensor, z: Tensor, t_a: float,
                t_b: float) -> Tensor:
    """``kappa`` ``(B, M)`` solving the module's linear equation for the step ``t_a -> t_b``
    with noise ``z``, scores ``(M, B, ...)`` at the state and current estimates ``log_q``."""
    m = scores.shape[0]
    dt, g2 = t_b - t_a, natural_diffusion(path, t_a)
    dims = tuple(range(2, scores.ndim))
    flat = scores.flatten(2).transpose(0, 1).to(torch.float64)             # (B, M, D)
    gram = flat @ flat.transpose(1, 2)                                      # (B, M, M)
    free = (0.5 * g2 * dt * (scores * scores).sum(dims)
            + math.sqrt(g2 * -dt) * (scores * z).sum(dims)).T.to(torch.float64)  # (B, M)
    level = log_q + free             # log q^i after the step, without the kappa term
    lhs = torch.empty_like(gram)
    lhs[:, :-1] = -g2 * dt * (gram[:, :-1] - gram[:, -1:])
    lhs[:, -1] = 1.0
    rhs = torch.empty_like(level)
    rhs[:, :-1] = level[:, -1:] - level[:, :-1]
    rhs[:, -1] = 1.0
    kappa, info = torch.linalg.solve_ex(lhs, rhs.unsqueeze(-1))
    kappa = kappa.squeeze(-1)
    # equal scores leave every kappa valid: keep the average there
    return torch.where((info != 0)[:, None] | ~kappa.isfinite(), 1.0 / m, kappa)


def superdiff_and(
    dens: list[Any] | tuple[Any, ...],
    x_start: Tensor,
    steps: int = 100,
    grid: str | Tensor | None = "uniform",
    t_start: float = 1.0,
    t_end: float | None = None,
    generator: Generator = None,
    cond: Any = None,
    initial: Tensor | None = None,
) -> AndResult:
    """Sample the AND of the models ``dens`` (module formulas) by Euler-Maruyama at the
    path's natural diffusion; ``M`` NFE per step. ``initial``: ``log q^i`` at ``x_start``
    ``(B, M)`` (default zero: exact in the equations when the run starts from pure noise)."""
    dens = tuple(dens)
    if len(dens) < 2:
        raise InterpolantError("superdiff_and superposes at least two denoisers")
    paths = [path_of(den, f"model {i}") for i, den in enumerate(dens)]
    path = paths[0]
    if any(p != path for p in paths[1:]):
        raise InterpolantError("the models of superdiff_and must share one path")
    ts = make_grid(grid, path, steps, t_start, t_end).tolist()
    g_first = natural_diffusion(path, ts[0])
    if not math.isfinite(g_first):
        raise InterpolantError(
            f"the path's diffusion is infinite at t={ts[0]}; start below it, e.g. t_start=0.99"
        )
    b, m = x_start.shape[0], len(dens)
    log_q = (torch.zeros(b, m, dtype=torch.float64) if initial is None
             else torch.as_tensor(initial, dtype=torch.float64))
    if log_q.shape != (b, m):
        raise InterpolantError(f"initial must have shape ({b}, {m}), got {tuple(log_q.shape)}")
    noise, x, nfe = Noise(generator), x_start, 0
    kappa = torch.full((b, m), 1.0 / m, dtype=torch.float64)
    for t_a, t_b in zip(ts[:-1], ts[1:]):
        tv = torch.full((b,), t_a, dtype=x.dtype, device=x.device)
        scores = torch.stack([den(x, tv, cond, "score") for den in dens])
        nfe += m
        z = noise.like(x)
        kappa = and_weights(path, log_q, scores, z, t_a, t_b)
        x_b = euler_maruyama_step(path, x, torch.einsum("bm,mb...->b...", kappa.to(x.dtype),
                                                        scores), z, t_a, t_b)
        log_q = log_q + ito_increment(path, t_a, x, scores, t_b, x_b)
        x = x_b
    return AndResult(x, log_q, kappa, nfe)


def euler_maruyama_step(path: Any, x: Tensor, score: Tensor, z: Tensor, t_a: float,
                        t_b: float) -> Tensor:
    """``x + dt (f x - g^2 score) + g sqrt(|dt|) z`` at the natural diffusion ``g``."""
    a, _, da, _ = path.scalars(t_a)
    dt, g2 = t_b - t_a, natural_diffusion(path, t_a)
    return x + dt * (da / a * x - g2 * score) + math.sqrt(g2 * -dt) * z
