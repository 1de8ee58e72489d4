"""AMDM: aggregation of several (conditional) diffusion models in one sampling run.

Yue et al. (2024), "Improving Fine-Grained Control via Aggregation of Multiple Diffusion
Models". Models ``i = 1..M`` on one path (e.g. one class-conditional network asked for
different labels) each keep their own state ``x^i`` and take their own DDIM/DDPM step; inside
the aggregation window the states are merged and pulled back to each model's manifold:

    mu^i  = c_x x^i + c_0 D_i(x^i)                      # model i's step (its DDPM mean)
    x^i   = mu^i + sigma_eta z^i
    xbar  = sum_i omega_i x^i,  sum_i omega_i^2 = 1      # spherical aggregation
    x^i  <- xbar - p_i (xbar - mu^i) / |xbar - mu^i|     # manifold optimization

Spherical weights keep the law of independent, centred states of one marginal: the sum of
independent ``N(0, S_i)`` is ``N(0, sum_i omega_i^2 S_i)``, the marginal itself when the ``S_i``
agree, where a convex average (``sum_i omega_i = 1``) shrinks it by ``sum_i omega_i^2``. The
optimization step moves ``xbar`` a distance ``p_i`` toward model ``i``'s own step, the
normalised gradient step on ``|x - mu^i|^2`` (the paper's per-model step sizes ``p``). Outside
the window every model samples alone, exactly as ``ip.sample(den_i, x^i, "ddim")``; model 0 is
the one whose sample the paper keeps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..solvers.base import Noise
from ..solvers.ddim import ddim_table
from ..solvers.sampling import Generator, make_grid
from .base import check_scale, path_of

__all__ = ["AmdmState", "amdm", "spherical_weights"]


class AmdmState(NamedTuple):
    """After ``step`` steps, at time ``t``: every model's state ``xs`` (``(M, B, ...)``), the
    aggregate ``mixed`` (``None`` outside the window) and the NFE so far."""

    step: int
    t: float
    xs: Tensor
    mixed: Tensor | None
    nfe: int


def spherical_weights(omega: Sequence[float] | float, m: int) -> Tensor:
    """``omega`` as ``M`` weights with ``sum omega_i^2 = 1``: a float ``w`` for two models
    means ``(sqrt(1 - w^2), w)`` (the paper's ``omega`` on the second model)."""
    if isinstance(omega, (int, float)):
        w = check_scale(omega, "omega")
        if m != 2 or not 0.0 <= w <= 1.0:
            raise InterpolantError("a single omega in [0, 1] needs exactly two models")
        return torch.tensor([math.sqrt(1.0 - w * w), w], dtype=torch.float64)
    out = torch.as_tensor(omega, dtype=torch.float64)
    if out.shape != (m,) or not bool(out.isfinite().all()) or abs(float(out @ out) - 1) > 1e-9:
        raise InterpolantError(f"omega must be {m} numbers with squares summing to 1")
    return out


def amdm(
    dens: Sequence[Any],
    x_starts: Tensor,
    steps: int = 50,
    omega: Sequence[float] | float = 0.5,
    p: Sequence[float] | float = 0.0,
    window: tuple[float, float] = (1.0, 0.0),
    conds: Sequence[Any] | None = None,
    eta: float = 0.0,
    grid: str | Tensor | None = None,
    t_start: float = 1.0,
    t_end: float | None = None,
    generator: Generator = None,
) -> Iterator[AmdmState]:
    """Yield the state of every model after each step (module formulas). ``x_starts``:
    ``(M, B, ...)`` independent starting states; ``conds``: one ``cond`` per model;
    ``window = (t_hi, t_lo)``: steps that start at ``t_lo <= t <= t_hi`` aggregate."""
    dens = tuple(dens)
    m = len(dens)
    if m < 2:
        raise InterpolantError("amdm aggregates at least two denoisers")
    paths = [path_of(den, f"model {i}") for i, den in enumerate(dens)]
    if any(q != paths[0] for q in paths[1:]):
        raise InterpolantError("the models of amdm must share one path")
    if x_starts.shape[0] != m:
        raise InterpolantError(
            f"x_starts must stack one starting state per model: shape ({m}, B, ...), got "
            f"{tuple(x_starts.shape)}")
    weights = spherical_weights(omega, m).to(x_starts.dtype)
    sizes = torch.as_tensor([p] * m if isinstance(p, (int, float)) else p, dtype=torch.float64)
    if sizes.shape != (m,) or not bool((sizes >= 0).all() & sizes.isfinite().all()):
        raise InterpolantError(f"p must be one or {m} finite step sizes >= 0")
    conds = [None] * m if conds is None else list(conds)
    if len(conds) != m:
        raise InterpolantError(f"conds must give one cond per model ({m}), got {len(conds)}")
    ts = make_grid(grid, paths[0], steps, t_start, t_end)
    table, times, noise = ddim_table(paths[0], ts, eta), ts.tolist(), Noise(generator)
    xs, nfe = x_starts.clone(), 0
    for i, (c_x, c_0, c_z) in enumerate(table):
        t = torch.full((x_starts.shape[1],), times[i], dtype=xs.dtype, device=xs.device)
        mus = torch.stack([torch.mul(x, c_x).add_(den(x, t, c, "x0"), alpha=c_0)
                           for den, x, c in zip(dens, xs, conds)])
        nfe += m
        xs = mus + c_z * torch.stack([noise.like(mu) for mu in mus]) if c_z > 0 else mus
        mixed = None
        if window[1] <= times[i] <= window[0]:
            mixed = torch.einsum("m,mb...->b...", weights, xs)
            away = mixed.unsqueeze(0) - mus
            norm = away.flatten(2).norm(dim=2).clamp_min(1e-30)
            step = (sizes.to(xs.dtype)[:, None] / norm).view(*norm.shape, *[1] * (xs.ndim - 2))
            xs = mixed.unsqueeze(0) - step * away
        yield AmdmState(i + 1, times[i + 1], xs, mixed, nfe)
