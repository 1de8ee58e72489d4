"""The small optimisation loop of the library's own fitting routines (few-step students,
interpolant fields, bound-trained kernels, PFGM++ networks): Adam with a divergence guard.
The full trainer with EMA, checkpoints and DDP is :mod:`.trainer`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import InterpolantError

__all__ = ["fit"]


def fit(model: nn.Module, loss_fn: Callable[[int], Tensor], steps: int, lr: float,
        after_step: Callable[[int], None] | None = None, name: str = "training",
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
                "the network keeps its weights from the step before: lower lr (or check the teacher)"
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
