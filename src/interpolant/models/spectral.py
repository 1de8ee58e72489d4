"""Spectral Diffusion's wavelet gating: the orthonormal 2-D Haar transform and a U-Net whose
resolution changes go through gated wavelet subbands.

Yang, Zhou, Feng & Wang, "Diffusion Probabilistic Model Made Slim" (CVPR 2023), Sec. 4.1: a
slim denoiser cannot follow how the spectrum it must recover changes over the reverse steps, so
its down- and up-sampling see the features split into frequency subbands and weight them by
gates computed from the features themselves (which carry the time step), at every step.

* Haar analysis of each 2x2 block ``[[a, b], [c, d]]`` into ``LL = (a + b + c + d) / 2``,
  ``LH = (a - b + c - d) / 2`` (horizontal detail), ``HL = (a + b - c - d) / 2`` (vertical),
  ``HH = (a - b - c + d) / 2``: an orthogonal map (its own inverse up to the layout), so
  :func:`haar_idwt2` reconstructs perfectly and energy is kept (Parseval).
* :class:`WaveletGate`: per subband ``i`` and channel, ``g = sigmoid(W_2 SiLU(W_1 [avgpool(X_LL),
  .., avgpool(X_HH)]))`` (squeeze-and-excitation style, from all four subbands at once).
* :class:`WGDown`: ``conv(sum_i g_i * DWT(X)_i)`` halves the resolution (in place of the
  stride-2 convolution); :class:`WGUp`: ``conv(IDWT(g_1 X, g_2 X, g_3 X, g_4 X))`` doubles it
  (in place of nearest-neighbour upsampling), the gates choosing which frequencies the coarse
  features populate.
* :class:`SpectralUNet`: :class:`~interpolant.models.UNet` with those resamplers; with few
  channels it is the slim network, distilled from a large teacher by the paper's
  spectrum-aware distillation in :mod:`interpolant.training.spectral_distill`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from .unet import UNet

__all__ = ["haar_dwt2", "haar_idwt2", "WaveletGate", "WGDown", "WGUp", "SpectralUNet"]

# rows: LL, LH, HL, HH; columns: the block's pixels a (top left), b, c, d (bottom right)
_HAAR = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2.0


def _check_image(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[2] % 2 or x.shape[3] % 2:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InterpolantError(f"{name} needs (B, C, H, W) with even H and W, got {got}")


def haar_dwt2(x: Tensor) -> Tensor:
    """One level of the orthonormal 2-D Haar transform: ``(B, C, H, W) -> (B, 4, C, H/2,
    W/2)``, subbands in the order LL, LH, HL, HH."""
    _check_image(x, "haar_dwt2")
    blocks = torch.stack([x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 0::2],
                          x[:, :, 1::2, 1::2]], dim=1)  # a, b, c, d
    return torch.einsum("sp,bpchw->bschw", _HAAR.to(x), blocks)


def haar_idwt2(bands: Tensor) -> Tensor:
    """The inverse of :func:`haar_dwt2`: ``(B, 4, C, h, w) -> (B, C, 2h, 2w)``."""
    if not isinstance(bands, Tensor) or bands.ndim != 5 or bands.shape[1] != 4:
        got = tuple(bands.shape) if isinstance(bands, Tensor) else type(bands).__name__
        raise InterpolantError(f"haar_idwt2 needs subbands (B, 4, C, h, w), got {got}")
    a, b, c, d = torch.einsum("sp,bschw->pbchw", _HAAR.to(bands), bands)  # H^T = H^-1
    n, ch, h, w = a.shape
    out = bands.new_empty(n, ch, 2 * h, 2 * w)
    out[:, :, 0::2, 0::2], out[:, :, 0::2, 1::2] = a, b
    out[:, :, 1::2, 0::2], out[:, :, 1::2, 1::2] = c, d
    return out


class WaveletGate(nn.Module):
    """``g = sigmoid(W_2 SiLU(W_1 mean_hw(X)))`` over the four subbands' pooled channels:
    ``(B, 4, C, h, w) -> (B, 4, C, 1, 1)``, one gate per subband and channel."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(4 * channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Linear(4 * channels, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 4 * channels))

    def forward(self, bands: Tensor) -> Tensor:
        n, _, c = bands.shape[:3]
        return torch.sigmoid(self.mlp(bands.mean(dim=(3, 4)).reshape(n, 4 * c))).view(
            n, 4, c, 1, 1)


class WGDown(nn.Module):
    """WG-Down: ``conv3x3(sum_i g_i * DWT(X)_i)``, half the resolution, same channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = WaveletGate(channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: Tensor) -> Tensor:
        bands = haar_dwt2(h)
        return self.conv((self.gate(bands) * bands).sum(dim=1))


class WGUp(nn.Module):
    """WG-Up: ``conv3x3(IDWT(g_LL X, g_LH X, g_HL X, g_HH X))``, twice the resolution; the
    gates come from ``X`` itself (the four copies before gating)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = WaveletGate(channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: Tensor) -> Tensor:
        copies = h[:, None].expand(-1, 4, -1, -1, -1)
        return self.conv(haar_idwt2(self.gate(copies) * copies))


class SpectralUNet(UNet):
    """:class:`~interpolant.models.UNet` whose down/up-samplers are :class:`WGDown` and
    :class:`WGUp` (same arguments as ``UNet``; a slim one: ``base_channels=16``)."""

    arch = "spectral-unet"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for stage in self.encoder:
            if stage.resample is not None:
                stage.resample = WGDown(stage.resample.conv.out_channels)
        for stage in self.decoder:
            if stage.resample is not None:
                stage.resample = WGUp(stage.resample.conv.out_channels)
