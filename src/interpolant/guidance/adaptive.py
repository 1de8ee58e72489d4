"""Adaptive Guidance: stop the unconditional pass once the two branches agree.

Castillo et al. (2023), "Adaptive Guidance: Training-free Acceleration of Conditional
Diffusion Models": late in sampling the conditional and unconditional predictions point the
same way, and the guided step differs little from the conditional one. With
``gamma_t = cos(D_c, D_u)`` (per sample, over all non-batch dimensions), the first time
``gamma_t > threshold`` for every sample of the batch, the rest of the run uses ``D_c`` alone:
one pass per step instead of two (the paper's "AG"; its regression variant LinearAG is not here).

The paper takes the cosine of the noise predictions. At high noise both are ``~ x / sigma``
whatever the class (exactly so at zero terminal SNR, where ``alpha(1) = 0``), so that cosine is
~1 at the first step and would end guidance there: on the exact class-conditional oracle
(``aniso2d`` in 4 classes, VPLinear, w = 3, batch minimum) it is 0.9999 at t = 0.95, falls
below 0 mid-way and returns to 0.99 by t = 0.09. The cosine of the data predictions stays
below 0.6 until t = 0.3 and passes 0.99 at t = 0.14, so ``space="x0"`` is the default;
``space="eps"`` is the paper's criterion.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..predictions import TARGETS
from .base import check_scale, labels_of, new_run
from .cfg import CFG, inside_interval

__all__ = ["AdaptiveCFG"]


class AdaptiveCFG(CFG):
    """CFG (options as :class:`CFG`) that drops the unconditional pass once
    ``min_batch cos(D_c, D_u) > threshold`` in the target ``space`` (Castillo et al. 2023).

    A sampling run is a sequence of calls with non-increasing ``t``; a call at a larger ``t``
    than the last one (or with another batch size) starts a new run, as does :meth:`reset`.
    This is the one piece of state in the guidance layer: one ``AdaptiveCFG`` serves one run at
    a time. ``threshold = 1`` never switches (a cosine never exceeds 1), giving plain CFG.
    ``skipped`` counts the unconditional passes saved; ``switched_at`` is the time of the
    switch in the last run (``None`` if it never switched).
    """

    method = "adaptive guidance"

    def __init__(self, den: Any, scale: float = 2.0, *, threshold: float = 0.99,
                 space: str = "x0", **cfg_options: Any) -> None:
        super().__init__(den, scale, **cfg_options)
        if space not in TARGETS:
            raise unknown_name("similarity space", space, TARGETS)
        self.space = space
        self.threshold = check_scale(threshold, "threshold")
        if not -1.0 <= self.threshold <= 1.0:
            raise InterpolantError(f"threshold is a cosine in [-1, 1], got {self.threshold}")
        self.skipped = 0
        self.reset()

    def reset(self) -> None:
        """Forget the current run: the next call evaluates both branches again."""
        self.switched_at: float | None = None
        self._last: tuple[float, int] | None = None

    def _guide(self, x: Tensor, t: Tensor | float, cond: Any, target: str) -> Tensor:
        labels = labels_of(cond, x.shape[0], self.method)
        fresh, key = new_run(self._last, t, x)
        if fresh:
            self.reset()
        self._last = key
        t_max = key[0]
        inside = inside_interval(self.interval, t)
        if self.switched_at is not None or inside is False:
            self.skipped += inside is not False
            return self._eval(self.den, x, t, cond, target)
        space = target if self.rescale == 0.0 else self.rescale_space
        c, u = self._branches(x, t, cond, labels, space)
        if self.agreement(x, t, c, u, space) > self.threshold:
            self.switched_at = t_max
        return self._finish(x, t, c, u, space, target, inside)

    def agreement(self, x: Tensor, t: Tensor | float, c: Tensor, u: Tensor,
                  space: str) -> float:
        """``min_b cos(D_c, D_u)`` over the batch in ``self.space`` (branches in ``space``)."""
        ec = self._convert(c, space, self.space, x, t).flatten(1)
        eu = self._convert(u, space, self.space, x, t).flatten(1)
        cos = (ec * eu).sum(1) / (ec.norm(dim=1) * eu.norm(dim=1))
        return float(cos.clamp(-1.0, 1.0).min())
