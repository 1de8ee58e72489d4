"""A residual MLP for low-dimensional data ``(B, D)``, conditioned on time and label.

    h_0     = W_in x
    c       = TimeEmbedding(t) [+ LabelEmbedding(y)]
    h_{l+1} = h_l + W_2 SiLU(W_1 FiLM(LN(h_l); c))       l = 0 .. depth - 1
    out     = W_out SiLU(LN(h_depth))                     W_out zero-initialised

with FiLM (Perez et al. 2018) in the ADM form ``(1 + scale(c)) * h + shift(c)`` (Dhariwal &
Nichol 2021). LayerNorm normalises each sample on its own, so outputs never mix samples.

The output layer starts at zero (common practice since ADM and DiT): the untrained net
predicts 0, a well-behaved start for any target (eps, x0, v, velocity).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..errors import InterpolantError
from .base import ReferenceNet, zero_init
from .embeddings import LabelEmbedding, TimeEmbedding

__all__ = ["MLP"]


class _ResidualBlock(nn.Module):
    def __init__(self, hidden: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.film = nn.Linear(cond_dim, 2 * hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.act = nn.SiLU()

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        scale, shift = self.film(c).chunk(2, dim=1)
        y = self.norm(h) * (1 + scale) + shift
        return h + self.fc2(self.act(self.fc1(y)))


class MLP(ReferenceNet):
    """Residual MLP ``model(x, t, cond=None)`` for ``x`` of shape ``(B, dim)``.

    Args:
        dim: data dimension ``D``.
        hidden: width of the residual stream.
        depth: number of residual blocks.
        num_classes: ``K`` for a label-conditional net (``cond`` = int64 labels ``(B,)``,
            ``NULL_LABEL`` allowed), ``None`` for an unconditional one.
        time_dim: number of sinusoidal time features (see ``embeddings``).
    """

    arch = "mlp"

    def __init__(
        self,
        dim: int,
        hidden: int = 256,
        depth: int = 4,
        num_classes: int | None = None,
        time_dim: int = 64,
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth)):
            if not isinstance(value, int) or value < 1:
                raise InterpolantError(f"MLP {name} must be a positive integer, got {value!r}")
        self._store_config(
            dim=dim, hidden=hidden, depth=depth, num_classes=num_classes, time_dim=time_dim
        )
        self.dim, self.num_classes = dim, num_classes
        self.time_embed = TimeEmbedding(hidden, freq_dim=time_dim)
        self.label_embed = None if num_classes is None else LabelEmbedding(num_classes, hidden)
        self.input = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(_ResidualBlock(hidden, hidden) for _ in range(depth))
        self.out_norm = nn.LayerNorm(hidden)
        self.output = zero_init(nn.Linear(hidden, dim))

    def _check_x(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InterpolantError(
                f"MLP(dim={self.dim}) expects x of shape (B, {self.dim}), got {tuple(x.shape)}"
            )

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        out_dtype = x.dtype
        x, t, labels = self._inputs(x, t, cond)
        c = self.time_embed(t)
        if self.label_embed is not None:
            c = c + self.label_embed(labels)
        c = nn.functional.silu(c)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, c)
        return self.output(nn.functional.silu(self.out_norm(h))).to(out_dtype)
