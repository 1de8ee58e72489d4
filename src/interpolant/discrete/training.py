"""A small training loop for token models.

``train_tokens`` minimises one of the bounds of :mod:`.objectives` (per token, in nats) with
Adam; it is self-contained because the Gaussian trainer of :mod:`interpolant.training` is
built around continuous paths. Token data sets are in :mod:`.data`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from .objectives import loss_for
from .processes import Process, check_process, check_tokens

__all__ = ["evaluate_bound", "train_tokens"]


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
    on_step: Callable[[int, float], None] | None = None,
    **objective_options: Any,
) -> list[float]:
    """Train ``model`` on ``tokens (N, L)`` for ``steps`` Adam steps; returns the per-step loss
    (the objective's bound per token, nats). ``on_step(step, loss)`` is called after each step
    (1-based), e.g. to log or save checkpoints.

    ``objective`` names a loss of :mod:`.objectives` (default: the process's own). With
    ``labels (N,)`` the model is trained conditionally, each label replaced by ``NULL_LABEL``
    with probability ``label_dropout`` (so that classifier-free guidance can be used).
    """
    from ..labels import NULL_LABEL

    check_tokens(tokens, check_process(process).num_tokens, "training tokens")
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
        if on_step is not None:
            on_step(len(losses), losses[-1])
    return losses


def evaluate_bound(
    model: nn.Module | Callable[..., Tensor],
    process: Process,
    tokens: Tensor,
    objective: str | None = None,
    batch_size: int = 256,
    repeats: int = 4,
    seed: int = 0,
    cond: Tensor | None = None,
    **objective_options: Any,
) -> tuple[float, float]:
    """``(mean, standard error)`` of the bound per token in nats over ``tokens (N, L)``, each
    sequence with ``repeats`` independent time draws; no gradients. Divide by ``log 2``
    (:func:`~.data.bits`) for bits per character."""
    check_tokens(tokens, check_process(process).num_tokens, "tokens")
    loss_fn = loss_for(process, objective)
    generator = torch.Generator().manual_seed(seed)
    values = []
    with torch.no_grad():
        for _ in range(repeats):
            for start in range(0, len(tokens), batch_size):
                part = slice(start, start + batch_size)
                labels = None if cond is None else cond[part]
                loss = loss_fn(model, process, tokens[part], generator, cond=labels,
                               **objective_options)
                values.append(loss.to(torch.float64) / tokens.shape[1])
    per_sequence = torch.cat(values)
    return float(per_sequence.mean()), float(per_sequence.std()) / len(per_sequence) ** 0.5
