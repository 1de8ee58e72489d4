"""Inverse problems: restore ``x`` from a measurement ``y = A(x) + sigma_y n``.

Operators are immutable values (:mod:`.operators`, :mod:`.imaging`): :class:`Inpaint`,
:class:`Downsample`, :class:`Blur`, :class:`Linear`, :class:`FunctionOperator`,
:class:`Reshaped`, :func:`random_projection` (compressed sensing, :mod:`.sensing`). The
exact posterior of a Gaussian-mixture prior is
:meth:`interpolant.oracle.GaussianMixture.posterior` (:mod:`.posterior`). :func:`restore`
draws posterior samples with DPS, PiGDM or DDNM (:mod:`.guided`: guided denoisers that any
solver runs), RePaint (:mod:`.repaint`), RED-diff (:mod:`.reddiff`) or GDP (:mod:`.gdp`; its
:func:`gdp` also fits the parameters of an unknown degradation). An unknown ``sigma_y`` is
estimated by :func:`estimate_sigma_y` (maximum evidence under a Gaussian-mixture prior,
:mod:`.noise`).

>>> op = ip.inverse.Inpaint(mask)                                      # doctest: +SKIP
>>> post = gmm.posterior(op, y, sigma_y)          # exact, again a mixture  # doctest: +SKIP
>>> x = ip.inverse.restore(den, op, y, sigma_y, method="pigdm", n=16, steps=50)  # doctest: +SKIP
"""

from .gdp import gaussian_blur, gdp
from .guided import DDNM, DPS, MeasurementGuided, PiGDM
from .imaging import Blur, Downsample, Inpaint
from .noise import estimate_sigma_y, log_evidence
from .operators import FunctionOperator, Linear, Operator, Reshaped
from .posterior import mixture_moments
from .reddiff import red_diff
from .repaint import repaint
from .restore import METHODS, restore
from .sensing import Flattened, random_projection

__all__ = [
    "METHODS",
    "Blur",
    "DDNM",
    "DPS",
    "Downsample",
    "Flattened",
    "FunctionOperator",
    "Inpaint",
    "Linear",
    "MeasurementGuided",
    "Operator",
    "PiGDM",
    "Reshaped",
    "estimate_sigma_y",
    "gaussian_blur",
    "gdp",
    "log_evidence",
    "mixture_moments",
    "random_projection",
    "red_diff",
    "repaint",
    "restore",
]
