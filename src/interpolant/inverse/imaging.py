"""Image restoration operators: inpainting, average-pool downsampling and Gaussian blur.

Each acts on images ``(B, C, H, W)`` and on vectors ``(B, D)`` (a 1-D signal), and knows
the eigenvalues of ``A A^T`` in closed form where they are cheap (see :mod:`.operators`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InterpolantError
from .operators import Operator, Spectral, as_tensor64, batch_of

__all__ = ["Inpaint", "Downsample", "Blur"]


def _signal_dims(x: Tensor, what: str) -> int:
    """1 for vectors ``(B, D)``, 2 for images ``(B, C, H, W)``."""
    batch_of(x, None, what)
    if x.ndim not in (2, 4):
        raise InterpolantError(
            f"{what} must be vectors (B, D) or images (B, C, H, W), got shape {tuple(x.shape)}"
        )
    return 1 if x.ndim == 2 else 2


@dataclass(frozen=True, eq=False)
class Inpaint(Operator):
    """Keep the observed entries: ``A x = x[mask]``, a vector of the ``m`` observed values
    (in row-major order) per sample; ``A^T y`` puts them back and fills zeros elsewhere.

    ``mask`` (boolean or 0/1) has the shape of one sample, e.g. ``(D,)`` or ``(C, H, W)``
    (expand an ``(H, W)`` mask over channels). ``A A^T = I``, so ``A^+ = A^T``.
    """

    mask: Tensor
    _index: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        mask = torch.as_tensor(self.mask).detach().cpu()
        if mask.dtype != torch.bool:
            values = as_tensor64(mask, "mask")
            if not torch.all((values == 0) | (values == 1)):
                raise InterpolantError(
                    "mask must be boolean or hold only 0 and 1 (1 = observed); threshold it, "
                    "e.g. mask > 0.5"
                )
            mask = values == 1
        if mask.ndim == 0 or not mask.any():
            raise InterpolantError("mask must have the shape of one sample and observe something")
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "_index", torch.nonzero(mask.flatten()).flatten())

    def forward(self, x: Tensor) -> Tensor:
        batch_of(x, self.mask.shape, "x")
        return x.reshape(x.shape[0], -1)[:, self._index.to(x.device)]

    def adjoint(self, y: Tensor) -> Tensor:
        batch_of(y, (self._index.numel(),), "the measurement")
        out = y.new_zeros(y.shape[0], self.mask.numel())
        out[:, self._index.to(y.device)] = y
        return out.view(y.shape[0], *self.mask.shape)

    def input_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        return tuple(self.mask.shape)

    def gram_apply(self, v: Tensor, fn: Spectral) -> Tensor:
        return fn(torch.ones(1, dtype=torch.float64)).to(v) * v


@dataclass(frozen=True, eq=False)
class Downsample(Operator):
    """Average pooling by ``factor``: ``factor x factor`` blocks of images, runs of
    ``factor`` entries of vectors. ``A A^T = I / factor^k`` (``k = 2`` for images, 1 for
    vectors), so ``A^+`` repeats each value (nearest-neighbour upsampling)."""

    factor: int

    def __post_init__(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, int) or self.factor < 1:
            raise InterpolantError(f"factor must be a positive integer, got {self.factor!r}")

    def forward(self, x: Tensor) -> Tensor:
        f = self.factor
        if _signal_dims(x, "x") == 1:
            if x.shape[1] % f:
                raise InterpolantError(f"factor {f} does not divide the length {x.shape[1]}; "
                                       "pad or crop the data to a multiple of it")
            return x.view(x.shape[0], -1, f).mean(-1)
        if x.shape[2] % f or x.shape[3] % f:
            raise InterpolantError(f"factor {f} does not divide the image size "
                                   f"{x.shape[2]}x{x.shape[3]}; pad or crop to a multiple of it")
        return F.avg_pool2d(x, f)

    def adjoint(self, y: Tensor) -> Tensor:
        f, k = self.factor, _signal_dims(y, "the measurement")
        out = y.repeat_interleave(f, dim=-1)
        if k == 2:
            out = out.repeat_interleave(f, dim=-2)
        return out / f**k

    def input_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        f = self.factor
        if len(y_shape) == 1:
            return (y_shape[0] * f,)
        return (y_shape[0], *(s * f for s in y_shape[1:]))

    def gram_apply(self, v: Tensor, fn: Spectral) -> Tensor:
        e = torch.tensor([float(self.factor) ** -_signal_dims(v, "the measurement")],
                         dtype=torch.float64)
        return fn(e).to(v) * v


@dataclass(frozen=True, eq=False)
class Blur(Operator):
    """Gaussian blur with a normalised ``kernel_size``-tap kernel of standard deviation
    ``sigma``, separable over height and width (per channel), or 1-D on vectors.

    ``padding="circular"`` (the default) wraps around the edges: ``A`` is a convolution on
    the torus, diagonal in the Fourier basis, so ``A A^T`` has eigenvalues ``|K^|^2`` and
    ``gram_apply`` is two FFTs. ``padding="zeros"`` pads with zeros (output of the same size);
    ``A A^T`` is then eigendecomposed densely (small signals only). The kernel is symmetric,
    so in both cases ``A^T`` is the same blur.
    """

    kernel_size: int
    sigma: float
    padding: str = "circular"
    _kernel: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        size = self.kernel_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise InterpolantError(f"kernel_size must be a positive odd integer, got {size!r}")
        if not (isinstance(self.sigma, (int, float)) and math.isfinite(self.sigma)
                and self.sigma > 0):
            raise InterpolantError(f"sigma must be a positive number, got {self.sigma!r}")
        if self.padding not in ("circular", "zeros"):
            raise InterpolantError(f"padding must be 'circular' or 'zeros', got {self.padding!r}")
        r = size // 2
        k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / self.sigma) ** 2)
        object.__setattr__(self, "_kernel", k / k.sum())

    def _blur(self, x: Tensor, what: str) -> Tensor:
        dims, r = _signal_dims(x, what), self.kernel_size // 2
        sizes = x.shape[-dims:]
        if self.padding == "circular" and r >= min(sizes):
            raise InterpolantError(
                f"kernel_size {self.kernel_size} is too large for a circular blur of size "
                f"{tuple(sizes)}; use a kernel below {2 * min(sizes)}"
            )
        k = self._kernel.to(x)
        if dims == 1:
            z, weight, conv = x[:, None, :], k.view(1, 1, -1), F.conv1d
        else:
            z, weight, conv = x.reshape(-1, 1, *sizes), torch.outer(k, k)[None, None], F.conv2d
        if self.padding == "circular":
            z = F.pad(z, (r, r) * dims, mode="circular")
            return conv(z, weight).view_as(x)
        return conv(z, weight, padding=r).view_as(x)

    def forward(self, x: Tensor) -> Tensor:
        return self._blur(x, "x")

    def adjoint(self, y: Tensor) -> Tensor:
        return self._blur(y, "the measurement")  # symmetric kernel: A^T = A

    def input_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        return tuple(y_shape)

    def gram_apply(self, v: Tensor, fn: Spectral) -> Tensor:
        if self.padding != "circular":
            return super().gram_apply(v, fn)
        dims = _signal_dims(v, "the measurement")
        sizes = v.shape[-dims:]
        spectra = [self._spectrum(n) for n in sizes]
        e = spectra[0] if dims == 1 else torch.outer(spectra[0], spectra[1])
        if dims == 1:
            return torch.fft.ifft(torch.fft.fft(v) * fn(e).to(v.device)).real.to(v.dtype)
        return torch.fft.ifft2(torch.fft.fft2(v) * fn(e).to(v.device)).real.to(v.dtype)

    def _spectrum(self, n: int) -> Tensor:
        """``|K^|^2`` of the kernel wrapped onto a circle of ``n`` points (float64)."""
        r = self.kernel_size // 2
        wrapped = torch.zeros(n, dtype=torch.float64)
        wrapped.index_add_(0, torch.arange(-r, r + 1) % n, self._kernel)
        return torch.fft.fft(wrapped).abs() ** 2
