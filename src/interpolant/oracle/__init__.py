"""Exact references: a Gaussian mixture and everything about it in closed form
(:mod:`.mixture`), its classes (:mod:`.classes`) and its exact probability-flow map
(:mod:`.flow`)."""

from .flow import LAM_CLAMP
from .mixture import GaussianMixture

__all__ = ["GaussianMixture", "LAM_CLAMP"]
