"""Stochastic interpolants between two data sets: ``x_t = a(t) x_0 + b(t) x_1 + gamma(t) z``.

The path is :class:`interpolant.paths.Interpolant`; this package has the exact oracle between
two Gaussian mixtures (:class:`TwoSidedMixture`), learned models as samplers see them
(:class:`InterpolantModel`) and their training (:func:`train`, :func:`coupled`); data-dependent
sources (:class:`Degraded`) with their exact oracle (:class:`CoupledMixture`) and trainer
objective (:class:`SourceObjective`); and MTC's learned coupling (:class:`MTCObjective`).
Sampling uses the solvers that need only the velocity (``euler``, ``heun``) and, with a score,
``sde``.
"""

from ..paths.interpolant import Interpolant
from .model import InterpolantModel
from .oracle import CoupledMixture, ExactInterpolantModel, TwoSidedMixture
from .mtc import GaussianEncoder, MTCObjective
from .sources import Degraded, GaussianSource, SourceObjective
from .training import coupled, independent, interpolate, losses, train

__all__ = ["CoupledMixture", "Degraded", "ExactInterpolantModel", "GaussianEncoder",
           "GaussianSource", "Interpolant", "InterpolantModel", "MTCObjective",
           "SourceObjective", "TwoSidedMixture", "coupled", "independent", "interpolate",
           "losses", "train"]
