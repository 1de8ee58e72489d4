"""SCott: stochastic consistency distillation (Liu, Xie, Ye, Deng, Chen, Tang, Fu, Lu & Zha
2024, "SCott: Accelerating Diffusion Models with Stochastic Consistency Distillation").

Consistency distillation (:mod:`.distillation`, Song et al. 2023, Algorithm 2) whose teacher
step between adjacent grid points is a multi-step *SDE* solver with a controlled noise
strength ``eta`` instead of an ODE step::

    x^_n = SDE-Solver_eta(x_{n+1}; t_{n+1} -> t_n, K substeps, fresh noise)
    L    = d(f_theta(x_{n+1}, t_{n+1}), sg f_{theta-}(x^_n, t_n))

The solver is SDE-DPM-Solver++(2M) (``dpm++2m-sde``, the default) or DDIM-eta (``ddim``:
``eta = 1`` is DDPM's posterior step), on ``K`` log-SNR-uniform substeps of the interval (the
paper's exact solver and noise schedule were not at hand: these are the library's SDE solvers).
``eta`` scales the injected noise: ``eta = 0`` is the ODE solver, and SCott is then consistency
distillation with that ODE teacher step, bit for bit. With the exact teacher every ``eta``
keeps the marginals: the reverse SDEs of one score share the marginals of the probability-flow
ODE, so as ``K`` grows ``x^_n`` has the law of ``x_{t_n}`` (a sample of the right level, no
longer on ``x_{n+1}``'s ODE trajectory). With an L2 loss the student regresses onto the
average of its stochastic targets, which pulls its one-step map toward the posterior mean: on
the 2-D oracle SCott loses to CD at one step and comes close at two (tests/fewstep/test_scott.py).
On the fewstep demo's digits teacher (interpolant distill --method scott: eta 0.1, two
substeps, 300 steps, 122 CPU s) Digits-FD at 1, 2, 4 NFE is 129, 13.9, 6.3 against CD's 21.1,
6.9, 7.3 at the same learning rate (62 CPU s): the same pattern.

The student samples with multistep consistency sampling (:func:`.consistency.consistency_sample`).
The paper's adversarial loss (a latent discriminator for 1-2 step samples) is not built here:
it has no exact check.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..predictions import Denoiser
from ..solvers import get as get_solver
from .consistency import ConsistencyModel
from .distillation import Step, consistency_distillation, teacher_step

__all__ = ["stochastic_step", "stochastic_consistency_distillation"]


def stochastic_step(teacher: Denoiser, eta: float = 0.1, substeps: int = 2,
                    solver: str = "dpm++2m-sde", generator: torch.Generator | None = None
                    ) -> Step:
    """SCott's teacher step ``step(x, t_from, t_to)``: ``substeps`` steps of the stochastic
    ``solver`` with noise strength ``eta`` in ``[0, 1]`` (module docstring), noise drawn from
    ``generator``."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
        raise InterpolantError(f"the noise strength eta must lie in [0, 1], got {eta!r}")
    try:
        get_solver(solver, eta=float(eta))
    except (InterpolantError, TypeError) as err:
        raise InterpolantError(f"SCott's teacher step needs a stochastic solver with a noise "
                               f"strength eta (dpm++2m-sde, dpm++3m-sde or ddim); "
                               f"{solver!r} cannot take one: {err}") from None
    return teacher_step(teacher, solver, substeps, generator, eta=float(eta))


def stochastic_consistency_distillation(
    teacher: Denoiser, student: nn.Module, data: Tensor, *, steps: int, eta: float = 0.1,
    substeps: int = 2, solver: str = "dpm++2m-sde", generator: torch.Generator | None = None,
    **options: Any,
) -> ConsistencyModel:
    """Distil ``teacher`` into ``ConsistencyModel(student, teacher.path)`` with SCott's
    stochastic teacher step (module docstring); ``options`` as for
    :func:`.distillation.consistency_distillation` (``n``, ``ema``, ``metric``,
    ``sigma_data``, ``batch_size``, ``lr``, ``prediction``)."""
    if not isinstance(teacher, Denoiser):
        raise InterpolantError("stochastic consistency distillation needs the teacher as an "
                               f"interpolant.Denoiser, got {type(teacher).__name__}")
    step = stochastic_step(teacher, eta, substeps, solver, generator)
    return consistency_distillation(teacher, student, data, steps=steps, generator=generator,
                                    step=step, **options)
