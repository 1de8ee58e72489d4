"""A small Diffusion Transformer with adaLN-Zero blocks (Peebles & Xie 2023, "DiT").

    tokens  = PatchEmbed(x) + P                    p x p patches -> N = (S/p)^2 tokens, P fixed
                                                   2-D sin-cos positions (not learned)
    c       = TimeEmbedding(t) [+ LabelEmbedding(y)]
    block:  (b1, g1, a1, b2, g2, a2) = W SiLU(c)    W zero-initialised ("adaLN-Zero")
            h = h + a1 * Attn(LN(h) (1 + g1) + b1)
            h = h + a2 * MLP(LN(h) (1 + g2) + b2)
    final:  (b, g) = W' SiLU(c);  out = unpatchify(V (LN(h) (1 + g) + b))   W', V zero-init

LayerNorms have no affine parameters; the conditioning supplies scale and shift. With the
gates ``a1, a2`` zero at initialisation every block starts as the identity, and the zero
output projection makes the untrained net predict 0, as in the paper. Other linear layers use
Xavier-uniform initialisation, the embeddings a normal of std 0.02 (as in the paper's code).
The net predicts ``out_channels`` (default ``in_channels``) channels; no learned variance.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import InterpolantError
from .base import ReferenceNet, zero_init
from .embeddings import LabelEmbedding, TimeEmbedding

__all__ = ["DiT", "sincos_positions_2d"]


def sincos_positions_2d(dim: int, grid: int) -> Tensor:
    """Fixed ``(grid * grid, dim)`` position codes: half the features encode the row, half the
    column, each ``[sin(p w_i), cos(p w_i)]`` with ``w_i = 10000^{-i / (dim/4)}``."""
    quarter = dim // 4
    freqs = 10_000.0 ** (-torch.arange(quarter, dtype=torch.float64) / quarter)
    pos = torch.arange(grid, dtype=torch.float64)
    angles = pos[:, None] * freqs[None]  # (grid, quarter)
    one_d = torch.cat([angles.sin(), angles.cos()], dim=1)  # (grid, dim/2)
    rows = one_d[:, None, :].expand(grid, grid, -1)
    cols = one_d[None, :, :].expand(grid, grid, -1)
    return torch.cat([rows, cols], dim=-1).reshape(grid * grid, dim).float()


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor) -> Tensor:
        b, n, d = h.shape
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d/heads)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class _AdaLNZeroBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        width = int(hidden * mlp_ratio)
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = _Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, width), nn.GELU(approximate="tanh"), nn.Linear(width, hidden)
        )
        self.modulation = nn.Linear(hidden, 6 * hidden)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        """``c`` is the activated conditioning ``SiLU(c)``, ``(B, hidden)``."""
        b1, g1, a1, b2, g2, a2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        h = h + a1 * self.attn(self.norm1(h) * (1 + g1) + b1)
        return h + a2 * self.mlp(self.norm2(h) * (1 + g2) + b2)


class DiT(ReferenceNet):
    """Diffusion Transformer ``model(x, t, cond=None)`` for images ``(B, C, S, S)``.

    Args:
        in_channels: image channels ``C``.
        image_size: side ``S`` (the position codes are fixed to this size).
        patch_size: side ``p`` of the square patches; must divide ``image_size``.
        hidden: token width (divisible by ``heads`` and by 4).
        depth: number of adaLN-Zero blocks.
        heads: attention heads.
        num_classes: ``K`` for a label-conditional net, ``None`` for an unconditional one.
        mlp_ratio: width of the block MLP relative to ``hidden``.
        out_channels: output channels (default ``in_channels``).
    """

    arch = "dit"

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        patch_size: int = 2,
        hidden: int = 128,
        depth: int = 4,
        heads: int = 4,
        num_classes: int | None = None,
        mlp_ratio: float = 4.0,
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        if image_size % patch_size or hidden % heads or hidden % 4:
            raise InterpolantError(
                "DiT needs patch_size dividing image_size and hidden divisible by heads and 4; "
                f"got image_size={image_size}, patch_size={patch_size}, hidden={hidden}, "
                f"heads={heads}"
            )
        self._store_config(
            in_channels=in_channels, image_size=image_size, patch_size=patch_size, hidden=hidden,
            depth=depth, heads=heads, num_classes=num_classes, mlp_ratio=mlp_ratio,
            out_channels=out_channels,
        )
        self.in_channels, self.image_size, self.patch_size = in_channels, image_size, patch_size
        self.out_channels, self.num_classes = out_channels or in_channels, num_classes
        self.patch_embed = nn.Conv2d(in_channels, hidden, patch_size, stride=patch_size)
        grid = image_size // patch_size
        self.register_buffer("positions", sincos_positions_2d(hidden, grid)[None], False)
        self.time_embed = TimeEmbedding(hidden, freq_dim=hidden)
        self.label_embed = None if num_classes is None else LabelEmbedding(num_classes, hidden)
        self.blocks = nn.ModuleList(_AdaLNZeroBlock(hidden, heads, mlp_ratio) for _ in range(depth))
        self.final_norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Linear(hidden, 2 * hidden)
        self.final_linear = nn.Linear(hidden, patch_size * patch_size * self.out_channels)
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(self.patch_embed.weight.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        for linear in (self.time_embed.mlp[0], self.time_embed.mlp[2]):
            nn.init.normal_(linear.weight, std=0.02)
        if self.label_embed is not None:
            nn.init.normal_(self.label_embed.table.weight, std=0.02)
        for block in self.blocks:
            zero_init(block.modulation)
        zero_init(self.final_modulation)
        zero_init(self.final_linear)

    def _check_x(self, x: Tensor) -> None:
        c, s = self.in_channels, self.image_size
        if x.ndim != 4 or x.shape[1:] != (c, s, s):
            raise InterpolantError(
                f"DiT(in_channels={c}, image_size={s}) expects x of shape (B, {c}, {s}, {s}), "
                f"got {tuple(x.shape)}"
            )

    def unpatchify(self, tokens: Tensor) -> Tensor:
        """``(B, N, p p C)`` tokens in row-major patch order to images ``(B, C, S, S)``."""
        b, p, c = tokens.shape[0], self.patch_size, self.out_channels
        grid = self.image_size // p
        patches = tokens.reshape(b, grid, grid, p, p, c)
        return patches.permute(0, 5, 1, 3, 2, 4).reshape(b, c, grid * p, grid * p)

    def run_blocks(self, h: Tensor, c: Tensor, t: Tensor) -> Tensor:
        """The blocks over the tokens ``h`` given the activated conditioning ``c = SiLU(c)``;
        ``t`` is there for subclasses that route by time (:mod:`.routing`)."""
        for block in self.blocks:
            h = block(h, c)
        return h

    def embed(self, x: Tensor, t: Tensor, cond: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(h, c, t, labels)``: patch tokens with positions, the conditioning
        ``SiLU(TimeEmbed(t) [+ LabelEmbed(y)])``, and the checked ``t`` and labels."""
        x, t, labels = self._inputs(x, t, cond)
        h = self.patch_embed(x).flatten(2).transpose(1, 2) + self.positions.to(x.dtype)
        c = self.time_embed(t)
        if self.label_embed is not None:
            c = c + self.label_embed(labels)
        return h, F.silu(c), t, labels

    def readout(self, h: Tensor, c: Tensor) -> Tensor:
        """The adaLN final layer and the patches back to an image."""
        shift, scale = self.final_modulation(c)[:, None].chunk(2, dim=-1)
        return self.unpatchify(self.final_linear(self.final_norm(h) * (1 + scale) + shift))

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        out_dtype = x.dtype if isinstance(x, Tensor) else None
        h, c, t, _ = self.embed(x, t, cond)
        return self.readout(self.run_blocks(h, c, t), c).to(out_dtype)

