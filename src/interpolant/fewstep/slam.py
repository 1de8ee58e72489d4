"""SLAM: Sub-path Linear Approximation Model (Xu, Song, Feng, Li, Ge, Zheng & Wang 2024,
"Accelerating Image Generation with Sub-Path Linear Approximation Model", ECCV).

Consistency distillation (:mod:`.distillation`) cuts the teacher's probability-flow trajectory
at the grid points into sub-paths ``[t_n, t_{n+1}]`` and only asks the student at the sub-path's
noisy end. SLAM also asks it *inside* the sub-path, on the sub-path linear (SL) ODE between the
two ends ``x_{n+1}`` and the teacher's ``x^_n`` (the paper's eq. for ``x_{gamma,t}``)::

    x_{gamma,t} = (1 - gamma) (alpha_t / alpha_s) x^_s + gamma x_t,    gamma ~ U[0, 1]

(``t = t_{n+1}``, ``s = t_n``), with the same target at the clean end (our reading of the
paper's loss; only its summary was at hand, not its full text)::

    L = d(f_theta(x_gamma, t_gamma), sg f_{theta-}(x^_n, t_n))

``gamma = 1`` is the CD loss, ``gamma -> 0`` a vanishing one: the error is estimated
progressively along the sub-path. In ``y = x / alpha`` the SL point is the linear interpolation
``y_gamma = (1 - gamma) y_s + gamma y_t``; along a DDIM-straight piece ``y = x0^ + s~ eps`` (``s~ =
sigma / alpha``) it is the trajectory's point at ``s~_gamma = (1 - gamma) s~_s + gamma s~_t``, so
we hand the student ``x_gamma = alpha(t_gamma) y_gamma`` at the time ``t_gamma`` of that noise
level (the paper instead feeds ``gamma`` to the network as an extra input; here ``gamma`` enters
through the noise level, so any ``model(x, t)`` serves and sampling is plain multistep
consistency sampling). Consequences, checked on the exact oracle: where the exact trajectory is
straight in ``y`` the SL point lies on it and the SLAM target is the CD target (``f*(x_gamma,
t_gamma) = f*(x^_n, t_n)``); on a curved one (a Gaussian of variances ``lam_i``, where ``y - mu =
A_i(s~) u_i`` with ``A_i = sqrt(lam_i + s~^2)``) they differ by exactly::

    f*(x_gamma) - f*(x^_n) = alpha_min A_i(s~_min) u_i (((1 - gamma) A_i(s~_s) + gamma A_i(s~_t))
                                                       / A_i(s~_gamma) - 1)   per eigen-axis

the bias the linear approximation adds to the fixed point; it shrinks with the sub-path. On the
2-D oracle SLAM ties CD (tests/fewstep/test_slam.py); on the fewstep demo's digits teacher
(interpolant distill --method slam, 300 steps) Digits-FD at 1, 2, 4 NFE is 152, 12.9, 5.9
against CD's 21.1, 6.9, 7.3 at the same learning rate: the best at 4 NFE, useless at 1, where
the long high-noise sub-paths carry the largest bias (keeping gamma = 1 on the top sub-path
did not help: 164 at 1 NFE; half the rows at gamma = 1 gave 59).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..paths import GaussianPath, broadcast_time
from ..predictions import Denoiser
from .consistency import ConsistencyModel, noise_ratio
from .distillation import consistency_distillation

__all__ = ["sl_point", "subpath_distillation"]


def sl_point(path: GaussianPath, x_next: Tensor, t_next: Tensor, x_prev: Tensor,
             t_prev: Tensor, gamma: Tensor) -> tuple[Tensor, Tensor]:
    """``(x_gamma, t_gamma)``: the SL-ODE point between ``(x_prev, t_prev)`` (clean end) and
    ``(x_next, t_next)`` at ``gamma`` (all ``(B,)`` times), at its own noise level (module
    docstring); coefficients in float64, finite where ``alpha(t_next) = 0``. ``gamma = 1``
    returns ``(x_next, t_next)`` exactly."""
    if gamma.shape != t_next.shape or bool(((gamma < 0) | (gamma > 1)).any()):
        raise InterpolantError(f"gamma must be {tuple(t_next.shape)} numbers in [0, 1]")
    g = gamma.to(torch.float64)
    t1, t0 = t_next.to(torch.float64), t_prev.to(torch.float64)
    s1, s0 = noise_ratio(path, t1), noise_ratio(path, t0)
    s_g = (1.0 - g) * s0 + g * s1
    t_g = path.t_of_lam(-torch.log(s_g))
    a_g, sig_g = path.alpha(t_g), path.sigma(t_g)
    # alpha_g y_gamma with y = x / alpha; alpha_g / alpha_1 = sigma_g s1 / (s_g sigma_1)
    c_prev = (1.0 - g) * a_g / path.alpha(t0)
    c_next = g * sig_g * s1 / (s_g * path.sigma(t1))
    x_g = broadcast_time(c_prev.to(x_prev.dtype), x_prev) * x_prev \
        + broadcast_time(c_next.to(x_next.dtype), x_next) * x_next
    end = broadcast_time(g == 1.0, x_next)
    return torch.where(end, x_next, x_g), torch.where(g == 1.0, t1, t_g).to(t_next.dtype)


def subpath_distillation(
    teacher: Denoiser, student: nn.Module, data: Tensor, *, steps: int,
    generator: torch.Generator | None = None, **options: Any,
) -> ConsistencyModel:
    """Distil ``teacher`` into ``ConsistencyModel(student, teacher.path)`` by SLAM (module
    docstring): consistency distillation whose student input is the SL point at ``gamma ~
    U[0, 1]``; ``options`` as for :func:`.distillation.consistency_distillation` (``n`` sets
    the sub-paths, ``solver`` and ``substeps`` the teacher's step over each)."""
    if not isinstance(teacher, Denoiser):
        raise InterpolantError("sub-path linear approximation distillation needs the teacher "
                               f"as an interpolant.Denoiser, got {type(teacher).__name__}")
    path = teacher.path

    def point(x_next: Tensor, t_next: Tensor, x_prev: Tensor, t_prev: Tensor
              ) -> tuple[Tensor, Tensor]:
        gamma = torch.rand(t_next.shape, generator=generator, dtype=torch.float64)
        return sl_point(path, x_next, t_next, x_prev, t_prev, gamma)

    return consistency_distillation(teacher, student, data, steps=steps, generator=generator,
                                    point=point, **options)
