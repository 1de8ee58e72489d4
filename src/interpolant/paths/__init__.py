"""Forward processes: Gaussian paths ``x_t = alpha(t) x_0 + sigma(t) eps``.

Time runs from clean data at ``t = 0`` to the noise end at ``t = 1``. Every path gives
``alpha, sigma``, their time derivatives ``d_alpha, d_sigma``, the half log-SNR
``lam(t) = log(alpha / sigma)`` (decreasing in ``t``) and its inverse ``t_of_lam``.

Each method takes a Python float (and returns one) or a tensor of times (and returns a
tensor of the same shape and dtype). The maths runs in float64 either way.

``t_min`` is the default end of sampling: the smallest time at which the log-SNR is finite
and the path is numerically safe. ``t_max`` is the noise end, 1 for every path here.

References: DDPM (Ho et al. 2020), improved DDPM cosine schedule (Nichol & Dhariwal 2021),
score SDEs (Song et al. 2021), DPM-Solver's discrete-time convention (Lu et al. 2022),
EDM (Karras et al. 2022), rectified flow (Liu et al. 2022), stochastic interpolants
(Albergo & Vanden-Eijnden 2023).
"""

from __future__ import annotations

from ..errors import InterpolantError, unknown_name
from .base import GaussianPath, Time, broadcast_time, check_time
from .flows import EDM, VE, Linear, Trig
from .interpolant import Interpolant
from .discrete import _BETA_SCHEDULES, VPDiscrete
from .vp import SubVP, VPCosine, VPLinear

__all__ = [
    "GaussianPath",
    "VPLinear",
    "VPCosine",
    "SubVP",
    "VPDiscrete",
    "VE",
    "EDM",
    "Linear",
    "Trig",
    "Interpolant",
    "Time",
    "broadcast_time",
    "check_time",
    "available",
    "get",
]

_PATHS: dict[str, type[GaussianPath]] = {
    "vp-linear": VPLinear,
    "vp-cosine": VPCosine,
    "sub-vp": SubVP,
    "ve": VE,
    "edm": EDM,
    "linear": Linear,
    "trig": Trig,
}


def available() -> list[str]:
    """Names accepted by :func:`get` (``VPDiscrete`` is built from a schedule instead)."""
    return sorted(_PATHS) + [f"vp-discrete-{s}" for s in _BETA_SCHEDULES]


def get(name: str, **options: float) -> GaussianPath:
    """A path by name, e.g. ``get("vp-linear")`` or ``get("vp-discrete-scaled_linear")``."""
    if name.startswith("vp-discrete-") and name[len("vp-discrete-"):] in _BETA_SCHEDULES:
        return VPDiscrete.from_betas(name[len("vp-discrete-"):], **options)  # type: ignore[arg-type]
    if name not in _PATHS:
        raise unknown_name("path", name, available())
    try:
        return _PATHS[name](**options)
    except TypeError as exc:
        raise InterpolantError(f"path {name!r}: {exc}") from None
