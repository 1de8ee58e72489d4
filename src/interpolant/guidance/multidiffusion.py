"""MultiDiffusion: a canvas larger than the model, fused from overlapping windows.

Bar-Tal et al. (2023), "MultiDiffusion: Fusing Diffusion Paths for Controlled Image
Generation": with crops ``F_i`` of the canvas to the model's native size, every step solves

    min_J  sum_i || F_i J - Phi(F_i x) ||^2,    so    J = sum_i F_i^T Phi(F_i x) / sum_i F_i^T 1,

each pixel the average of the windows covering it. Every target is ``p x + q out`` with the
same ``(p, q)`` at every pixel, so averaging the windows' predictions is averaging their
next states (exactly the paper's fused step for first-order solvers); the fusion is a
denoiser and every solver runs it. All windows go through the network in one call
(counted as one pass per window).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from .base import Guided, repeated, stacked

__all__ = ["MultiDiffusion", "window_starts"]


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Starts ``0, stride, 2 stride, ...`` of windows covering ``[0, size)``, the last flush
    with the end."""
    if window > size:
        raise InterpolantError(f"the canvas ({size}) is smaller than the window ({window})")
    if not 0 < stride <= window:
        raise InterpolantError(
            f"stride must lie in [1, window] = [1, {window}] so the windows cover the canvas, "
            f"got {stride}"
        )
    starts = list(range(0, size - window + 1, stride))
    return starts if starts[-1] == size - window else starts + [size - window]


class MultiDiffusion(Guided):
    """The fused prediction ``sum_i F_i^T D(F_i x) / sum_i F_i^T 1`` (Bar-Tal et al. 2023).

    Args:
        den: the model, trained on samples whose last ``len(window)`` dimensions are
            ``window`` (e.g. ``(8, 8)`` digits).
        window: the model's size in the last one or two dimensions.
        stride: the step between windows in those dimensions (default: half a window).
    """

    def __init__(self, den: Any, window: Sequence[int], stride: Sequence[int] | None = None):
        super().__init__(den=den)
        self.den = den
        self.window = tuple(int(w) for w in window)
        self.stride = tuple(max(1, w // 2) for w in self.window) if stride is None else tuple(
            int(s) for s in stride)
        if len(self.window) not in (1, 2) or len(self.stride) != len(self.window):
            raise InterpolantError("window and stride must both have one or two entries")

    def crops(self, shape: Sequence[int]) -> list[tuple[slice, ...]]:
        """The window slices over the last dimensions of a canvas of sample ``shape``."""
        dims = shape[len(shape) - len(self.window):]
        per_dim = [[slice(s, s + w) for s in window_starts(n, w, st)]
                   for n, w, st in zip(dims, self.window, self.stride)]
        return list(itertools.product(*per_dim))

    def _guide(self, x: Tensor, t: Tensor | float, cond: Any, target: str) -> Tensor:
        if x.ndim < len(self.window) + 1:
            raise InterpolantError(f"x must have a batch dimension and {self.window} last")
        lead = (slice(None),) * (x.ndim - len(self.window))
        crops = self.crops(x.shape[1:])
        n, b = len(crops), x.shape[0]
        windows = torch.cat([x[lead + c] for c in crops])
        out = self._eval(self.den, windows, repeated(t, n), stacked(*[cond] * n), target,
                         passes=n)
        total = torch.zeros_like(x)
        count = torch.zeros(x.shape[-len(self.window):], dtype=x.dtype, device=x.device)
        for k, c in enumerate(crops):
            total[lead + c] += out[k * b:(k + 1) * b]
            count[c] += 1
        return total / count
