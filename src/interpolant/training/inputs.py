"""Validation of the trainer's data and labels: one clear error for each kind of bad input."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError

__all__ = ["check_data"]


def check_data(data: Any, labels: Any, num_classes: int | None) -> tuple[Tensor, Tensor | None]:
    if not isinstance(data, Tensor) or not data.is_floating_point() or data.ndim < 2:
        what = f"{data.dtype} tensor of shape {tuple(data.shape)}" if isinstance(
            data, Tensor) else type(data).__name__
        raise InterpolantError(f"data must be a floating tensor of shape (N, ...), got {what}")
    if not bool(torch.isfinite(data).all()):
        bad = int((~torch.isfinite(data)).flatten(1).any(1).nonzero()[0])
        raise InterpolantError(f"data contain non-finite values (first at sample {bad})")
    if labels is None:
        return data, None
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64 or labels.shape != (
            data.shape[0],):
        what = f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, Tensor) else type(
            labels).__name__
        raise InterpolantError(f"labels must be an int64 tensor of shape ({data.shape[0]},), "
                               f"got {what}")
    if num_classes is None:
        raise InterpolantError("class labels need num_classes (from the model's config or "
                               "the num_classes argument)")
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise InterpolantError(f"labels must lie in [0, {num_classes}); label {int(labels[i])} "
                               f"at sample {i}")
    return data, labels
