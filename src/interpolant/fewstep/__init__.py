"""Few-step generation: students that sample in one to four network evaluations.

=============  ==========================================================  =====================
method         what is learned                                            samples with
=============  ==========================================================  =====================
``"cd"``       consistency distillation from a teacher's ODE (Song 2023)  multistep consistency
``"ct"``       improved consistency training, iCT (Song & Dhariwal 2023)  multistep consistency
``"pd"``       progressive distillation, rounds of halving (Salimans-Ho)  DDIM on its grid
``"reflow"``   rectified flow on the teacher's coupling (Liu 2022; Lee    Euler, uniform grid
               2024's U-shaped times and pseudo-Huber)
``"mmd"``      MMD-DDM: the network fine-tuned through its own short      its solver and grid
               sampler by MMD to the data (Aiello et al. 2023)
``"mlcm"``     multistep consistency distillation to segment boundaries  DDIM on the boundary
               (MLCM, Xie et al. 2024; Heek et al. 2024's DDIM form)      grid, K steps
``"scott"``    CD with a multi-step SDE teacher step, noise strength      multistep consistency
               ``noise=`` (SCott, Liu et al. 2024)
``"slam"``     CD asked along the sub-path linear ODE between the ends    multistep consistency
               of each teacher step (SLAM, Xu et al. 2024)
``"dpm-ot"``   nothing: the semi-discrete OT map from noise to the data  OT map, then the
               diffused to ``t_start`` (DPM-OT, Li et al. 2023)           teacher from t_start
``"disback"``  a one-step generator ``student(z, t=1)`` by score          the generator, NFE 1
               distillation along the recorded degradation path
               (DisBack, Zhang et al. 2024); ``fake=`` for an oracle
``"ddgan"``    a generator ``G(x_t, z, t)`` of ``x0`` per large step,      ``N`` GAN steps
               adversarially, from data (no teacher; Xiao et al. 2022)    (``n_steps=``, 1-4)
``"emdm"``     the label-conditional DDGAN with x0 reconstruction         ``N`` GAN steps, cond
               (EMDM, Zhou et al. 2024; ``labels=``)
=============  ==========================================================  =====================

>>> student = distill(teacher, "cd", student=net, data=x0, steps=2000)      # doctest: +SKIP
>>> x = sample(student, torch.randn(64, 2), nfe=2)                          # doctest: +SKIP

A distillation whose loss turns non-finite stops with an :class:`InterpolantError` naming the
step; the student keeps the weights of the last finite step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError, unknown_name
from ..paths import GaussianPath
from ..predictions import Denoiser
from .consistency import (ConsistencyModel, consistency_grid, consistency_loss,
                          consistency_sample, multistep_times, pseudo_huber)
from .ddgan import GanStudent, train_ddgan
from .disback import GeneratorStudent, disback, score_distillation, sd_loss
from .distillation import cd_pairs, consistency_distillation, one_step_pairs, teacher_step
from .dpm_ot import OTStudent, SemiDiscreteOT, dpm_ot, fit_semidiscrete_ot
from .emdm import train_emdm
from .ict import consistency_training, curriculum, interval_probabilities, interval_weights
from .mmd import mmd2, mmd_finetune
from .multistep import multistep_distillation, multistep_loss, segment_grid, to_boundary
from .progressive import progressive_distillation, two_step_target
from .reflow import reflow, reflow_pairs, straightness, u_shaped
from .scott import stochastic_consistency_distillation, stochastic_step
from .slam import sl_point, subpath_distillation
from .students import ConsistencyStudent, SolverStudent

METHODS = ("cd", "ct", "pd", "reflow", "mmd", "mlcm", "scott", "slam", "dpm-ot", "disback",
           "ddgan", "emdm")

__all__ = [
    "METHODS", "distill", "sample", "ConsistencyModel", "ConsistencyStudent", "SolverStudent",
    "consistency_distillation", "consistency_training", "progressive_distillation", "reflow",
    "reflow_pairs", "straightness", "u_shaped", "pseudo_huber", "consistency_loss",
    "consistency_grid", "consistency_sample", "multistep_times", "teacher_step", "cd_pairs",
    "one_step_pairs", "curriculum", "interval_probabilities", "interval_weights",
    "two_step_target", "mmd2", "mmd_finetune", "multistep_distillation", "multistep_loss",
    "segment_grid", "to_boundary", "stochastic_step", "stochastic_consistency_distillation",
    "sl_point", "subpath_distillation", "dpm_ot", "fit_semidiscrete_ot", "SemiDiscreteOT",
    "OTStudent", "disback", "score_distillation", "sd_loss", "GeneratorStudent",
    "train_ddgan", "train_emdm", "GanStudent",
]

Student = ConsistencyStudent | SolverStudent | OTStudent | GeneratorStudent | GanStudent
GANS = ("ddgan", "emdm")  # trained from data: teacher optional (its path is used)


def distill(teacher: Denoiser | None, method: str = "cd", *,
            student: nn.Module | None = None, data: Tensor | None = None, steps: int = 1000, path: GaussianPath | None = None,
            pairs: int = 4096, pair_solver: str = "dpm++2m", pair_steps: int = 20,
            eta: float = 1.0, generator: torch.Generator | None = None,
            **options: Any) -> Student:
    """Distil (or, for ``"ct"``, train) a few-step ``student`` network.

    Args:
        teacher: the teacher :class:`interpolant.Denoiser` (for ``"ct"`` only its path is
            used, and it may be ``None`` when ``path`` is given).
        method: one of :data:`METHODS`.
        student: the network ``model(x, t, cond)``, shaped like the data; trained in place
            (for ``"mmd"`` the network to fine-tune, usually a copy of the teacher's, with
            the teacher's path and ``prediction`` unless ``prediction=`` is given; for
            ``"disback"`` the one-step generator ``student(z, t)``; ``"dpm-ot"`` has none;
            for ``"ddgan"``/``"emdm"`` the generator ``G(x_t, z, t, cond)``, default
            :class:`.gan_nets.GanGenerator`).
        data: training samples ``(n, ...)`` (``"cd"``, ``"ct"``, ``"pd"``; for ``"reflow"``
            only their shape and dtype, the pairs come from the teacher).
        steps: optimiser steps (per round for ``"pd"``).
        pairs, pair_solver, pair_steps: the reflow coupling's size and the teacher ODE solve.
        eta: the consistency students' re-noising (1: Song et al., 0: deterministic); for
            ``"scott"`` the teacher's SDE noise strength is ``noise=`` (default 0.1).
        options: the method's own keywords (see :func:`consistency_distillation`,
            :func:`consistency_training`, :func:`progressive_distillation`, :func:`reflow`,
            :func:`multistep_distillation`, :func:`dpm_ot`, :func:`disback` with
            ``batch_size``, :func:`train_ddgan` with ``n_steps``, :func:`train_emdm` with
            ``labels``).
    """
    if method not in METHODS:
        raise unknown_name("distillation method", method, METHODS)
    if teacher is not None and not isinstance(teacher, Denoiser):
        raise InterpolantError(f"the teacher must be an interpolant.Denoiser (a loaded run's "
                               f"network with its path), got {type(teacher).__name__}")
    if teacher is None and not (method == "ct" and path is not None) and method not in GANS:
        raise InterpolantError(f"method {method!r} needs a teacher denoiser (only 'ct', "
                               "given path=, and 'ddgan'/'emdm' train without one)")
    if data is None:
        raise InterpolantError("give data= (training samples, or for reflow one batch that "
                               "shows the data's shape and dtype)")
    if method in GANS:  # from data; a teacher only lends its path
        train = train_ddgan if method == "ddgan" else train_emdm
        labels = () if method == "ddgan" else (options.pop("labels", None),)
        return train(data, *labels, steps=steps, generator_net=student, generator=generator,
                     path=path or (teacher.path if teacher is not None else None), **options)
    if method == "dpm-ot":
        return dpm_ot(teacher, data, steps=steps, generator=generator, **options)
    if method == "disback":
        shape = (options.pop("batch_size", 256), *data.shape[1:])
        return disback(teacher, student, shape, steps=steps, generator=generator,
                       dtype=data.dtype, **options)
    if method == "cd":
        model = consistency_distillation(teacher, student, data, steps=steps,
                                         generator=generator, **options)
        return ConsistencyStudent(model, "cd", eta, model.losses)
    if method in ("scott", "slam"):
        if method == "scott":
            options["eta"] = options.pop("noise", 0.1)
        fn = stochastic_consistency_distillation if method == "scott" else subpath_distillation
        model = fn(teacher, student, data, steps=steps, generator=generator, **options)
        return ConsistencyStudent(model, method, eta, model.losses)
    if method == "ct":
        model = consistency_training(path or teacher.path, student, data, steps=steps,
                                     generator=generator, **options)
        return ConsistencyStudent(model, "ct", eta, model.losses)
    if method == "pd":
        return progressive_distillation(teacher, student, data, steps=steps, generator=generator,
                                        **options)
    if method == "mlcm":
        return multistep_distillation(teacher, student, data, steps=steps, generator=generator,
                                      **options)
    if method == "mmd":
        den = Denoiser(student, teacher.path, options.pop("prediction", teacher.prediction))
        return mmd_finetune(den, data, steps=steps, generator=generator, **options)
    noise = torch.randn((pairs, *data.shape[1:]), generator=generator, dtype=data.dtype)
    return reflow(reflow_pairs(teacher, noise.to(data.device), pair_solver, pair_steps),
                  student, steps=steps, generator=generator, **options)


def sample(student: Student, x1: Tensor, nfe: int = 1, generator: torch.Generator | None = None,
           cond: Any = None) -> Tensor:
    """Draw from a few-step ``student`` with ``nfe`` network evaluations from noise ``x1``."""
    if not isinstance(student, (ConsistencyStudent, SolverStudent, OTStudent,
                                GeneratorStudent, GanStudent)):
        raise InterpolantError(f"sample needs a student from interpolant.fewstep.distill, got "
                               f"{type(student).__name__}")
    return student.sample(x1, nfe, generator=generator, cond=cond)
