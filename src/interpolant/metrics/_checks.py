"""Input checks shared by the metrics: sample sets as float64 ``(n, D)`` tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import InterpolantError

ArrayLike = Tensor | np.ndarray


def as_samples(x: Any, name: str, min_n: int = 1, keep_grad: bool = False) -> Tensor:
    """``x`` as a finite float64 CPU tensor of shape ``(n, D)`` with ``n >= min_n``."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise InterpolantError(
            f"{name} must be a tensor or numpy array of shape (n, D), got {type(x).__name__}"
        )
    if x.ndim != 2:
        raise InterpolantError(
            f"{name} must have shape (n, D), got {tuple(x.shape)}; "
            "flatten images first with x.reshape(len(x), -1)"
        )
    if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64, torch.uint8)):
        raise InterpolantError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = x if keep_grad else x.detach()
    x = x.to("cpu", torch.float64)
    if x.shape[0] < min_n:
        raise InterpolantError(
            f"{name} needs at least {min_n} samples, got {x.shape[0]}; pass more samples"
        )
    if not torch.isfinite(x).all():
        raise InterpolantError(
            f"{name} contains NaN or infinite values; check the sampler that produced it"
        )
    return x


def as_pair(x: Any, y: Any, min_n: int = 1) -> tuple[Tensor, Tensor]:
    """Two sample sets with the same dimension ``D``."""
    x, y = as_samples(x, "x", min_n), as_samples(y, "y", min_n)
    if x.shape[1] != y.shape[1]:
        raise InterpolantError(
            f"x and y must have the same dimension, got x of shape {tuple(x.shape)} and y of "
            f"shape {tuple(y.shape)}"
        )
    return x, y


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InterpolantError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def pairwise_distances(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distances ``|a_i - b_j|`` ``(n, m)``, from differences (not the Gram-matrix
    shortcut, whose rounding makes ``|a_i - a_i|`` about 1e-8 instead of 0)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
