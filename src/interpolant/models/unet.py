"""A small U-Net for images from 8x8 upward, after DDPM (Ho et al. 2020) and ADM (Dhariwal &
Nichol 2021).

Level ``l`` (``l = 0`` is full resolution) has ``C_l = base_channels * channel_mults[l]``
channels and resolution ``H / 2^l``. With ``L = len(channel_mults)`` levels:

    encoder  input conv; per level: num_res_blocks x [ResBlock (+ attention)], then a stride-2
             downsample except at the last level; every block output (and each level's entry
             tensor) is kept as a skip
    middle   ResBlock, attention (if any attention), ResBlock at the lowest resolution
    decoder  per level, deepest first: (num_res_blocks + 1) x [concat one skip of this level,
             ResBlock (+ attention)], then nearest x2 upsample + conv except at level 0
    output   GroupNorm, SiLU, 3x3 conv (zero-initialised: the untrained net outputs 0)

Time (and label) conditioning enters every ResBlock by scale-shift (see ``layers``).

Features for caching. ``forward(..., return_features=True)`` also returns a dict:
``"encoder.{l}"`` (output of encoder level ``l`` before downsampling), ``"mid"`` (output of the
middle block) and ``"decoder_in.{l}"`` (the main-branch tensor entering decoder level ``l``,
shape ``(B, C_{l+1} or C_{L-1}, H/2^l, W/2^l)``). ``"decoder_in.0"`` is the high-level feature
that DeepCache (Ma et al. 2024) reuses across adjacent steps; :meth:`UNet.forward_cached`
runs only the shallow levels ``0..level`` around such a cached tensor.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import InterpolantError
from .base import ReferenceNet, group_norm, zero_init
from .embeddings import LabelEmbedding, TimeEmbedding
from .layers import Downsample, ResBlock, SelfAttention, Upsample

__all__ = ["UNet"]


class _Stage(nn.Module):
    """ResBlocks, each optionally followed by attention, then an optional resampler."""

    def __init__(self, in_channels: list[int], out_ch: int, emb_dim: int, attention: bool,
                 dropout: float, resample: nn.Module | None) -> None:
        super().__init__()
        self.res = nn.ModuleList(ResBlock(c, out_ch, emb_dim, dropout) for c in in_channels)
        self.attn = nn.ModuleList(
            SelfAttention(out_ch) if attention else nn.Identity() for _ in in_channels
        )
        self.resample = resample


class UNet(ReferenceNet):
    """U-Net ``model(x, t, cond=None)`` for images ``(B, in_channels, H, W)``.

    Args:
        in_channels: image channels ``C``.
        base_channels: width at full resolution (times ``channel_mults[0]``).
        channel_mults: width multiplier per level; ``H`` and ``W`` must be divisible by
            ``2^(len(channel_mults) - 1)``.
        num_res_blocks: ResBlocks per encoder level (the decoder has one more).
        attention_levels: levels with self-attention after each ResBlock; ``True`` for all,
            ``False`` or ``()`` for none. The middle block has attention unless there is none.
        num_classes: ``K`` for a label-conditional net, ``None`` for an unconditional one.
        dropout: dropout rate inside ResBlocks.
        out_channels: output channels (default ``in_channels``).
    """

    arch = "unet"

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        channel_mults: tuple[int, ...] = (1, 2),
        num_res_blocks: int = 1,
        attention_levels: tuple[int, ...] | bool = (1,),
        num_classes: int | None = None,
        dropout: float = 0.0,
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        mults = tuple(int(m) for m in channel_mults)
        levels = len(mults)
        if levels == 0 or min(mults) < 1 or in_channels < 1 or base_channels < 1:
            raise InterpolantError("UNet needs positive in_channels, base_channels, channel_mults")
        if attention_levels is True:
            attention = set(range(levels))
        elif attention_levels is False:
            attention = set()
        elif isinstance(attention_levels, int):
            attention = {attention_levels}
        else:
            attention = {int(a) for a in attention_levels}
        if not attention <= set(range(levels)):
            raise InterpolantError(
                f"attention_levels must be within 0..{levels - 1}, got {sorted(attention)}"
            )
        self._store_config(
            in_channels=in_channels, base_channels=base_channels, channel_mults=mults,
            num_res_blocks=num_res_blocks, attention_levels=sorted(attention),
            num_classes=num_classes, dropout=dropout, out_channels=out_channels,
        )
        self.in_channels, self.num_classes, self.levels = in_channels, num_classes, levels
        widths = [base_channels * m for m in mults]
        emb_dim = 4 * base_channels
        self.time_embed = TimeEmbedding(emb_dim, freq_dim=base_channels)
        self.label_embed = None if num_classes is None else LabelEmbedding(num_classes, emb_dim)
        self.input_conv = nn.Conv2d(in_channels, widths[0], 3, padding=1)

        self.encoder, skip_channels = nn.ModuleList(), []
        entry = widths[0]
        for level, width in enumerate(widths):
            ins = [entry] + [width] * (num_res_blocks - 1)
            down = Downsample(width) if level < levels - 1 else None
            self.encoder.append(_Stage(ins, width, emb_dim, level in attention, dropout, down))
            skip_channels.append([entry] + [width] * num_res_blocks)
            entry = width
        self.mid = _Stage([widths[-1]] * 2, widths[-1], emb_dim, False, dropout, None)
        self.mid_attn = SelfAttention(widths[-1]) if attention else nn.Identity()

        decoder: list[_Stage] = []
        h_ch = widths[-1]
        for level in reversed(range(levels)):
            ins = []
            for skip in reversed(skip_channels[level]):
                ins.append(h_ch + skip)
                h_ch = widths[level]
            up = Upsample(widths[level]) if level > 0 else None
            decoder.append(_Stage(ins, widths[level], emb_dim, level in attention, dropout, up))
        self.decoder = nn.ModuleList(reversed(decoder))  # decoder[l] handles level l
        self.out_norm = group_norm(widths[0])
        self.out_conv = zero_init(nn.Conv2d(widths[0], out_channels or in_channels, 3, padding=1))

    # -- pieces --------------------------------------------------------------------------
    def _check_x(self, x: Tensor) -> None:
        factor = 2 ** (self.levels - 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InterpolantError(
                f"UNet(in_channels={self.in_channels}) expects x of shape "
                f"(B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if x.shape[2] % factor or x.shape[3] % factor:
            raise InterpolantError(
                f"UNet with {self.levels} levels expects x of shape (B, C, H, W) with H and W "
                f"divisible by {factor}, got {tuple(x.shape)}"
            )

    def _embedding(self, t: Tensor, labels: Tensor | None) -> Tensor:
        c = self.time_embed(t)
        if self.label_embed is not None:
            c = c + self.label_embed(labels)
        return F.silu(c)

    def _encode(self, x: Tensor, emb: Tensor, last: int, feats: dict[str, Tensor]):
        """Encoder levels ``0..last``; returns the main branch and the skips of each level."""
        h, skips = self.input_conv(x), []
        for level in range(last + 1):
            stage, level_skips = self.encoder[level], [h]
            for res, attn in zip(stage.res, stage.attn):
                h = attn(res(h, emb))
                level_skips.append(h)
            skips.append(level_skips)
            feats[f"encoder.{level}"] = h
            if level < last:
                h = stage.resample(h)
        return h, skips

    def _decode(self, h: Tensor, emb: Tensor, skips: list[list[Tensor]], first: int,
                feats: dict[str, Tensor]) -> Tensor:
        """Decoder levels ``first..0``, starting from main branch ``h``; then the output head."""
        for level in reversed(range(first + 1)):
            feats[f"decoder_in.{level}"] = h
            stage = self.decoder[level]
            for res, attn in zip(stage.res, stage.attn):
                h = attn(res(torch.cat([h, skips[level].pop()], dim=1), emb))
            if stage.resample is not None:
                h = stage.resample(h)
        return self.out_conv(F.silu(self.out_norm(h)))

    # -- calls ---------------------------------------------------------------------------
    def forward(
        self, x: Tensor, t: Tensor, cond: Any = None, *, return_features: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """The prediction, shape and dtype of ``x``; with ``return_features`` also the feature
        dict of the module docstring (tensors in the parameters' dtype)."""
        out_dtype = x.dtype if isinstance(x, Tensor) else None
        x, t, labels = self._inputs(x, t, cond)
        emb, feats = self._embedding(t, labels), {}
        h, skips = self._encode(x, emb, self.levels - 1, feats)
        res1, res2 = self.mid.res
        h = res2(self.mid_attn(res1(h, emb)), emb)
        feats["mid"] = h
        out = self._decode(h, emb, skips, self.levels - 1, feats).to(out_dtype)
        return (out, feats) if return_features else out

    def forward_cached(
        self, x: Tensor, t: Tensor, cond: Any = None, *, cached: Tensor, level: int = 0
    ) -> Tensor:
        """Run only levels ``0..level`` of encoder and decoder, taking the deeper result from
        ``cached`` (``features["decoder_in.{level}"]`` of an earlier full call; DeepCache).
        With ``cached`` from the same ``(x, t, cond)`` this equals :meth:`forward`."""
        if not 0 <= level < self.levels - 1:
            raise InterpolantError(f"level must be in 0..{self.levels - 2}, got {level}")
        out_dtype = x.dtype if isinstance(x, Tensor) else None
        x, t, labels = self._inputs(x, t, cond)
        emb, feats = self._embedding(t, labels), {}
        _, skips = self._encode(x, emb, level, feats)
        return self._decode(cached.to(x.dtype), emb, skips, level, feats).to(out_dtype)
