"""Magnitude-preserving layers of EDM2 (Karras et al. 2024, "Analyzing and Improving the Training
Dynamics of Diffusion Models", section 2 and appendix B).

Every operation keeps the expected magnitude ``||y||^2 / numel = 1`` of unit-magnitude inputs
whose elements are uncorrelated, so activations neither grow nor shrink through the network,
at initialisation and during training, without any normalisation layer or bias:

- :func:`normalize`: ``x / rms(x)`` over all but the first axis (or over ``dim``); the weight
  normalisation and, with ``dim=1``, the pixel norm of the encoder.
- :class:`MPConv`: convolution (or, with no kernel, a linear map) whose weight ``w`` is
  *normalised on use*, ``w_hat = g * normalize(w) / sqrt(fan_in)`` (every output row has norm
  ``g``, so ``E[y_i^2] = g^2`` for uncorrelated unit inputs), and *forcibly normalised* in
  training: before each use the stored weight is replaced by ``normalize(w)``, so its norm
  cannot grow and the effective learning rate does not decay (the paper's "forced weight
  normalisation").
- :func:`mp_silu`: ``SiLU(x) / 0.596``, since ``E[SiLU(z)^2] = 0.596^2`` for ``z ~ N(0, 1)``.
- :func:`mp_sum`: ``((1 - t) a + t b) / sqrt((1 - t)^2 + t^2)``, a weighted residual sum.
- :func:`mp_cat`: concatenation with per-part scales ``C (1 - t) / sqrt(N_a)`` and
  ``C t / sqrt(N_b)``, ``C = sqrt((N_a + N_b) / ((1 - t)^2 + t^2))``: the result has unit
  magnitude and part ``b`` carries the share ``t^2 / ((1-t)^2 + t^2)`` of it.
- :class:`MPFourier`: ``sqrt(2) cos(2 pi (f x + phi))``, ``f ~ N(0, 1)``, ``phi ~ U[0, 1)``,
  fixed; ``E[2 cos^2] = 1``.

``normalize`` divides by ``max(rms, eps)`` rather than the paper's ``eps + rms``: the same
away from zero, and idempotent, so that forced normalisation of an already normalised weight
leaves it exactly as it is (calls in training mode stay reproducible).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["MPConv", "MPFourier", "SILU_RMS", "mp_cat", "mp_silu", "mp_sum", "normalize"]

SILU_RMS = 0.596  # sqrt(E[SiLU(z)^2]), z ~ N(0, 1) (0.5963 to four places)


def normalize(x: Tensor, dim: int | tuple[int, ...] | None = None, eps: float = 1e-4) -> Tensor:
    """``x / max(rms, eps)``, the root mean square taken over ``dim`` (default: all but axis 0)."""
    if dim is None:
        dim = tuple(range(1, x.ndim))
    rms = x.square().mean(dim=dim, keepdim=True).sqrt()
    return x / rms.clamp_min(eps)


def mp_silu(x: Tensor) -> Tensor:
    """``SiLU(x) / 0.596``: unit magnitude for standard normal input."""
    return F.silu(x) / SILU_RMS


def mp_sum(a: Tensor, b: Tensor, t: float = 0.5) -> Tensor:
    """``((1 - t) a + t b) / sqrt((1 - t)^2 + t^2)``; ``t`` is the share of ``b``."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


def mp_cat(a: Tensor, b: Tensor, dim: int = 1, t: float = 0.5) -> Tensor:
    """Concatenate along ``dim`` with the magnitude-preserving scales of the module docstring."""
    na, nb = a.shape[dim], b.shape[dim]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t**2))
    return torch.cat([a * (c / math.sqrt(na) * (1 - t)), b * (c / math.sqrt(nb) * t)], dim=dim)


class MPFourier(nn.Module):
    """Fourier features ``sqrt(2) cos(2 pi (f x + phi))`` of a ``(B,)`` input: ``(B, channels)``."""

    def __init__(self, channels: int, bandwidth: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(channels) * bandwidth)
        self.register_buffer("phases", 2 * math.pi * torch.rand(channels))

    def forward(self, x: Tensor) -> Tensor:
        y = x[:, None] * self.freqs.to(x.dtype) + self.phases.to(x.dtype)
        return math.sqrt(2) * torch.cos(y)


class MPConv(nn.Module):
    """Magnitude-preserving convolution ``(B, in, H, W) -> (B, out, H, W)`` with a square
    ``kernel`` (odd, "same" padding), or a linear map ``(B, in) -> (B, out)`` with ``kernel=0``.

    ``forward(x, gain=1)`` uses ``w_hat = gain * normalize(w) / sqrt(fan_in)``; in training mode
    the stored weight is first replaced by ``normalize(w)`` (forced weight normalisation). The
    weight starts as ``N(0, 1)``; there is no bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 0) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel = in_channels, out_channels, kernel
        shape = (out_channels, in_channels) + ((kernel, kernel) if kernel else ())
        self.weight = nn.Parameter(torch.randn(shape))

    @property
    def fan_in(self) -> int:
        return self.weight[0].numel()

    def effective_weight(self, gain: float | Tensor = 1.0) -> Tensor:
        """``gain * normalize(w) / sqrt(fan_in)``: each output row has norm ``|gain|``."""
        return normalize(self.weight) * (gain / math.sqrt(self.fan_in))

    def forward(self, x: Tensor, gain: float | Tensor = 1.0) -> Tensor:
        if self.training:
            with torch.no_grad():
                self.weight.copy_(normalize(self.weight))
        w = self.effective_weight(gain).to(x.dtype)
        if not self.kernel:
            return x @ w.t()
        return F.conv2d(x, w, padding=self.kernel // 2)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel={self.kernel}"
