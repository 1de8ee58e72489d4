"""Guidance: transforms from denoiser(s) to a denoiser.

Every method here is called like a denoiser, ``g(x, t, cond, target)``, has ``g.path`` and
counts network evaluations in ``g.nfe`` (a batched two-branch call counts 2; see
:mod:`interpolant.guidance.base`), so every solver samples it unchanged:

>>> g = ip.guidance.CFG(den, scale=2.0)                       # doctest: +SKIP
>>> x0 = ip.sample(g, x1, cond=labels, solver="dpm++2m", steps=20)   # doctest: +SKIP

- :class:`CFG` (Ho & Salimans 2022), with ``rescale=`` (Lin et al. 2024) and ``interval=``
  (Kynkäänniemi et al. 2024); :class:`AdaptiveCFG` and :class:`LinearAG` (Castillo et al.
  2023).
- :class:`AutoGuidance` (Karras et al. 2024).
- :class:`ClassifierGuidance` (Dhariwal & Nichol 2021) with :class:`NoiseAwareClassifier`
  and :func:`train_classifier`.
- :class:`LossGuidance` (Bansal et al. 2023; FlowChef's gradient skipping as an option).
- :class:`DensityGuidance` (Karczewski et al. 2025): a prescribed log-density rate.
- :class:`MultiDiffusion` (Bar-Tal et al. 2023): canvases larger than the model;
  :class:`Anagram` (Geng et al. 2024): one sample, a different class under each view.
- :class:`SuperDiffOR` (Skreta et al. 2025): the mixture of several models, weighted by their
  log-densities from the Itô density estimator; :func:`superdiff_and`, their AND (equal
  log-densities), a sampler of its own.
- :func:`amdm` (Yue et al. 2024): several conditional models' runs merged by spherical
  aggregation and pulled back by a manifold step.
"""

from .adaptive import AdaptiveCFG
from .amdm import amdm
from .anagrams import Anagram, view_permutation
from .auto import AutoGuidance
from .base import Guided
from .cfg import CFG, cfg_combine
from .classifier import ClassifierGuidance, NoiseAwareClassifier, class_grad, train_classifier
from .density import DensityGuidance, quantile_rate
from .linear_ag import LinearAG
from .loss import LossGuidance
from .multidiffusion import MultiDiffusion
from .superdiff import SuperDiffOR
from .superdiff_and import superdiff_and

__all__ = [
    "AdaptiveCFG",
    "amdm",
    "Anagram",
    "AutoGuidance",
    "CFG",
    "ClassifierGuidance",
    "DensityGuidance",
    "Guided",
    "LinearAG",
    "LossGuidance",
    "MultiDiffusion",
    "NoiseAwareClassifier",
    "SuperDiffOR",
    "superdiff_and",
    "cfg_combine",
    "class_grad",
    "train_classifier",
    "quantile_rate",
    "view_permutation",
]

# Inference-time scaling (issue 11): exact tilted targets, particles, search, events.
from .driftlite import CONTROLS as DRIFT_CONTROLS  # noqa: E402
from .driftlite import driftlite  # noqa: E402
from .events import EventEstimate, event_probability, halfspace_probability  # noqa: E402
from .particles import Particles, ess, resample_indices, smc  # noqa: E402
from .search import SearchResult, best_of_n, path_search, zero_order  # noqa: E402
from .steer import METHODS as STEERING_METHODS  # noqa: E402
from .steer import steer  # noqa: E402
from .tilted import (LinearReward, QuadraticReward, exact_twist, tilted,  # noqa: E402
                     tilted_log_normalizer)

__all__ += [
    "DRIFT_CONTROLS", "EventEstimate", "LinearReward", "Particles", "QuadraticReward",
    "STEERING_METHODS", "SearchResult", "best_of_n", "driftlite", "ess", "event_probability",
    "exact_twist",
    "halfspace_probability", "path_search", "resample_indices", "smc", "steer", "tilted",
    "tilted_log_normalizer", "zero_order",
]
