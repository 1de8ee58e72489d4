"""Guidance scale sweeps: one guided sampler at several scales, from one starting noise.

The report's guidance page plots label accuracy against sample quality over a scale sweep
(the trade-off curve of Ho & Salimans 2022, Fig. 1; of Karras et al. 2024 for autoguidance).
:func:`guidance_sweep` produces the samples; scoring them is the caller's business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .. import guidance
from ..errors import InterpolantError, unknown_name
from ..solvers import sample

__all__ = ["METHODS", "SweepPoint", "guided", "guidance_sweep"]


def _cfg(den: Any, scale: float, **options: Any) -> Any:
    return guidance.CFG(den, scale, **options)


def _adaptive(den: Any, scale: float, **options: Any) -> Any:
    return guidance.AdaptiveCFG(den, scale, **options)


def _auto(den: Any, scale: float, *, weak: Any = None, **options: Any) -> Any:
    if weak is None:
        raise InterpolantError("autoguidance needs weak= (a weaker denoiser on the same path)")
    return guidance.AutoGuidance(den, weak, scale, **options)


def _classifier(den: Any, scale: float, *, classifier: Any = None, **options: Any) -> Any:
    if classifier is None:
        raise InterpolantError("classifier guidance needs classifier= (a noise-aware classifier)")
    return guidance.ClassifierGuidance(den, classifier, scale, **options)


METHODS: dict[str, Callable[..., Any]] = {
    "cfg": _cfg, "adaptive": _adaptive, "auto": _auto, "classifier": _classifier,
}


def guided(den: Any, method: str, scale: float, **options: Any) -> Any:
    """The guided denoiser ``method`` (a key of :data:`METHODS`) at ``scale``; ``options`` go
    to its constructor (``interval=``, ``rescale=``, ``weak=``, ``classifier=``, ...)."""
    if method not in METHODS:
        raise unknown_name("guidance method", method, METHODS)
    return METHODS[method](den, scale, **options)


class SweepPoint(NamedTuple):
    """The samples at one guidance scale and the network passes they cost (``g.nfe``)."""

    scale: float
    samples: Tensor
    nfe: int


def guidance_sweep(
    den: Any,
    labels: Tensor,
    scales: Sequence[float],
    *,
    method: str = "cfg",
    solver: str = "dpm++2m",
    steps: int = 20,
    generator: torch.Generator | None = None,
    x_start: Tensor | None = None,
    shape: Sequence[int] | None = None,
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> list[SweepPoint]:
    """Sample ``len(labels)`` points at every scale from the same starting noise.

    ``x_start`` is the noise (batch first); without it, standard normal noise of shape
    ``(len(labels), *shape)`` in ``dtype`` is drawn from ``generator``. Stochastic solvers get
    a generator seeded from ``generator`` once, reused at every scale, so the scales differ
    only by the guidance.
    """
    if x_start is None:
        if shape is None:
            raise InterpolantError("pass x_start= (the starting noise) or shape= (one sample's)")
        x_start = torch.randn((labels.shape[0], *shape), generator=generator, dtype=dtype)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    points = []
    for scale in scales:
        g = guided(den, method, scale, **options)
        noise = torch.Generator(device=x_start.device).manual_seed(seed)
        x = sample(g, x_start, solver, steps, cond=labels, generator=noise)
        points.append(SweepPoint(float(scale), x, g.nfe))
    return points
