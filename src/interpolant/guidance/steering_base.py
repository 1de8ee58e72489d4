"""What the steering loops share (:mod:`.particles`, :mod:`.search`, :mod:`.events`): checks
of counts and rewards, and a denoiser wrapper that reuses the last data prediction."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..predictions import convert

__all__ = ["Reuse", "check_count", "rewards_of", "steps_for"]


def check_count(n: Any, name: str) -> int:
    """A positive integer, or an :class:`InterpolantError` saying so."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InterpolantError(f"{name} must be a positive integer, got {n!r}; pass e.g. {name}=16")
    return n


def rewards_of(reward: Any, x: Tensor) -> Tensor:
    """``reward(x)``, checked: callable, a finite tensor of shape ``(n,)``."""
    if not callable(reward):
        raise InterpolantError(
            f"reward must be callable as reward(x) -> (n,) scores, got {type(reward).__name__}"
        )
    r = reward(x)
    if not isinstance(r, Tensor) or r.shape != (x.shape[0],):
        got = tuple(r.shape) if isinstance(r, Tensor) else type(r).__name__
        raise InterpolantError(
            f"reward must return one score per sample, shape ({x.shape[0]},), got {got}; "
            "reduce over the other dimensions (e.g. .sum(dim=1))"
        )
    if not bool(torch.isfinite(r).all()):
        raise InterpolantError(
            "reward returned NaN or infinite scores; make it finite on every input (clamp it)"
        )
    return r


def steps_for(steps: int | None, grid: Any, default: int) -> int | None:
    """``steps``, or ``default`` where neither ``steps`` nor an explicit grid gives them."""
    if steps is None and (grid is None or isinstance(grid, str)):
        return default
    return steps


class Reuse:
    """A denoiser that remembers one data prediction: a call with the very tensor ``x`` (by
    identity), time and condition of the remembered one returns it without evaluating again.
    :meth:`prime` stores one computed elsewhere. ``nfe`` counts its own evaluations."""

    def __init__(self, den: Any) -> None:
        if not callable(den) or not hasattr(den, "path"):
            raise InterpolantError(
                f"steering needs a denoiser (with .path), got {type(den).__name__}"
            )
        self.den, self.path, self.nfe = den, den.path, 0
        self._key: tuple | None = None
        self._x: Tensor | None = None
        self._out: Tensor | None = None

    def prime(self, x: Tensor, t: float, out: Tensor, cond: Any = None) -> None:
        self._key, self._out = (id(x), t, id(cond)), out
        self._x = x  # keeps the id valid

    def __call__(self, x: Tensor, t: Any, cond: Any = None, target: str = "x0") -> Tensor:
        key = (id(x), t, id(cond)) if isinstance(t, float) else None
        if key is not None and key == self._key and x is self._x:
            out = self._out
        else:
            out = self.den(x, t, cond, "x0")
            self.nfe += 1
            if key is not None:
                self.prime(x, t, out, cond)
        assert out is not None
        return out if target == "x0" else convert(out, "x0", target, x, t, self.path)
