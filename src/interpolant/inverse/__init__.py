"""Inverse problems: restore ``x`` from a measurement ``y = A(x) + sigma_y n``.

Operators are immutable values (:mod:`.operators`, :mod:`.imaging`): :class:`Inpaint`,
:class:`Downsample`, :class:`Blur`, :class:`Linear`, :class:`FunctionOperator`,
:class:`Reshaped`. The exact posterior of a Gaussian-mixture prior is
:meth:`interpolant.oracle.GaussianMixture.posterior` (:mod:`.posterior`). :func:`restore`
draws posterior samples with DPS, PiGDM or DDNM (:mod:`.guided`: guided denoisers that any
solver runs), RePaint (:mod:`.repaint`) or RED-diff (:mod:`.reddiff`).

>>> op = ip.inverse.Inpaint(mask)                                      # doctest: +SKIP
>>> post = gmm.posterior(op, y, sigma_y)          # exact, again a mixture  # doctest: +SKIP
>>> x = ip.inverse.restore(den, op, y, sigma_y, method="pigdm", n=16, steps=50)  # doctest: +SKIP
"""

from .guided import DDNM, DPS, MeasurementGuided, PiGDM
from .imaging import Blur, Downsample, Inpaint
from .operators import FunctionOperator, Linear, Operator, Reshaped
from .posterior import mixture_moments
from .reddiff import red_diff
from .repaint import repaint
from .restore import METHODS, restore

__all__ = [
    "METHODS",
    "Blur",
    "DDNM",
    "DPS",
    "Downsample",
    "FunctionOperator",
    "Inpaint",
    "Linear",
    "MeasurementGuided",
    "Operator",
    "PiGDM",
    "Reshaped",
    "mixture_moments",
    "red_diff",
    "repaint",
    "restore",
]
