"""Convolutional building blocks of the U-Net (Ho et al. 2020; Dhariwal & Nichol 2021, "ADM").

- :class:`ResBlock`: ``h + conv(drop(SiLU(FiLM(GN(conv(SiLU(GN(h)))), emb))))`` with ADM's
  scale-shift conditioning ``GN(y) * (1 + s(emb)) + b(emb)``; the last conv starts at zero, so
  every block starts as the identity (the skip is a 1x1 conv when channels change).
- :class:`SelfAttention`: multi-head dot-product attention over the ``H W`` positions of one
  image, ``h + proj(softmax(q k^T / sqrt(d)) v)``, projection zero-initialised.
- :class:`Downsample` (3x3 conv, stride 2) and :class:`Upsample` (nearest x2, then 3x3 conv).

All normalisation is GroupNorm, computed per sample: no statistics cross the batch.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .base import group_norm, zero_init

__all__ = ["Downsample", "ResBlock", "SelfAttention", "Upsample"]


class ResBlock(nn.Module):
    """Residual block with time/label scale-shift conditioning (ADM, Dhariwal & Nichol 2021)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        """``emb`` is the already activated conditioning vector ``SiLU(c)``, ``(B, emb_dim)``."""
        return self.skip(h) + self.branch(h, emb)

    def branch(self, h: Tensor, emb: Tensor) -> Tensor:
        """The residual branch ``conv(drop(SiLU(FiLM(GN(conv(SiLU(GN(h)))), emb))))``."""
        y = self.conv1(F.silu(self.norm1(h)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        y = self.norm2(y) * (1 + scale) + shift
        return self.conv2(self.dropout(F.silu(y)))


class SelfAttention(nn.Module):
    """Multi-head self-attention over spatial positions, heads of width ``head_dim``."""

    def __init__(self, channels: int, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        if channels % self.heads:
            self.heads = 1
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, h: Tensor) -> Tensor:
        b, c, height, width = h.shape
        qkv = self.qkv(self.norm(h)).reshape(b, 3, self.heads, c // self.heads, height * width)
        # contiguous operands: strided ones send SDPA and the convolutions after it down
        # slow CPU paths (several times slower training steps)
        q, k, v = qkv.transpose(-1, -2).contiguous().unbind(dim=1)  # each (B, heads, HW, d)
        y = F.scaled_dot_product_attention(q, k, v)
        y = y.transpose(-1, -2).contiguous().reshape(b, c, height, width)
        return h + self.proj(y)


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, h: Tensor) -> Tensor:
        return self.conv(h)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour interpolation, then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: Tensor) -> Tensor:
        return self.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
