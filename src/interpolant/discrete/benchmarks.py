"""Sampler quality against NFE on the exact oracle, at equal network budgets.

For each sampler and step count, ``sampler_table`` draws ``n`` sequences with the oracle's
exact denoiser and reports the total variation between their empirical law and the data law,
beside the sampling floor (the TV level that ``n`` exact draws stay below with probability
``1 - delta``: ``1/2 sum sqrt(p (1 - p) / n) + sqrt(log(1/delta) / (2n))``). With the exact
denoiser only the sampler's own error remains, so the table isolates the samplers.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import InterpolantError
from .oracle import TokenOracle
from .processes import Process
from .sampling import sample

__all__ = ["sampler_table", "tv_floor"]


def tv_floor(probs: torch.Tensor, n: int, delta: float = 1e-6) -> float:
    """TV of ``n`` exact draws' empirical law to ``probs`` stays below this w.p. ``1 - delta``."""
    mean = 0.5 * float(torch.sqrt(probs * (1 - probs) / n).sum())
    return mean + math.sqrt(math.log(1 / delta) / (2 * n))


def sampler_table(
    oracle: TokenOracle, process: Process, samplers: tuple[str, ...] = ("ancestral",),
    steps: tuple[int, ...] = (4, 16, 64), n: int = 20_000, seed: int = 0,
) -> list[dict[str, Any]]:
    """Rows ``{sampler, steps, nfe, tv, floor}``; the first-hitting sampler runs once (its NFE is
    the sequence length whatever ``steps``)."""
    if n < 1:
        raise InterpolantError(f"n must be positive, got {n}")
    k, length = oracle.num_tokens, oracle.length
    powers = k ** torch.arange(length - 1, -1, -1)
    floor = tv_floor(oracle.probs, n)
    rows = []
    for name in samplers:
        for count in (None,) if name == "first-hitting" else steps:
            g = torch.Generator().manual_seed(seed)
            out = sample(oracle.model(process), process, n, length, sampler=name, steps=count,
                         generator=g)
            law = torch.bincount((out.tokens * powers).sum(1), minlength=k**length) / n
            tv = 0.5 * float((law.to(torch.float64) - oracle.probs).abs().sum())
            rows.append({"sampler": name, "steps": count, "nfe": out.nfe, "tv": tv,
                         "floor": floor})
    return rows
