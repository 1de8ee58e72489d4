"""Which calls of a run to compute in full when caching: a learned cache schedule.

HarmoniCa (Huang et al. 2024) learns, for a fixed sampler, where caching may reuse features and
where it must recompute, training a router against the error the cache causes in the final
image (its "image error proxy"), not the per-step error. Here the schedule is the set of full
calls of a :class:`~interpolant.acceleration.cache.CacheSchedule` (the speed is their number),
and it is learned by search on that same objective:

    err(F) = |x_F - x_plain| / |x_plain|   (samples from the same starts, with full calls F)

starting from the uniform schedule with ``full`` full calls (``interval`` caching) and moving
one full call at a time by up to ``reach`` calls while that lowers ``err`` (``sweeps``
passes). Call 0 is always full. The result is never worse than the uniform schedule on the
search starts and is deterministic; with every call full it is the plain network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..solvers import sample, trajectory
from .compile import accelerate


@dataclass(frozen=True)
class LearnedSchedule:
    """The learned ``full_calls`` (sorted, 0 first) out of ``calls``, their ``error`` and the
    uniform schedule's ``uniform_error`` (relative errors of the final samples)."""

    full_calls: list[int]
    calls: int
    error: float
    uniform_error: float


def learn_schedule(denoiser: Any, x_start: Tensor, full: int, cache: str = "deepcache",
                   sweeps: int = 2, reach: int = 2, **sample_kwargs: Any) -> LearnedSchedule:
    """Learn the ``full`` full calls of ``cache`` (``"deepcache"``, ``"encoder"``, ``"block"``)
    for sampling from ``x_start`` with ``sample_kwargs`` (module docstring)."""
    with torch.no_grad():
        states = list(trajectory(denoiser, x_start, **sample_kwargs))
    plain, calls = states[-1].x.double(), states[-1].nfe
    if isinstance(full, bool) or not isinstance(full, int) or not 1 <= full <= calls:
        raise InterpolantError(f"full must be an integer in 1..{calls} (the calls of this "
                               f"run), got {full!r}")

    def error(full_calls: list[int]) -> float:
        cached = accelerate(denoiser, cache=cache, full_calls=full_calls)
        with torch.no_grad():
            out = sample(cached, x_start, **sample_kwargs).double()
        return float((out - plain).norm() / plain.norm().clamp_min(1e-30))

    chosen = sorted({round(k * calls / full) for k in range(full)})
    best = uniform = error(chosen)
    for _ in range(sweeps):
        moved = False
        for i in range(1, len(chosen)):
            for step in [d for r in range(1, reach + 1) for d in (-r, r)]:
                k = chosen[i] + step
                if not 0 < k < calls or k in chosen:
                    continue
                trial = sorted(chosen[:i] + [k] + chosen[i + 1:])
                err = error(trial)
                if err < best:
                    best, chosen, moved = err, trial, True
                    break
        if not moved:
            break
    return LearnedSchedule(chosen, calls, best, uniform)
