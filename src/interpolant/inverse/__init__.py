"""Inverse problems: restore ``x`` from a measurement ``y = A(x) + sigma_y n``.

Operators are immutable values (:mod:`.operators`, :mod:`.imaging`); the exact posterior of
a Gaussian-mixture prior is :meth:`interpolant.oracle.GaussianMixture.posterior`.
"""

from .imaging import Blur, Downsample, Inpaint
from .operators import FunctionOperator, Linear, Operator, Reshaped
from .posterior import mixture_moments

__all__ = [
    "Blur",
    "Downsample",
    "FunctionOperator",
    "Inpaint",
    "Linear",
    "Operator",
    "Reshaped",
    "mixture_moments",
]
