"""What every few-step method shares: the optimisation loop with its divergence guard, the
student's shape check, a per-grid-index dispatch, and the draw of ``x_t`` from data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
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


def fit(model: nn.Module, loss_fn: Callable[[int], Tensor], steps: int, lr: float,
        after_step: Callable[[int], None] | None = None, name: str = "distillation",
        clip: float | None = 1.0) -> list[float]:
    """Adam on ``loss_fn(k)`` for ``k = 0 .. steps-1``; returns the losses.

    A non-finite loss stops the run with an :class:`InterpolantError` naming the step, before
    any update from it (the weights stay those of the last finite step).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InterpolantError(f"steps must be a positive integer, got {steps!r}")
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    model.train()
    for k in range(steps):
        loss = loss_fn(k)
        if not torch.isfinite(loss):
            raise InterpolantError(
                f"{name} diverged at step {k} of {steps} (loss {float(loss.detach())}); "
                "the student keeps its weights from the step before: lower lr or check the teacher"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if after_step is not None:
            after_step(k)
        losses.append(float(loss.detach()))
    model.eval()
    return losses


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
