"""SDEdit: edit by noising the input part of the way and sampling back.

Meng, He, Song, Song, Wu, Zhu & Ermon, "SDEdit: Guided Image Synthesis and Editing with
Stochastic Differential Equations" (ICLR 2022), Algorithm 1: for a guide ``x`` (a stroke
painting, a real image to change) and a strength ``t0 in (0, 1]``::

    x_{t0} = alpha(t0) x + sigma(t0) eps,    eps ~ N(0, I)
    x_out  = the reverse process from x_{t0} at t0 down to t_min   (any solver)

``t0`` trades faithfulness for realism: as ``t0 -> 0`` the output returns the input (the noise
``sigma(t0) -> 0``), at ``t0 = 1`` on a path with ``alpha(1) = 0`` it ignores the input and the
output law is the model's. The paper samples the reverse SDE (``solver="ddpm"`` here); any solver
of :func:`interpolant.sample` serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..solvers.base import Noise
from ..solvers.sampling import sample
from .ode import check_data

__all__ = ["sdedit"]


def sdedit(
    denoiser: Any,
    x: Tensor,
    t0: float = 0.5,
    solver: str = "ddpm",
    steps: int | None = None,
    grid: Any = None,
    cond: Any = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    t_end: float | None = None,
    **options: Any,
) -> Tensor:
    """Noise ``x`` to ``t0`` (one draw from ``q(x_t0 | x)``) and sample back to ``t_end``
    (default ``path.t_min``) with ``solver`` on ``steps`` steps of ``[t_end, t0]``."""
    check_data(x, "x")
    path = denoiser.path
    t_end_ = path.t_min if t_end is None else float(t_end)
    if not t_end_ < float(t0) <= 1.0:
        raise InterpolantError(
            f"SDEdit's strength t0 must lie in (t_end, 1] = ({t_end_}, 1], got {t0}"
        )
    noise = Noise(generator)
    x_t0 = path.alpha(float(t0)) * x + path.sigma(float(t0)) * noise.like(x)
    return sample(denoiser, x_t0, solver=solver, steps=steps, grid=grid, t_start=float(t0),
                  t_end=t_end, generator=generator, cond=cond, **options)
