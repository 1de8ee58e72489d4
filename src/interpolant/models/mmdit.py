"""MM-DiT: the multimodal Diffusion Transformer of SD3 (Esser et al. 2024, "Scaling Rectified
Flow Transformers for High-Resolution Image Synthesis", section 4 and figure 2).

Two token streams, image patches ``x`` (N tokens) and conditioning tokens ``ctx`` (L tokens),
each with its own weights (adaLN-Zero modulation, q/k/v and output projections, MLP) as in
a DiT block (:mod:`.dit`), joined in one attention over the concatenated sequence:

    (b, g, a, b', g', a')_s = W_s SiLU(c)                 per stream s in {x, ctx}
    q_s, k_s, v_s = QKV_s(LN(h_s) (1 + g_s) + b_s)
    [o_x; o_ctx] = softmax([q_x; q_ctx] [k_x; k_ctx]^T / sqrt(d)) [v_x; v_ctx]
    h_s = h_s + a_s * O_s(o_s);   h_s = h_s + a'_s * MLP_s(LN(h_s) (1 + g'_s) + b'_s)

With no conditioning tokens a block is exactly a DiT block of the same weights; with the two
streams' weights tied it is exactly a DiT block over the concatenated tokens. The last block
only reads the conditioning stream (keys and values), as in SD3 ("pre-only").

:class:`MMDiT` is the DiT with these blocks: the class label becomes ``context_tokens``
conditioning tokens (one embedding of width ``context_tokens * hidden``, row ``K`` for
``NULL_LABEL``; learned constant tokens for an unconditional net), and also enters the pooled
vector ``c = TimeEmbedding(t) + LabelEmbedding(y)`` that drives the modulations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .base import zero_init
from .dit import DiT, _AdaLNZeroBlock
from .embeddings import LabelEmbedding

__all__ = ["MMDiT", "MMDiTBlock", "joint_attention"]


def joint_attention(qkv_x: Tensor, qkv_c: Tensor, heads: int) -> tuple[Tensor, Tensor]:
    """Attention over the concatenation of two streams' ``(B, N, 3D)`` and ``(B, L, 3D)``
    q/k/v projections (DiT's head layout); returns the two streams' outputs ``(B, N, D)``,
    ``(B, L, D)``."""
    n = qkv_x.shape[1]
    qkv = torch.cat([qkv_x, qkv_c], dim=1)
    b, total, three_d = qkv.shape
    d = three_d // 3
    q, k, v = qkv.reshape(b, total, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, total, d)
    return y[:, :n], y[:, n:]


class _ContextPre(nn.Module):
    """The conditioning stream of the last block: modulation, norm and q/k/v only."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.modulation = nn.Linear(hidden, 2 * hidden)


class MMDiTBlock(nn.Module):
    """One MM-DiT block: ``forward(x, ctx, c) -> (x, ctx)`` (``ctx`` is ``None`` if pre-only)."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0,
                 pre_only: bool = False) -> None:
        super().__init__()
        self.heads, self.pre_only = heads, pre_only
        self.x = _AdaLNZeroBlock(hidden, heads, mlp_ratio)
        self.ctx = _ContextPre(hidden) if pre_only else _AdaLNZeroBlock(hidden, heads, mlp_ratio)

    def forward(self, x: Tensor, ctx: Tensor, c: Tensor) -> tuple[Tensor, Tensor | None]:
        """``c`` is the activated pooled conditioning ``SiLU(c)``, ``(B, hidden)``."""
        bx1, gx1, ax1, bx2, gx2, ax2 = self.x.modulation(c)[:, None].chunk(6, dim=-1)
        if self.pre_only:
            bc1, gc1 = self.ctx.modulation(c)[:, None].chunk(2, dim=-1)
            qkv_c = self.ctx.qkv(self.ctx.norm1(ctx) * (1 + gc1) + bc1)
        else:
            bc1, gc1, ac1, bc2, gc2, ac2 = self.ctx.modulation(c)[:, None].chunk(6, dim=-1)
            qkv_c = self.ctx.attn.qkv(self.ctx.norm1(ctx) * (1 + gc1) + bc1)
        qkv_x = self.x.attn.qkv(self.x.norm1(x) * (1 + gx1) + bx1)
        yx, yc = joint_attention(qkv_x, qkv_c, self.heads)
        x = x + ax1 * self.x.attn.proj(yx)
        x = x + ax2 * self.x.mlp(self.x.norm2(x) * (1 + gx2) + bx2)
        if self.pre_only:
            return x, None
        ctx = ctx + ac1 * self.ctx.attn.proj(yc)
        return x, ctx + ac2 * self.ctx.mlp(self.ctx.norm2(ctx) * (1 + gc2) + bc2)


class MMDiT(DiT):
    """MM-DiT ``model(x, t, cond=None)`` for images ``(B, C, S, S)``: the arguments of
    :class:`interpolant.models.DiT` and ``context_tokens``, the number of conditioning tokens."""

    arch = "mmdit"

    def __init__(self, in_channels: int = 1, image_size: int = 8, patch_size: int = 2,
                 hidden: int = 128, depth: int = 4, heads: int = 4,
                 num_classes: int | None = None, mlp_ratio: float = 4.0,
                 out_channels: int | None = None, context_tokens: int = 4) -> None:
        super().__init__(in_channels, image_size, patch_size, hidden, 0, heads, num_classes,
                         mlp_ratio, out_channels)
        self._store_config(
            in_channels=in_channels, image_size=image_size, patch_size=patch_size, hidden=hidden,
            depth=depth, heads=heads, num_classes=num_classes, mlp_ratio=mlp_ratio,
            out_channels=out_channels, context_tokens=context_tokens,
        )
        self.context_tokens, self.hidden = context_tokens, hidden
        if num_classes is None:
            self.context = nn.Parameter(0.02 * torch.randn(1, context_tokens, hidden))
            self.context_embed = None
        else:
            self.context_embed = LabelEmbedding(num_classes, context_tokens * hidden)
            nn.init.normal_(self.context_embed.table.weight, std=0.02)
        self.blocks = nn.ModuleList(MMDiTBlock(hidden, heads, mlp_ratio, pre_only=i == depth - 1)
                                    for i in range(depth))
        for module in self.blocks.modules():  # DiT's initialisation for the new blocks
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            zero_init(block.x.modulation)
            zero_init(block.ctx.modulation)

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        out_dtype = x.dtype if isinstance(x, Tensor) else None
        h, c, _, labels = self.embed(x, t, cond)
        if self.label_embed is not None:
            ctx = self.context_embed(labels).reshape(len(h), self.context_tokens, self.hidden)
        else:
            ctx = self.context.expand(len(h), -1, -1)
        for block in self.blocks:
            h, ctx = block(h, ctx, c)
        return self.readout(h, c).to(out_dtype)
