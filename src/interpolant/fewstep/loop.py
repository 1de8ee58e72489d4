"""What every few-step method shares: the student's shape check, a per-grid-index dispatch,
and the draw of ``x_t`` from data (the optimisation loop is :func:`interpolant.training.fit`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..training.fit import fit
from ..paths import GaussianPath, broadcast_time

__all__ = ["fit", "by_index", "noisy", "check_data", "check_student"]


def check_data(data: Any, name: str = "data") -> Tensor:
    """``data`` as a floating tensor with a batch dimension and at least one sample."""
    if not isinstance(data, Tensor) or data.ndim < 2 or not data.is_floating_point() \
            or data.shape[0] < 1:
        got = tuple(data.shape) if isinstance(data, Tensor) else type(data).__name__
        raise InterpolantError(f"{name} must be a floating tensor (n, ...) of training samples, "
                               f"got {got}")
    return data


def check_student(student: Any, example: Tensor, cond: Any = None) -> nn.Module:
    """Refuse a student that is not a module or does not map data-shaped input to data shape."""
    if not isinstance(student, nn.Module):
        raise InterpolantError(f"the student must be a torch.nn.Module called as "
                               f"model(x, t, cond), got {type(student).__name__}")
    t = torch.full((example.shape[0],), 0.5, dtype=example.dtype, device=example.device)
    with torch.no_grad():
        try:
            out = student(example, t, cond) if cond is not None else student(example, t)
        except (RuntimeError, TypeError, InterpolantError) as err:
            raise InterpolantError(f"the student network cannot take data of shape "
                                   f"{tuple(example.shape[1:])}: {err}") from None
    if not isinstance(out, Tensor) or out.shape != example.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise InterpolantError(f"the student returned {got} for data {tuple(example.shape)}; "
                               "choose a network whose output has the data's shape")
    return student


def by_index(idx: Tensor, x: Tensor, fn: Callable[[int, Tensor], Tensor]) -> Tensor:
    """``out[m] = fn(i, x[m])`` for each grid index ``i`` present in ``idx`` (``m`` its rows):
    a solver step takes one time pair per call."""
    out = torch.empty_like(x)
    for i in torch.unique(idx).tolist():
        rows = idx == i
        out[rows] = fn(int(i), x[rows])
    return out


def noisy(path: GaussianPath, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """``alpha(t) x0 + sigma(t) noise`` with one time per sample."""
    a = broadcast_time(path.alpha(t.to(torch.float64)).to(x0.dtype), x0)
    s = broadcast_time(path.sigma(t.to(torch.float64)).to(x0.dtype), x0)
    return a * x0 + s * noise


def draw_batch(data: Tensor, batch_size: int, generator: torch.Generator | None
               ) -> tuple[Tensor, Tensor]:
    """``batch_size`` training samples (with replacement) and standard normal noise."""
    idx = torch.randint(0, data.shape[0], (batch_size,), generator=generator)
    x0 = data[idx]
    return x0, torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
