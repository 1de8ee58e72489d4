"""Deterministic and stochastic samplers, each a generator over states.

``available()`` lists the solver names; ``get(name, **options)`` makes one;
:func:`sample` and :func:`trajectory` run one on a denoiser.
"""

from . import (ddim, ddpm_learned, deis, dpm, dpm_adaptive, dpm_v3, dpmpp, edm, euler,  # noqa: F401
               multistep, sde, stochastic, unipc)
from .base import Model, Noise, Solver, State, available, get, register, solver_name
from .corrector import PredictorCorrector, langevin, with_corrector
from .sampling import sample, trajectory

__all__ = [
    "Model",
    "Noise",
    "PredictorCorrector",
    "Solver",
    "State",
    "available",
    "get",
    "langevin",
    "register",
    "sample",
    "solver_name",
    "trajectory",
    "with_corrector",
]
