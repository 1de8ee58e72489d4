"""Inverse problems: restore ``x`` from a measurement ``y = A(x) + sigma_y n``.

Operators are immutable values (:mod:`.operators`, :mod:`.imaging`); the exact posterior of
a Gaussian-mixture prior is :meth:`interpolant.oracle.GaussianMixture.posterior`;
:func:`restore` draws posterior samples with DPS, PiGDM, DDNM (:mod:`.guided`, denoiser
transforms that any solver runs) RePaint (:mod:`.repaint`) or RED-diff (:mod:`.reddiff`).
"""

from .guided import DDNM, DPS, MeasurementGuided, PiGDM
from .imaging import Blur, Downsample, Inpaint
from .operators import FunctionOperator, Linear, Operator, Reshaped
from .posterior import mixture_moments
from .reddiff import red_diff
from .repaint import repaint
from .restore import METHODS, restore

__all__ = [
    "DDNM",
    "DPS",
    "METHODS",
    "MeasurementGuided",
    "PiGDM",
    "Blur",
    "Downsample",
    "FunctionOperator",
    "Inpaint",
    "Linear",
    "Operator",
    "Reshaped",
    "mixture_moments",
    "red_diff",
    "repaint",
    "restore",
]
