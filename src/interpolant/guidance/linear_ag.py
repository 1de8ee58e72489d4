"""LinearAG: estimate the unconditional prediction from the run's own past.

Castillo et al. (2023), "Adaptive Guidance: Training-free Acceleration of Conditional
Diffusion Models", Sec. "LinearAG": the unconditional noise prediction at evaluation ``k`` of a
run is close to an affine function of quantities the run already has,

    eps_u,k ~ a_k eps_c,k + b_k eps_c,k-1 + d_k eps_u,k-1,

with per-evaluation scalars fitted once by least squares on calibration runs of full CFG
(:meth:`LinearAG.fit`). At the evaluations listed in ``coefficients`` only the conditional pass
runs (1 NFE instead of 2); the others run both branches. The regression is in ``eps``; the
guided prediction is formed in the caller's target.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..solvers import sample
from .base import labels_of, new_run
from .cfg import CFG

__all__ = ["LinearAG"]

Coefficients = dict[int, tuple[float, float, float]]


class LinearAG(CFG):
    """CFG whose unconditional pass is replaced, at the evaluations ``k`` of ``coefficients``,
    by ``a_k eps_c,k + b_k eps_c,k-1 + d_k eps_u,k-1`` (Castillo et al. 2023).

    Evaluations are counted from the start of each run (a call at a larger ``t`` or another
    batch size starts one, as for :class:`AdaptiveCFG`); ``coefficients`` fitted for one solver,
    step count and grid serve only that combination. ``estimated`` counts the passes saved.
    """

    method = "LinearAG"

    def __init__(self, den: Any, scale: float = 2.0, *,
                 coefficients: Coefficients | None = None, **cfg_options: Any) -> None:
        super().__init__(den, scale, **cfg_options)
        if self.interval is not None or self.rescale != 0.0:
            raise InterpolantError("LinearAG supports neither interval= nor rescale=")
        self.coefficients = dict(coefficients or {})
        if any(k < 1 for k in self.coefficients):
            raise InterpolantError("LinearAG estimates from the previous evaluation: k >= 1")
        self.estimated = 0
        self.recorded: list[tuple[Tensor, Tensor]] = []
        self._last: tuple[float, int] | None = None

    def _guide(self, x: Tensor, t: Tensor | float, cond: Any, target: str) -> Tensor:
        labels = labels_of(cond, x.shape[0], self.method)
        fresh, self._last = new_run(self._last, t, x)
        if fresh:
            self.recorded = []
        k = len(self.recorded)
        if k in self.coefficients:
            a, b, d = self.coefficients[k]
            c_out = self._eval(self.den, x, t, cond, target)
            c = self._convert(c_out, target, "eps", x, t)
            c_prev, u_prev = self.recorded[-1]
            u = a * c + b * c_prev + d * u_prev
            u_out = self._convert(u, "eps", target, x, t)
            self.estimated += 1
        else:  # both branches in the caller's target (no division by alpha at the noise end)
            c_out, u_out = self._branches(x, t, cond, labels, target)
            c, u = (self._convert(v, target, "eps", x, t) for v in (c_out, u_out))
        self.recorded.append((c, u))
        return self._finish(x, t, c_out, u_out, target, target, True)

    @classmethod
    def fit(cls, den: Any, scale: float, x_start: Tensor, cond: Any, estimate: Iterable[int],
            solver: str = "dpm++2m", steps: int = 20, **sample_options: Any) -> LinearAG:
        """Fit ``(a_k, b_k, d_k)`` for the evaluations ``estimate`` by least squares over the
        calibration batch ``x_start`` sampled with full CFG (same solver, steps and options as
        the runs to come)."""
        probe = cls(den, scale)
        sample(probe, x_start, solver, steps, cond=cond, **sample_options)
        runs = probe.recorded
        coefficients: Coefficients = {}
        for k in sorted(set(estimate)):
            if not 1 <= k < len(runs):
                raise InterpolantError(
                    f"evaluation {k} is outside 1..{len(runs) - 1} of this solver and grid"
                )
            (c, u), (c_prev, u_prev) = runs[k], runs[k - 1]
            design = torch.stack([c.flatten(), c_prev.flatten(), u_prev.flatten()], 1)
            sol = torch.linalg.lstsq(design.double(), u.flatten().double()[:, None]).solution
            coefficients[k] = tuple(float(v) for v in sol.flatten())  # type: ignore[assignment]
        return cls(den, scale, coefficients=coefficients)
