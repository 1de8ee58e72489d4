"""What the exact-inversion and noise-map methods share: their grid (the sampling grid, run
backwards to invert), its points, and the network as a function of ``(x, t)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..labels import NULL_LABEL
from ..paths import GaussianPath
from ..solvers.exponential import Point, points
from ..solvers.sampling import _check_start, make_grid
from .ode import check_data

Predict = Callable[[Tensor, float, str], Tensor]


def sampling_points(
    denoiser: Any, x: Tensor, steps: int | None, grid: Any, t_noise: float = 1.0,
    t_data: float | None = None,
) -> list[Point]:
    """The points of the decreasing sampling grid ``t_noise = t_0 > ... > t_N = t_data``
    (default ``path.t_min``, where ``sigma > 0``), after checking the denoiser and ``x``.
    Its methods invert by walking these points backwards."""
    _check_start(denoiser, x)
    check_data(x, "x", images_in_range=False)  # a latent at the noise end is not an image
    path = denoiser.path
    if not isinstance(path, GaussianPath):
        raise InterpolantError(f"this method needs a Gaussian path, got {type(path).__name__}")
    ts = make_grid(grid, path, steps, t_noise, t_data)
    pts = points(path, ts)
    if not pts[-1].sigma > 0.0:
        raise InterpolantError(
            f"the data end of the grid must have sigma > 0 (t={pts[-1].t:.6g} has sigma = 0); "
            f"end at path.t_min = {path.t_min}"
        )
    return pts


def predictor(denoiser: Any, cond: Any) -> Predict:
    """``predict(x, t, target)``: the denoiser's ``target`` prediction at one time ``t``."""

    def predict(x: Tensor, t: float, target: str) -> Tensor:
        return denoiser(x, t, cond, target)

    return predict


def check_pair(latent: Any, name: str) -> tuple[Tensor, Tensor]:
    """A latent of two states (BDIA, EDICT), or one state used twice."""
    if isinstance(latent, Tensor):
        return latent, latent
    if (isinstance(latent, (tuple, list)) and len(latent) == 2
            and all(isinstance(v, Tensor) for v in latent) and latent[0].shape == latent[1].shape):
        return latent[0], latent[1]
    raise InterpolantError(
        f"{name} takes a tensor or the pair of equally shaped tensors its inversion returned"
    )


def num_classes(denoiser: Any) -> int | None:
    """The number of classes of the denoiser's network or exact mixture (looking through
    guidance wrappers), or ``None`` where it does not say."""
    net = getattr(denoiser, "model", None)
    for owner in (net, getattr(net, "gmm", None)):
        k = getattr(owner, "num_classes", None)
        if isinstance(k, int):
            return k
    inner = getattr(denoiser, "den", None)  # a guidance wrapper
    return num_classes(inner) if inner is not None else None


def labels_for(denoiser: Any, label: Any, batch: int) -> Tensor | None:
    """``label`` (an int, ``None``, or int64 ``(B,)``) as int64 labels of shape ``(batch,)``,
    checked against the classes the model was trained with."""
    if label is None:
        return None
    labels = torch.full((batch,), int(label)) if isinstance(label, int) else label
    if (not isinstance(labels, Tensor) or labels.shape != (batch,) or labels.is_floating_point()
            or labels.dtype == torch.bool):
        raise InterpolantError(f"a label must be an int or int64 labels of shape ({batch},)")
    labels = labels.long()
    k = num_classes(denoiser)
    if k is not None:
        bad = (labels != NULL_LABEL) & ((labels < 0) | (labels >= k))
        if bool(bad.any()):
            raise InterpolantError(
                f"label {int(labels[bad][0])} is not one the model was trained with: "
                f"classes 0..{k - 1} (NULL_LABEL = {NULL_LABEL} for none)"
            )
    return labels
