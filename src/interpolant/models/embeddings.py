"""Conditioning embeddings shared by the reference networks: time and class label.

Time. ``t`` in ``[0, 1]`` is scaled by ``TIME_SCALE = 1000`` (the range of DDPM's discrete
step index, so the frequencies below behave as in Ho et al. 2020) and embedded with the
Transformer sinusoids (Vaswani et al. 2017):

    emb(t)_i = cos(1000 t w_i),  emb(t)_{i + d/2} = sin(1000 t w_i),
    w_i = max_period^{-i / (d/2)},  i = 0 .. d/2 - 1,

then mapped by ``Linear -> SiLU -> Linear`` (as in the DDPM and ADM U-Nets and DiT).

Labels. A net with ``num_classes = K`` keeps ``K + 1`` embeddings; row ``K`` belongs to
``NULL_LABEL`` ("no label", for classifier-free guidance; Ho & Salimans 2022).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..labels import NULL_LABEL

__all__ = [
    "TIME_SCALE",
    "LabelEmbedding",
    "TimeEmbedding",
    "check_time",
    "label_index",
    "labels_from_cond",
    "sinusoidal_embedding",
]

TIME_SCALE = 1000.0


def sinusoidal_embedding(
    t: Tensor, dim: int, scale: float = TIME_SCALE, max_period: float = 10_000.0
) -> Tensor:
    """``(B,)`` times to ``(B, dim)`` features ``[cos(scale t w), sin(scale t w)]`` (see module)."""
    half = dim // 2
    exponent = torch.arange(half, dtype=t.dtype, device=t.device) / half
    freqs = torch.exp(-math.log(max_period) * exponent)
    angles = (scale * t)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


class TimeEmbedding(nn.Module):
    """``t -> Linear(SiLU(Linear(sinusoidal_embedding(t, freq_dim))))`` of width ``dim``."""

    def __init__(self, dim: int, freq_dim: int = 64) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(sinusoidal_embedding(t, self.freq_dim))


class LabelEmbedding(nn.Module):
    """Class labels in ``[0, K)`` or ``NULL_LABEL`` to vectors; ``NULL_LABEL`` uses row ``K``."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels: Tensor) -> Tensor:
        return self.table(label_index(labels, self.num_classes))


# torch.compiler.is_compiling is PyTorch >= 2.3; before it, the check always runs
_compiling = getattr(torch.compiler, "is_compiling", lambda: False)


def label_index(labels: Tensor, k: int) -> Tensor:
    """Labels in ``[0, k)`` unchanged and ``NULL_LABEL`` as ``k``; anything else raises.

    The check reads the labels' values (a host sync), so ``torch.compile`` skips it while it
    traces: the graph has no break there, and a compiled network checks its labels eagerly
    before the call instead (``interpolant.acceleration.CompiledNetwork``)."""
    valid = ((labels >= 0) & (labels < k)) | (labels == NULL_LABEL)
    if not _compiling() and not bool(valid.all()):
        bad = labels[~valid][:5].tolist()
        raise InterpolantError(
            f"labels must lie in [0, {k}) or be NULL_LABEL={NULL_LABEL}, got {bad}"
        )
    return torch.where(labels == NULL_LABEL, torch.full_like(labels, k), labels)


def check_time(t: Any, batch: int) -> Tensor:
    """``t`` must be a floating tensor of shape ``(B,)``, never a 0-d tensor or a float."""
    if not isinstance(t, Tensor) or t.shape != (batch,) or not t.is_floating_point():
        got = f"shape {tuple(t.shape)}, {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
        raise InterpolantError(
            f"t must be a floating tensor of shape (B,) = ({batch},), one time per sample; "
            f"got {got}"
        )
    return t


def labels_from_cond(cond: Any, batch: int, num_classes: int | None) -> Tensor | None:
    """The class labels carried by ``cond``: an int64 ``(B,)`` tensor or ``{"labels": ...}``.

    A conditional net given ``cond=None`` is run unconditionally (all ``NULL_LABEL``); an
    unconditional net given any ``cond`` raises, since it would silently ignore it.
    """
    if num_classes is None:
        if cond is not None:
            raise InterpolantError(
                "this network is unconditional (num_classes=None) but cond was given; "
                "build it with num_classes=K to condition on labels"
            )
        return None
    if cond is None:
        return torch.full((batch,), NULL_LABEL, dtype=torch.int64)
    labels = cond.get("labels") if isinstance(cond, Mapping) else cond
    if (
        not isinstance(labels, Tensor)
        or labels.shape != (batch,)
        or labels.dtype not in (torch.int64, torch.int32)
    ):
        got = f"shape {tuple(labels.shape)}, {labels.dtype}" if isinstance(
            labels, Tensor
        ) else type(labels).__name__
        raise InterpolantError(
            f"cond must be int64 class labels of shape ({batch},) (or {{'labels': ...}}); "
            f"got {got}"
        )
    return labels.long()
