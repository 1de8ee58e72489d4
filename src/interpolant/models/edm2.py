"""The magnitude-preserving U-Net of EDM2 (Karras et al. 2024, "Analyzing and Improving the
Training Dynamics of Diffusion Models", configuration G), small enough for 8x8 digits.

Built only from the layers of :mod:`.mp`: no biases, no group norm, no learned scale-shift.

    emb     = mp_silu(mp_sum(MPConv(MPFourier(4 t)), MPConv(onehot(y) sqrt(K+1)), 0.5))
    input   x -> cat(x, 1) (a constant channel stands in for the biases), 3x3 MPConv
    block   enc: [avgpool 2x2] [1x1 MPConv skip] x = pixelnorm(x)
            y = MPConv3(mp_silu(x));  y = mp_silu(y * (1 + MPConv(emb, gain=g_emb)))
            y = MPConv3(dropout(y));  dec: [nearest x2 up first] [1x1 MPConv skip on x]
            x = mp_sum(x, y, 0.3);  with attention: q, k, v pixel-normalised per head,
            x = mp_sum(x, MPConv1(softmax(q^T k / sqrt(d)) v), 0.3);  clip to +-256
    decoder a block with attention and one without at the lowest resolution, then per level
            (num_res_blocks + 1) x [mp_cat(x, skip, 0.5), block]; an up block between levels
    output  MPConv3(x, gain=g_out)

The gains ``g_emb`` and ``g_out`` are learned scalars that start at zero, so the untrained net
outputs 0 and every block starts unconditioned. The time ``t in [0, 1]`` enters the Fourier
features as ``4 t``, about the span of EDM's ``c_noise = ln(sigma) / 4`` over its sigma range
(``ln(80 / 0.002) / 4 = 2.65``). The label ``NULL_LABEL`` is its own one-hot class ``K``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import InterpolantError
from .base import ReferenceNet
from .embeddings import label_index
from .mp import MPConv, MPFourier, mp_cat, mp_silu, mp_sum, normalize

__all__ = ["EDM2Block", "EDM2UNet"]

NOISE_SCALE = 4.0


class EDM2Block(nn.Module):
    """One encoder (``flavor="enc"``) or decoder (``"dec"``) block; ``resample`` is ``"keep"``,
    ``"down"`` (2x2 average pool) or ``"up"`` (nearest x2)."""

    def __init__(self, in_ch: int, out_ch: int, emb_ch: int, flavor: str = "enc",
                 resample: str = "keep", attention: bool = False, channels_per_head: int = 64,
                 dropout: float = 0.0, res_balance: float = 0.3, attn_balance: float = 0.3,
                 clip_act: float | None = 256.0) -> None:
        super().__init__()
        self.out_channels, self.flavor, self.resample = out_ch, flavor, resample
        self.heads = max(1, out_ch // channels_per_head) if attention else 0
        self.dropout, self.res_balance, self.attn_balance = dropout, res_balance, attn_balance
        self.clip_act = clip_act
        self.emb_gain = nn.Parameter(torch.zeros([]))
        self.conv_res0 = MPConv(out_ch if flavor == "enc" else in_ch, out_ch, 3)
        self.emb_linear = MPConv(emb_ch, out_ch)
        self.conv_res1 = MPConv(out_ch, out_ch, 3)
        self.conv_skip = MPConv(in_ch, out_ch, 1) if in_ch != out_ch else None
        self.attn_qkv = MPConv(out_ch, 3 * out_ch, 1) if self.heads else None
        self.attn_proj = MPConv(out_ch, out_ch, 1) if self.heads else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        if self.resample == "down":
            x = F.avg_pool2d(x, 2)
        elif self.resample == "up":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.flavor == "enc":
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)  # pixel norm
        y = self.conv_res0(mp_silu(x))
        c = self.emb_linear(emb, gain=self.emb_gain) + 1
        y = mp_silu(y * c[:, :, None, None].to(y.dtype))
        if self.training and self.dropout:
            y = F.dropout(y, p=self.dropout)
        y = self.conv_res1(y)
        if self.flavor == "dec" and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, y, self.res_balance)
        if self.heads:
            x = mp_sum(x, self.attend(x), self.attn_balance)
        return x if self.clip_act is None else x.clamp(-self.clip_act, self.clip_act)

    def attend(self, x: Tensor) -> Tensor:
        """Cosine attention over the ``H W`` positions: q, k, v normalised per head and position."""
        b, c, h, w = x.shape
        qkv = self.attn_qkv(x).reshape(b, self.heads, c // self.heads, 3, h * w)
        q, k, v = normalize(qkv, dim=2).unbind(3)  # each (B, heads, d, HW)
        weights = torch.einsum("nhcq,nhck->nhqk", q, k / math.sqrt(q.shape[2])).softmax(dim=3)
        y = torch.einsum("nhqk,nhck->nhcq", weights, v)
        return self.attn_proj(y.reshape(b, c, h, w))


class EDM2UNet(ReferenceNet):
    """EDM2's magnitude-preserving U-Net ``model(x, t, cond=None)`` for ``(B, C, H, W)`` images.

    The arguments ``in_channels, base_channels, channel_mults, num_res_blocks,
    attention_levels, num_classes, dropout, out_channels`` mean what they mean for
    :class:`interpolant.models.UNet`; the balances are the ``t`` of :func:`.mp.mp_sum` /
    :func:`.mp.mp_cat` (the paper's 0.3 for residuals and attention, 0.5 for skips and label).
    The embedding width is the widest level's.
    """

    arch = "edm2"

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
        channels_per_head: int = 64,
        res_balance: float = 0.3,
        attn_balance: float = 0.3,
        concat_balance: float = 0.5,
        label_balance: float = 0.5,
        clip_act: float | None = 256.0,
    ) -> None:
        super().__init__()
        mults = tuple(int(m) for m in channel_mults)
        levels = len(mults)
        if levels == 0 or min(mults) < 1 or in_channels < 1 or base_channels < 1:
            raise InterpolantError("EDM2UNet needs positive in_channels, base_channels and "
                                   "channel_mults")
        attention = (set(range(levels)) if attention_levels is True else set()
                     if attention_levels is False else {int(a) for a in (
                         [attention_levels] if isinstance(attention_levels, int)
                         else attention_levels)})
        if not attention <= set(range(levels)):
            raise InterpolantError(
                f"attention_levels must be within 0..{levels - 1}, got {sorted(attention)}")
        self._store_config(
            in_channels=in_channels, base_channels=base_channels, channel_mults=mults,
            num_res_blocks=num_res_blocks, attention_levels=sorted(attention),
            num_classes=num_classes, dropout=dropout, out_channels=out_channels,
            channels_per_head=channels_per_head, res_balance=res_balance,
            attn_balance=attn_balance, concat_balance=concat_balance,
            label_balance=label_balance, clip_act=clip_act,
        )
        self.in_channels, self.num_classes, self.levels = in_channels, num_classes, levels
        self.concat_balance, self.label_balance = concat_balance, label_balance
        widths = [base_channels * m for m in mults]
        emb_ch = max(widths)
        block = dict(channels_per_head=channels_per_head, dropout=dropout,
                     res_balance=res_balance, attn_balance=attn_balance, clip_act=clip_act)
        self.out_gain = nn.Parameter(torch.zeros([]))
        self.emb_fourier = MPFourier(widths[0])
        self.emb_noise = MPConv(widths[0], emb_ch)
        self.emb_label = None if num_classes is None else MPConv(num_classes + 1, emb_ch)

        self.input_conv = MPConv(in_channels + 1, widths[0], 3)
        self.enc = nn.ModuleDict()
        skips, cout = [widths[0]], widths[0]
        for level, width in enumerate(widths):
            if level > 0:
                self.enc[f"l{level}_down"] = EDM2Block(cout, cout, emb_ch, "enc", "down", **block)
                skips.append(cout)
            for i in range(num_res_blocks):
                self.enc[f"l{level}_block{i}"] = EDM2Block(
                    cout, width, emb_ch, "enc", attention=level in attention, **block)
                cout = width
                skips.append(cout)
        self.dec = nn.ModuleDict()
        for level in reversed(range(levels)):
            if level == levels - 1:
                self.dec[f"l{level}_in0"] = EDM2Block(cout, cout, emb_ch, "dec",
                                                      attention=bool(attention), **block)
                self.dec[f"l{level}_in1"] = EDM2Block(cout, cout, emb_ch, "dec", **block)
            else:
                self.dec[f"l{level}_up"] = EDM2Block(cout, cout, emb_ch, "dec", "up", **block)
            for i in range(num_res_blocks + 1):
                self.dec[f"l{level}_block{i}"] = EDM2Block(
                    cout + skips.pop(), widths[level], emb_ch, "dec",
                    attention=level in attention, **block)
                cout = widths[level]
        self.out_conv = MPConv(cout, out_channels or in_channels, 3)

    def _check_x(self, x: Tensor) -> None:
        factor = 2 ** (self.levels - 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % factor \
                or x.shape[3] % factor:
            raise InterpolantError(
                f"EDM2UNet(in_channels={self.in_channels}) expects x of shape "
                f"(B, {self.in_channels}, H, W) with H and W divisible by {factor}, "
                f"got {tuple(x.shape)}")

    def embedding(self, t: Tensor, labels: Tensor | None) -> Tensor:
        """The activated conditioning vector ``(B, emb_ch)`` of unit magnitude."""
        emb = self.emb_noise(self.emb_fourier(NOISE_SCALE * t))
        if self.emb_label is not None:
            k = self.num_classes
            onehot = F.one_hot(label_index(labels, k), k + 1).to(emb.dtype) * math.sqrt(k + 1)
            emb = mp_sum(emb, self.emb_label(onehot), self.label_balance)
        return mp_silu(emb)

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        out_dtype = x.dtype if isinstance(x, Tensor) else None
        x, t, labels = self._inputs(x, t, cond)
        emb = self.embedding(t, labels)
        x = self.input_conv(torch.cat([x, torch.ones_like(x[:, :1])], dim=1))
        skips = [x]
        for block in self.enc.values():
            x = block(x, emb)
            skips.append(x)
        for name, block in self.dec.items():
            if "block" in name:
                x = mp_cat(x, skips.pop(), t=self.concat_balance)
            x = block(x, emb)
        return self.out_conv(x, gain=self.out_gain).to(out_dtype)
