"""Noise search with a verifier: random search, zero-order search, search over paths.

Ma et al. (2025), "Inference-Time Scaling for Diffusion Models beyond Scaling Denoising
Steps", sec. 3: a sampler maps a starting noise (and, if stochastic, its fresh noise) to a
sample; spend more compute by searching over those inputs for a high verifier score
``reward(x0)``.

- **Random search** (best-of-N, :func:`best_of_n`): ``N`` noises per output, keep the best.
  With a deterministic solver the selected reward is the maximum of ``N`` independent draws of
  the model's reward distribution ``F``: ``E = int r dF(r)^N``.
- **Zero-order search** (:func:`zero_order`): a pivot noise ``z``; each round draws
  ``neighbours`` candidates ``sqrt(1 - rho^2) z + rho eps`` (``rho = radius``; the candidates
  stay standard normal) and the best of pivot and candidates becomes the pivot. ``rho = 1`` is
  random search with ``1 + rounds * neighbours`` candidates.
- **Search over paths** (:func:`path_search`): ``N`` beams run a stochastic solver; at each
  checkpoint every beam branches into ``branches`` continuations (the solver's fresh noise),
  each is scored by ``reward(x0hat)`` at the next checkpoint, and the best ``N`` survive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..solvers.sampling import make_grid, sample
from .steering_base import Reuse, check_count, rewards_of, steps_for

__all__ = ["SearchResult", "best_of_n", "zero_order", "path_search"]

Reward = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class SearchResult:
    """The chosen samples ``x`` ``(n, ...)``, their rewards ``(n,)``, the chosen starting
    noises (``None`` for path search), ``history`` ``(n, rounds)`` (best-of-N: every
    candidate's reward; otherwise the best reward after each round) and ``nfe``, the network
    evaluations spent per output (all candidates together)."""

    x: Tensor
    reward: Tensor
    noise: Tensor | None
    history: Tensor
    nfe: int


def _grouped(noise: Tensor, name: str) -> tuple[int, int]:
    if not isinstance(noise, Tensor) or noise.ndim < 3 or not noise.is_floating_point():
        raise InterpolantError(
            f"{name} takes noise of shape (n, candidates, *sample_shape), got "
            + (f"{tuple(noise.shape)}" if isinstance(noise, Tensor) else type(noise).__name__)
        )
    check_count(noise.shape[0], "n")
    return noise.shape[0], check_count(noise.shape[1], "candidates")


def _score(den: Reuse, z: Tensor, reward: Reward, cond: Any, run: dict,
           spent: list[int]) -> tuple[Tensor, Tensor]:
    """Samples and rewards of a group ``(n, m, ...)`` of noises (one batch of ``n m``); adds
    the evaluations per output (batched calls times ``m``) to ``spent``."""
    n, m = z.shape[:2]
    c = cond.repeat_interleave(m, 0) if isinstance(cond, Tensor) else cond
    before = den.nfe
    x = sample(den, z.flatten(0, 1), cond=c, **run)
    spent[0] += (den.nfe - before) * m
    return x.unflatten(0, (n, m)), rewards_of(reward, x).unflatten(0, (n, m))


def _pick(x: Tensor, r: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per row the best of ``m``: ``(x_best, r_best, index)``."""
    best = r.argmax(1)
    rows = torch.arange(x.shape[0])
    return x[rows, best], r[rows, best], best


def best_of_n(den: Any, noise: Tensor, reward: Reward, *, solver: Any = "dpm++2m",
              steps: int | None = None, grid: Any = None, cond: Any = None,
              generator: torch.Generator | None = None, **solver_options: Any) -> SearchResult:
    """Random search: sample every noise of ``noise`` ``(n, N, ...)``, keep per row the one
    with the highest ``reward``. ``N * steps`` solver evaluations per output (``steps``
    defaults to 20 on a named grid, as in :func:`zero_order`; 40 in :func:`path_search`)."""
    _grouped(noise, "best_of_n")
    counted = Reuse(den)
    run = dict(solver=solver, steps=steps_for(steps, grid, 20), grid=grid, generator=generator,
               **solver_options)
    spent = [0]
    x, r = _score(counted, noise, reward, cond, run, spent)
    xb, rb, idx = _pick(x, r)
    return SearchResult(xb, rb, noise[torch.arange(noise.shape[0]), idx], r, spent[0])


def zero_order(den: Any, noise: Tensor, reward: Reward, *, neighbours: int = 4,
               radius: float = 0.5, rounds: int = 4, solver: Any = "dpm++2m",
               steps: int | None = None, grid: Any = None, cond: Any = None,
               generator: torch.Generator | None = None, **solver_options: Any) -> SearchResult:
    """Zero-order search from the pivots ``noise`` ``(n, ...)`` (module docstring):
    ``rounds`` rounds of ``neighbours`` candidates at ``radius`` in ``(0, 1]``."""
    if not isinstance(noise, Tensor) or noise.ndim < 2:
        raise InterpolantError("zero_order takes pivot noise of shape (n, *sample_shape)")
    check_count(neighbours, "neighbours")
    check_count(rounds, "rounds")
    if not 0.0 < float(radius) <= 1.0:
        raise InterpolantError(f"radius must lie in (0, 1], got {radius}")
    counted = Reuse(den)
    run = dict(solver=solver, steps=steps_for(steps, grid, 20), grid=grid, generator=generator,
               **solver_options)
    pivot, spent = noise, [0]
    x, r = _score(counted, pivot[:, None], reward, cond, run, spent)
    x, r, hist = x[:, 0], r[:, 0], [r[:, 0]]
    keep = math.sqrt(1.0 - float(radius) ** 2)
    for _ in range(rounds):
        eps = torch.randn((noise.shape[0], neighbours, *noise.shape[1:]), generator=generator,
                          dtype=noise.dtype)
        cand = keep * pivot[:, None] + float(radius) * eps
        xc, rc = _score(counted, cand, reward, cond, run, spent)
        xb, rb, idx = _pick(xc, rc)
        better = rb > r
        shape = (-1,) + (1,) * (noise.ndim - 1)
        pivot = torch.where(better.view(shape), cand[torch.arange(noise.shape[0]), idx], pivot)
        x = torch.where(better.view(shape), xb, x)
        r = torch.where(better, rb, r)
        hist.append(r)
    return SearchResult(x, r, pivot, torch.stack(hist, 1), spent[0])


def path_search(den: Any, noise: Tensor, reward: Reward, *, branches: int = 2,
                checkpoints: Sequence[float] = (0.75, 0.5, 0.25), solver: Any = "ddpm",
                steps: int | None = None, grid: Any = None, cond: Any = None,
                generator: torch.Generator | None = None, **solver_options: Any) -> SearchResult:
    """Search over paths: ``N = noise.shape[1]`` beams per output of a stochastic solver,
    branching ``branches`` ways at each checkpoint time (snapped to the grid), scored by
    ``reward(D(x_t, t))`` at the next checkpoint (one more evaluation per candidate) or by
    ``reward(x)`` at the end; the best ``N`` survive, the best one is returned."""
    n, beams = _grouped(noise, "path_search")
    check_count(branches, "branches")
    counted = Reuse(den)
    ts = make_grid(grid, den.path, steps_for(steps, grid, 40))
    cuts = sorted({int(torch.argmin((ts - float(c)).abs())) for c in checkpoints} - {0})
    cuts = [c for c in cuts if c < ts.numel() - 1] + [ts.numel() - 1]
    x, start, hist, spent = noise, 0, [], 0
    for j, stop in enumerate(cuts):
        if j > 0:
            x = x.repeat_interleave(branches, 1)
        m = x.shape[1]
        c = cond.repeat_interleave(m, 0) if isinstance(cond, Tensor) else cond
        before = counted.nfe
        flat = sample(counted, x.flatten(0, 1), solver=solver, grid=ts[start: stop + 1],
                      cond=c, generator=generator, **solver_options)
        last = stop == ts.numel() - 1
        judged = flat if last else counted(flat, float(ts[stop]), c)
        spent += (counted.nfe - before) * m
        r = rewards_of(reward, judged).unflatten(0, (n, m))
        keep = 1 if last else min(beams, m)
        top = r.topk(keep, dim=1).indices
        x = torch.stack([flat.unflatten(0, (n, m))[i, top[i]] for i in range(n)])
        r = torch.gather(r, 1, top)
        hist.append(r[:, 0])
        start = stop
    return SearchResult(x[:, 0], r[:, 0], None, torch.stack(hist, 1), spent)
