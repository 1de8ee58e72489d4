"""Early exit for the DiT: fewer blocks where the time step allows it (after DeeDiff, Tang et
al. 2023).

DeeDiff attaches an uncertainty estimate to every layer and stops the forward pass at the first
layer whose estimated error is small enough, sending its tokens to the output head. Here the
estimate is measured, not learned: on the inputs of a plain sampling run (calibration), the
relative error of exiting after ``k`` blocks,

    e_k(t) = |head(h_k) - net(x, t)| / |net(x, t)|,

is computed for every call, and the call at time ``t`` exits at the shallowest depth with
``e_k(t) <= threshold`` (the full depth has ``e = 0``). At other times the depth of the nearest
calibrated times (the deeper of the two around ``t``) is used. The output head is the DiT's own
(final norm, modulation and linear layer), shared by every exit.

Exact checks (tests): ``threshold = 0`` keeps every block (bitwise the plain network), and on
the calibration inputs every call's error is at most ``threshold``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..network import call_network, takes_cond
from ._wrap import Wrapper, network_of, rewrap
from .cache import _shallow
from .quantize import calibration_inputs


class EarlyExitDiT(Wrapper):
    """A DiT (``blocks`` and ``run_blocks``, :class:`interpolant.models.DiT`) that runs only
    ``depths[i]`` blocks at the calibrated time ``times[i]`` (module docstring)."""

    def __init__(self, dit: nn.Module, times: list[float], depths: list[int]) -> None:
        super().__init__()
        blocks = getattr(dit, "blocks", None)
        if not isinstance(blocks, nn.ModuleList) or not hasattr(dit, "run_blocks"):
            raise InterpolantError(
                f"early exit needs a transformer with .blocks and .run_blocks "
                f"(interpolant.models.DiT); {type(dit).__name__} has none")
        if len(times) != len(depths) or not times:
            raise InterpolantError("early exit needs one depth per calibrated time")
        if not all(0 <= d <= len(blocks) for d in depths):
            raise InterpolantError(f"depths must be within 0..{len(blocks)}, got {depths}")
        order = sorted(range(len(times)), key=lambda i: times[i])
        self.times = [float(times[i]) for i in order]
        self.depths = [int(depths[i]) for i in order]
        self.net = _shallow(dit)
        self.net.run_blocks = self._run_blocks  # the clone's blocks stop at the exit

    def depth(self, t: float) -> int:
        """Blocks run at time ``t``: the deeper of the calibrated times around it."""
        above = next((i for i, s in enumerate(self.times) if s >= t), len(self.times) - 1)
        below = max(above - 1, 0) if self.times[above] > t else above
        return max(self.depths[above], self.depths[below])

    def _run_blocks(self, h: Tensor, c: Tensor, t: Tensor) -> Tensor:
        for block in self.net.blocks[: self.depth(float(t.max()))]:
            h = block(h, c)
        return h

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        return self.net(x, t, cond)


def exit_errors(dit: nn.Module, x: Tensor, t: Tensor, cond: Any = None) -> list[float]:
    """``e_k`` for ``k = 0 .. depth``: the relative error of exiting after ``k`` blocks."""
    with_cond = takes_cond(dit)
    with torch.no_grad():
        full = call_network(dit, with_cond, x, t, cond).double()
        out = []
        for k in range(len(dit.blocks) + 1):
            early = EarlyExitDiT(dit, [0.0], [k])
            out.append(float((call_network(early, with_cond, x, t, cond).double() - full).norm()
                             / full.norm().clamp_min(1e-30)))
    return out


def calibrate_exits(denoiser: Any, x_start: Tensor, threshold: float, per_call: int = 16,
                    **sample_kwargs: Any) -> Any:
    """A denoiser whose DiT exits early: for every call of a plain run from ``x_start``
    (arguments of :func:`interpolant.sample` in ``sample_kwargs``) the shallowest depth whose
    exit error on ``per_call`` of its inputs is at most ``threshold``."""
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise InterpolantError(f"threshold must be a finite number >= 0, got {threshold!r}")
    dit = network_of(denoiser)
    EarlyExitDiT(dit, [0.0], [0])  # refuses a network without blocks before any sampling
    times, depths = [], []
    for x, t, cond in calibration_inputs(denoiser, x_start, per_call, **sample_kwargs):
        errors = exit_errors(dit, x, t, cond)
        times.append(float(t.max()))
        depths.append(next(k for k, e in enumerate(errors) if e <= threshold))
    return rewrap(denoiser, EarlyExitDiT(dit, times, depths))
