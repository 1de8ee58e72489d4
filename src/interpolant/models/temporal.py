"""A 1-D temporal U-Net for sequences ``(B, C, L)`` (trajectories, time series, audio frames),
after the temporal U-Net of Diffuser (Janner et al. 2022) with ADM-style conditioning.

    encoder  per level l: 2 x ResBlock1d (width C_l = base_channels * channel_mults[l]), keep
             a skip, then a stride-2 conv except at the last level
    middle   2 x ResBlock1d
    decoder  per level, deepest first: concat the level's skip, 2 x ResBlock1d, then a
             transposed conv (x2 length, width C_{l-1}) except at level 0
    output   GroupNorm, SiLU, 1x1 conv (zero-initialised)

A ResBlock1d is ``h + conv(SiLU(FiLM(GN(conv(SiLU(GN(h)))), emb)))`` with the scale-shift
``GN(y) (1 + s) + b`` of Dhariwal & Nichol 2021; the second conv starts at zero. Only
per-sample GroupNorm is used, so samples never interact.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import InterpolantError
from .base import ReferenceNet, group_norm, zero_init
from .embeddings import LabelEmbedding, TimeEmbedding

__all__ = ["TemporalUNet"]


class _ResBlock1d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, kernel_size: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel_size, padding=pad)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch)
        self.conv2 = zero_init(nn.Conv1d(out_ch, out_ch, kernel_size, padding=pad))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv1d(in_ch, out_ch, 1)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        y = self.conv1(F.silu(self.norm1(h)))
        scale, shift = self.emb(emb)[:, :, None].chunk(2, dim=1)
        y = self.norm2(y) * (1 + scale) + shift
        return self.skip(h) + self.conv2(F.silu(y))


class TemporalUNet(ReferenceNet):
    """Temporal U-Net ``model(x, t, cond=None)`` for sequences ``(B, channels, L)``.

    Args:
        channels: features per time step ``C``.
        base_channels: width at full length (times ``channel_mults[0]``).
        channel_mults: width multiplier per level; ``L`` must be divisible by
            ``2^(len(channel_mults) - 1)``.
        kernel_size: odd length of the temporal convolutions.
        num_classes: ``K`` for a label-conditional net, ``None`` for an unconditional one.
    """

    arch = "temporal"

    def __init__(
        self,
        channels: int,
        base_channels: int = 32,
        channel_mults: tuple[int, ...] = (1, 2),
        kernel_size: int = 5,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        mults = tuple(int(m) for m in channel_mults)
        if not mults or min(mults) < 1 or channels < 1 or kernel_size % 2 == 0:
            raise InterpolantError(
                "TemporalUNet needs positive channels and channel_mults and an odd kernel_size"
            )
        self._store_config(
            channels=channels, base_channels=base_channels, channel_mults=mults,
            kernel_size=kernel_size, num_classes=num_classes,
        )
        self.channels, self.num_classes, self.levels = channels, num_classes, len(mults)
        widths = [base_channels * m for m in mults]
        emb_dim = 4 * base_channels
        self.time_embed = TimeEmbedding(emb_dim, freq_dim=base_channels)
        self.label_embed = None if num_classes is None else LabelEmbedding(num_classes, emb_dim)
        self.input_conv = nn.Conv1d(channels, widths[0], kernel_size, padding=kernel_size // 2)

        def pair(in_ch: int, out_ch: int) -> nn.ModuleList:
            return nn.ModuleList([_ResBlock1d(in_ch, out_ch, emb_dim, kernel_size),
                                  _ResBlock1d(out_ch, out_ch, emb_dim, kernel_size)])

        self.encoder, self.downs = nn.ModuleList(), nn.ModuleList()
        previous = widths[0]
        for level, width in enumerate(widths):
            self.encoder.append(pair(previous, width))
            last = level == self.levels - 1
            self.downs.append(nn.Identity() if last else nn.Conv1d(width, width, 3, 2, 1))
            previous = width
        self.mid = pair(widths[-1], widths[-1])
        self.decoder, self.ups = nn.ModuleList(), nn.ModuleList()
        for level, width in enumerate(widths):  # decoder[l] handles level l
            self.decoder.append(pair(2 * width, width))
            if level == 0:
                self.ups.append(nn.Identity())
            else:
                self.ups.append(nn.ConvTranspose1d(width, widths[level - 1], 4, 2, 1))
        self.out_norm = group_norm(widths[0])
        self.out_conv = zero_init(nn.Conv1d(widths[0], channels, 1))

    def _check_x(self, x: Tensor) -> None:
        factor = 2 ** (self.levels - 1)
        if x.ndim != 3 or x.shape[1] != self.channels or x.shape[2] % factor:
            raise InterpolantError(
                f"TemporalUNet(channels={self.channels}) expects x of shape "
                f"(B, {self.channels}, L) with L divisible by {factor}, got {tuple(x.shape)}"
            )

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        out_dtype = x.dtype if isinstance(x, Tensor) else None
        x, t, labels = self._inputs(x, t, cond)
        c = self.time_embed(t)
        if self.label_embed is not None:
            c = c + self.label_embed(labels)
        emb = F.silu(c)
        h, skips = self.input_conv(x), []
        for blocks, down in zip(self.encoder, self.downs):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, emb)
        for level in reversed(range(self.levels)):
            h = torch.cat([h, skips[level]], dim=1)
            for block in self.decoder[level]:
                h = block(h, emb)
            h = self.ups[level](h)
        return self.out_conv(F.silu(self.out_norm(h))).to(out_dtype)
