"""RePaint: inpainting by replacing the known part and resampling (Lugmayr et al., CVPR 2022).

Every step from ``t`` to ``s`` runs the unconditional solver, then overwrites the known part
with a fresh noisy copy of the measurement,

    x_s <- (I - P) x_s + alpha_s A^+ y + sigma_s P z,      P = A^+ A,

(for inpainting ``P`` is the mask: the paper's ``m * x_known + (1 - m) * x_unknown``; for other
operators the row space of ``A`` plays the part of the known pixels). To let the unknown part
agree with the known one, after every ``jump`` steps the state is noised back up to where the
block began, ``x_t = (alpha_t / alpha_s) x_s + sqrt(sigma_t^2 - (alpha_t sigma_s / alpha_s)^2) z``
(the forward process), and the block is run again, ``resample`` times in all (their
jump length ``j`` and resampling count ``r``). ``y`` is treated as noiseless. The result is the
data prediction at the end of the grid with the known part set to ``A^+ y``.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from ..solvers import Noise, sample
from .operators import Operator, positive_int


def repaint(den: Any, op: Operator, y: Tensor, x: Tensor, ts: Tensor, generator: Any = None,
            solver: str = "ddpm", jump: int = 1, resample: int = 1, cond: Any = None) -> Tensor:
    """Run RePaint from ``x`` (noise at ``ts[0]``) down the decreasing grid ``ts``."""
    jump, resample = positive_int(jump, "jump"), positive_int(resample, "resample")
    noise, path, times = Noise(generator), den.path, ts.tolist()
    y_row = op.pinv(y.to(x)[None])  # A^+ y, broadcast over the batch

    def known(z: Tensor, t: float) -> Tensor:
        a, s = path.alpha(t), path.sigma(t)
        return z - op.project(z) + a * y_row + s * op.project(noise.like(z))

    n, i = len(times) - 1, 0
    while i < n:
        end = min(i + jump, n)
        for u in range(resample):
            for k in range(i, end):
                x = sample(den, x, solver=solver, grid=ts[k:k + 2], generator=generator, cond=cond)
                x = known(x, times[k + 1])
            if u < resample - 1:
                a_t, s_t = path.alpha(times[i]), path.sigma(times[i])
                a_s, s_s = path.alpha(times[end]), path.sigma(times[end])
                ratio = a_t / a_s
                spread = math.sqrt(max(s_t * s_t - (ratio * s_s) ** 2, 0.0))
                x = ratio * x + spread * noise.like(x)
        i = end
    x0 = den(x, times[-1], cond, "x0")
    return x0 - op.project(x0) + y_row
