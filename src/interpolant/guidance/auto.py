"""Autoguidance: guide a model with a weaker version of itself.

Karras et al. (2024), "Guiding a Diffusion Model with a Bad Version of Itself":

    D_w(x, t, c) = D_weak(x, t, c) + w (D_good(x, t, c) - D_weak(x, t, c)),

the score of ``p_good^w p_weak^(1 - w)`` (same combination as CFG, with the weak model in the
place of the unconditional one: an earlier checkpoint or a smaller network of the same run
family, on the same path and with the same conditioning). Two networks: 2 NFE per call.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .base import Guided, check_scale
from .cfg import cfg_combine, check_interval, inside_interval

__all__ = ["AutoGuidance"]


class AutoGuidance(Guided):
    """``D_weak + w (D_good - D_weak)`` (Karras et al. 2024) as a denoiser.

    ``interval=(t_lo, t_hi)`` guides only there and returns ``D_good`` elsewhere, without
    evaluating the weak model (as :class:`CFG`); so does ``scale = 1``.
    """

    def __init__(self, good: Any, weak: Any, scale: float = 2.0, *,
                 interval: Any = None) -> None:
        super().__init__(good=good, weak=weak)
        self.good, self.weak = good, weak
        self.scale = check_scale(scale)
        self.interval = check_interval(interval)

    def __repr__(self) -> str:
        return f"AutoGuidance({self.good!r}, {self.weak!r}, scale={self.scale})"

    def _guide(self, x: Tensor, t: Tensor | float, cond: Any, target: str) -> Tensor:
        good = self._eval(self.good, x, t, cond, target)
        inside = inside_interval(self.interval, t)
        if inside is False or self.scale == 1.0:
            return good
        out = cfg_combine(good, self._eval(self.weak, x, t, cond, target), self.scale)
        if isinstance(inside, Tensor):
            out = out.where(inside.view(-1, *([1] * (x.ndim - 1))), good)
        return out
