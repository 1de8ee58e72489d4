"""A small training loop for token models, and token data sets.

``train_tokens`` minimises one of the bounds of :mod:`.objectives` (per token, in nats) with
Adam; it is self-contained because the Gaussian trainer of :mod:`interpolant.training` is
built around continuous paths. ``digit_tokens`` turns the 8x8 digits (intensities 0..16) into
sequences of 64 tokens over ``K = 17`` values, row by row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from .objectives import loss_for
from .processes import Process, check_tokens

__all__ = ["DIGIT_LEVELS", "digit_tokens", "train_tokens"]

DIGIT_LEVELS = 17
"""The 8x8 digits' intensities take the values 0..16: one token per value."""


def digit_tokens(split: str = "train", seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(tokens, labels)``: int64 ``(N, 64)`` intensities in ``[0, 17)``, labels ``(N,)``.

    The split is :func:`interpolant.data.images.digits`'s (1500 train / 297 test);
    ``v = 8 (x + 1)`` undoes its scaling exactly.
    """
    from ..data.images import digits

    images, labels = digits(split, seed)
    tokens = torch.round((images[:, 0] + 1.0) * 8.0).long().reshape(len(images), 64)
    return tokens, labels


def train_tokens(
    model: nn.Module | Callable[..., Tensor],
    process: Process,
    tokens: Tensor,
    steps: int = 1000,
    batch_size: int = 64,
    lr: float = 1e-3,
    objective: str | None = None,
    labels: Tensor | None = None,
    label_dropout: float = 0.1,
    seed: int = 0,
    **objective_options: Any,
) -> list[float]:
    """Train ``model`` on ``tokens (N, L)`` for ``steps`` Adam steps; returns the per-step loss
    (the objective's bound per token, nats).

    ``objective`` names a loss of :mod:`.objectives` (default: the process's own). With
    ``labels (N,)`` the model is trained conditionally, each label replaced by ``NULL_LABEL``
    with probability ``label_dropout`` (so that classifier-free guidance can be used).
    """
    from ..labels import NULL_LABEL

    check_tokens(tokens, process.num_tokens, "training tokens")
    if labels is not None and (labels.shape != (len(tokens),) or labels.dtype != torch.int64):
        raise InterpolantError(f"labels must be int64 of shape ({len(tokens)},)")
    if not isinstance(steps, int) or steps < 1 or batch_size < 1:
        raise InterpolantError("steps and batch_size must be positive ints")
    loss_fn = loss_for(process, objective)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    length = tokens.shape[1]
    losses = []
    for _ in range(steps):
        index = torch.randint(len(tokens), (batch_size,), generator=generator)
        cond = None
        if labels is not None:
            drop = torch.rand(batch_size, generator=generator) < label_dropout
            cond = torch.where(drop, torch.full_like(labels[index], NULL_LABEL), labels[index])
        loss = loss_fn(model, process, tokens[index], generator, cond=cond, **objective_options)
        loss = loss.mean() / length
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses
