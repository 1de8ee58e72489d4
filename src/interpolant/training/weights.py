"""Loss weights, stated once in x0-space and translated exactly to the trained target's space.

For a Gaussian path ``x_t = alpha x0 + sigma eps`` every target ``T`` is an affine function of
the model's x0-prediction at fixed ``(x_t, t)`` (see :mod:`interpolant.predictions`), so the
error of a prediction converts with one scalar ``|dx0/dT|``::

    ||x0_hat - x0||^2 = c_T ||T_hat - T||^2,   c_T = (dx0/dT)^2:

    c_x0 = 1,   c_eps = sigma^2 / alpha^2 = 1 / snr,   c_v = sigma^2 / (alpha^2 + sigma^2)^2,
    c_velocity = sigma^2 / (alpha sigma' - sigma alpha')^2,   c_score = sigma^4 / alpha^2.

A weight ``w_x0(t)`` stated in x0-space therefore becomes ``w_T = w_x0 c_T`` in the space of
``T``: the loss, and its minimiser, are the same whichever target the network predicts.

Weights (``snr = alpha^2 / sigma^2``, ``sigma_e = sigma / alpha`` the VE noise level):

* ``uniform``: ``w_T = 1``, the plain MSE in the target's own space (DDPM's eps-MSE; flow
  matching's velocity MSE). The only weight *not* stated in x0-space.
* ``snr``: ``w_x0 = snr``, i.e. the eps-MSE whatever the target (Ho et al. 2020).
* ``snr+1``: ``w_x0 = snr + 1``, the v-MSE of Salimans & Ho (2022) on VP paths
  (``c_v = sigma^2 = 1 / (snr + 1)`` when ``alpha^2 + sigma^2 = 1``).
* ``min-snr`` / ``min-snr-<gamma>``: ``w_x0 = min(snr, gamma)``, gamma 5 by default
  (Hang et al. 2023, "Efficient diffusion training via Min-SNR weighting"). On VP paths this
  gives their ``min(snr, gamma) / snr`` for eps and ``min(snr, gamma) / (snr + 1)`` for v.
* ``p2`` / ``p2-<gamma>``: perception-prioritised weighting (Choi et al. 2022, eq. 8),
  ``lambda'(t) = lambda(t) / (k + snr)^gamma`` on their eps-MSE (``lambda = 1`` in eps-space,
  i.e. ``w_x0 = snr``): ``w_x0 = snr / (k + snr)^gamma``, ``k = 1``, ``gamma = 1`` by default
  (their 0.5 and 1); ``gamma = 0`` is the eps-MSE. It down-weights the clean, high-SNR
  times, where only imperceptible detail is learned.
* ``edm``: ``w_x0 = (sigma_e^2 + sd^2) / (sigma_e sd)^2`` (Karras et al. 2022, eq. 8 and
  Table 1), ``sd = sigma_data`` (0.5, or the path's ``sigma_data``).
* a callable ``(alpha, sigma) -> w_x0`` on float64 ``(B,)`` tensors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..paths import GaussianPath
from ..predictions import TARGETS, hub_coefficients

__all__ = ["Weight", "UniformWeight", "SNR", "SNRPlusOne", "MinSNR", "P2", "EDMWeight",
           "conversion_factor", "available", "get", "target_weight"]

_TINY = 1e-100  # keeps alpha, sigma away from 0 in float64 (weights stay exact elsewhere)


def conversion_factor(target: str, a: Tensor, s: Tensor, da: Tensor, ds: Tensor) -> Tensor:
    """``c_T = (dx0 / dT)^2`` at fixed ``x_t``: ``||dx0||^2 = c_T ||dT||^2`` (float64).

    ``dx0 / dT`` is the coefficient ``q_x0`` of the target in the conversion table of
    :mod:`interpolant.predictions` (``x0 = p_x0 x + q_x0 T``,
    :func:`~interpolant.predictions.hub_coefficients`).
    """
    if target not in TARGETS:
        raise unknown_name("prediction target", target, TARGETS)
    (_, q_x0), _ = hub_coefficients(target, a, s, da, ds)
    return torch.ones_like(a) * q_x0**2


class Weight:
    """A loss weight; subclasses give :meth:`x0_weight` (weights in x0-space)."""

    def x0_weight(self, a: Tensor, s: Tensor) -> Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class UniformWeight(Weight):
    """``w_T = 1`` in the target's own space."""


@dataclass(frozen=True)
class SNR(Weight):
    """``w_x0 = alpha^2 / sigma^2`` (the eps-MSE)."""

    def x0_weight(self, a: Tensor, s: Tensor) -> Tensor:
        return (a / s) ** 2


