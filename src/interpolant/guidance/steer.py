"""One front door for inference-time steering: ``steer(den, x1, reward, method=...)``.

Every method spends ``particles`` times the compute of one sample on each output and returns
one sample per row of ``x1``:

==============  ==========================================================================
method          what ``particles`` means, and the default sampler
==============  ==========================================================================
``fk``          FK steering (Singhal et al. 2025): ``K`` particles of the DDPM kernel
                (50 steps), resampled by reward potentials; the output is one particle
                drawn by weight. ``potential=`` ``"difference"`` / ``"max"`` / ``"sum"``.
``smc``         the same loop with a user twist ``potential=callable`` and/or a
                ``proposal=`` denoiser (twisted SMC, Wu et al. 2023).
``best-of-n``   random search (Ma et al. 2025): ``N`` noises, DPM-Solver++(2M) 20 steps.
``zero-order``  zero-order search: ``particles`` neighbours per round (``rounds=``,
                ``radius=``).
``paths``       search over paths: ``particles`` beams of DDPM, ``branches=`` per checkpoint.
==============  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from .particles import smc
from .search import best_of_n, path_search, zero_order
from .steering_base import check_count

__all__ = ["steer", "METHODS"]

METHODS = ("fk", "smc", "best-of-n", "zero-order", "paths")


def _with_fresh(x1: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """``(n, k, ...)``: each row of ``x1`` followed by ``k - 1`` fresh standard normal draws."""
    fresh = torch.randn((x1.shape[0], k - 1, *x1.shape[1:]), generator=generator,
                        dtype=x1.dtype).to(x1.device)
    return torch.cat([x1[:, None], fresh], 1)


def steer(
    den: Any,
    x1: Tensor,
    reward: Callable[[Tensor], Tensor],
    method: str = "fk",
    *,
    particles: int = 8,
    scale: float = 1.0,
    solver: Any = None,
    steps: int | None = None,
    cond: Any = None,
    generator: torch.Generator | None = None,
    **options: Any,
) -> Tensor:
    """A reward-steered sample for every row of the starting noise ``x1`` ``(n, ...)``.

    ``reward(x) -> (n,)`` scores samples (higher is better). ``scale`` is the tilt ``lam`` of
    the particle methods (target ``p exp(lam r)``); the search methods maximise ``r``.
    ``options`` go to the method (:func:`smc`, :func:`best_of_n`, :func:`zero_order`,
    :func:`path_search`).
    """
    if method not in METHODS:
        raise unknown_name("steering method", method, METHODS)
    k = check_count(particles, "particles")
    if not isinstance(x1, Tensor) or x1.ndim < 2 or not x1.is_floating_point():
        raise InterpolantError("x1 must be starting noise of shape (n, *sample_shape)")
    run = dict(generator=generator, **options)  # solver and steps: each method's defaults
    if solver is not None:
        run["solver"] = solver
    if steps is not None:
        run["steps"] = steps
    if method in ("fk", "smc"):
        out = []
        for i in range(x1.shape[0]):
            c = cond[i].repeat(k) if isinstance(cond, Tensor) else cond
            pop = smc(den, _with_fresh(x1[i: i + 1], k, generator)[0], reward, scale=scale,
                      cond=c, **run)
            out.append(pop.draw(1, generator))
        return torch.cat(out)
    if method == "zero-order":
        return zero_order(den, x1, reward, neighbours=k, cond=cond, **run).x
    search = best_of_n if method == "best-of-n" else path_search
    return search(den, _with_fresh(x1, k, generator), reward, cond=cond, **run).x