@dataclass(frozen=True)
class SNRPlusOne(Weight):
    """``w_x0 = snr + 1`` (the v-MSE on variance-preserving paths)."""

    def x0_weight(self, a: Tensor, s: Tensor) -> Tensor:
        return (a / s) ** 2 + 1.0


@dataclass(frozen=True)
class MinSNR(Weight):
    """``w_x0 = min(snr, gamma)`` (Hang et al. 2023)."""

    gamma: float = 5.0

    def __post_init__(self) -> None:
        if not self.gamma > 0:
            raise InterpolantError(f"min-snr needs gamma > 0, got {self.gamma}")

    def x0_weight(self, a: Tensor, s: Tensor) -> Tensor:
        return torch.clamp((a / s) ** 2, max=self.gamma)


@dataclass(frozen=True)
class P2(Weight):
    """``w_x0 = snr / (k + snr)^gamma`` (Choi et al. 2022, P2 weighting of the eps-MSE)."""

    gamma: float = 1.0
    k: float = 1.0

    def __post_init__(self) -> None:
        if not (self.gamma >= 0 and self.k > 0):
            raise InterpolantError(f"p2 needs gamma >= 0 and k > 0, got gamma = {self.gamma}, "
                                   f"k = {self.k}")

    def x0_weight(self, a: Tensor, s: Tensor) -> Tensor:
        snr = (a / s) ** 2
        return snr / (self.k + snr) ** self.gamma


@dataclass(frozen=True)
class EDMWeight(Weight):
    """``w_x0 = (sigma_e^2 + sd^2) / (sigma_e sd)^2``, ``sigma_e = sigma / alpha`` (EDM)."""

    sigma_data: float = 0.5

    def __post_init__(self) -> None:
        if not self.sigma_data > 0:
            raise InterpolantError(f"edm weight needs sigma_data > 0, got {self.sigma_data}")

    def x0_weight(self, a: Tensor, s: Tensor) -> Tensor:
        sig = s / a
        sd2 = self.sigma_data**2
        return (sig * sig + sd2) / (sig * sig * sd2)


@dataclass(frozen=True)
class _CallableWeight(Weight):
    fn: Callable[[Tensor, Tensor], Tensor]

    def x0_weight(self, a: Tensor, s: Tensor) -> Tensor:
        w = torch.as_tensor(self.fn(a, s), dtype=torch.float64)
        if w.shape != a.shape:
            raise InterpolantError(f"a weight callable must return shape {tuple(a.shape)}, "
                                   f"got {tuple(w.shape)}")
        return w


def available() -> list[str]:
    """Names accepted by :func:`get` (``min-snr-<gamma>`` sets gamma, e.g. ``min-snr-1``)."""
    return ["edm", "min-snr", "min-snr-<gamma>", "p2", "p2-<gamma>", "snr", "snr+1", "uniform"]


def get(weight: str | Weight | Callable[[Tensor, Tensor], Tensor],
        path: GaussianPath | None = None) -> Weight:
    """A weight by name, a :class:`Weight`, or a callable ``(alpha, sigma) -> w_x0``."""
    if isinstance(weight, Weight):
        return weight
    if isinstance(weight, str):
        match = re.fullmatch(r"min-snr(?:-gamma)?(?:-([0-9.]+))?", weight)
        if match:
            return MinSNR(float(match.group(1))) if match.group(1) else MinSNR()
        match = re.fullmatch(r"p2(?:-(\d+(?:\.\d+)?))?", weight)
        if match:
            return P2(float(match.group(1))) if match.group(1) else P2()
        if weight == "edm":
            return EDMWeight(float(getattr(path, "sigma_data", 0.5)))
        simple = {"uniform": UniformWeight, "snr": SNR, "snr+1": SNRPlusOne}
        if weight in simple:
            return simple[weight]()
        raise unknown_name("loss weight", weight, available())
    if callable(weight):
        return _CallableWeight(weight)
    raise InterpolantError(f"weight must be a name or a callable, got {type(weight).__name__}")


def target_weight(weight: Weight, target: str, path: GaussianPath, t: Tensor) -> Tensor:
    """The weight ``w_T(t)`` in the space of ``target`` at times ``t`` (float64, ``(B,)``)."""
    if isinstance(weight, UniformWeight):
        if target not in TARGETS:
            raise unknown_name("prediction target", target, TARGETS)
        return torch.ones_like(t, dtype=torch.float64)
    t = t.to(torch.float64)
    a = path.alpha(t).clamp(min=_TINY)
    s = path.sigma(t).clamp(min=_TINY)
    c = conversion_factor(target, a, s, path.d_alpha(t), path.d_sigma(t))
    return weight.x0_weight(a, s) * c
