"""Binary Diffusion (Kinakh et al. 2024, "Tabular data generation using Binary Diffusion").

Rows are turned losslessly into bit vectors (:class:`TabularBits`), corrupted by XOR with
Bernoulli flips and denoised by a network trained with binary cross-entropy to predict the
flips:

    x_t = x_0 xor z,   z_i ~ Bernoulli(p_t),   p_t = (1 - alpha(t)) / 2 in [0, 1/2]
    L   = E_t E_{x_0, z} sum_i BCE(f_i(x_t, t), z_i)

This forward process is :class:`~.processes.Uniform` with ``K = 2`` (a uniform draw keeps the
bit half the time), so a flip network is also a denoiser of that process:
``p(x_0^i = 1 | x_t) = sigmoid(f_i)`` where ``x_t^i = 0`` and ``1 - sigmoid(f_i)`` where
``x_t^i = 1`` (:func:`flip_logits_to_x0`). The BCE's minimiser is the exact flip posterior
``f_i* = logit p(z_i = 1 | x_t)``, so with it every sampler of :mod:`.sampling` is exact.

The paper's own sampler (:func:`threshold_sample`) keeps the flips whose probability exceeds
1/2 and re-noises the estimate ``x0_hat`` at the next level, ``x_s = x0_hat xor
Bernoulli(p_s)``. That step forgets what ``x_t`` said beyond ``x0_hat`` (it is not the
posterior ``q(x_s | x_t, x_0)``), so even with the exact flips its output law is not the data
law: on a 4-bit test law its total variation stays far above the sampling floor, where the
ancestral sampler of :mod:`.sampling` (the exact posterior step) reaches it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ..errors import InterpolantError
from .categorical import categorical
from .processes import Uniform, check_tokens, times_of

__all__ = ["TabularBits", "flip_logits_to_x0", "flip_loss", "flip_probability",
           "threshold_sample"]


def flip_probability(process: Uniform, t: Tensor | float) -> Tensor:
    """``p_t = (1 - alpha(t)) / 2``: the probability that a bit is flipped at time ``t``."""
    _check_binary(process)
    return (1.0 - process.schedule.alpha(torch.as_tensor(t, dtype=torch.float64))) / 2.0


def _check_binary(process: object) -> None:
    if not isinstance(process, Uniform) or process.num_tokens != 2:
        raise InterpolantError("Binary Diffusion works on bits: use Uniform(schedule, "
                               "num_tokens=2)")


def flip_loss(model: Callable[..., Tensor], process: Uniform, x0: Tensor,
              generator: torch.Generator | None = None, cond: Any = None) -> Tensor:
    """Per-sequence BCE of the flip logits ``model(x_t, t, cond) (B, L)`` against the flips
    ``z`` that made ``x_t = x_0 xor z``, summed over bits, ``t ~ U[0, 1]``."""
    _check_binary(process)
    check_tokens(x0, 2, "bits")
    t = torch.rand(x0.shape[0], generator=generator, dtype=torch.float64)
    p = flip_probability(process, t)[:, None].expand(x0.shape)
    z = (torch.rand(x0.shape, generator=generator, dtype=torch.float64) < p).long()
    logits = model(x0 ^ z, t, cond)
    if logits.shape != x0.shape:
        raise InterpolantError(f"a flip network returns one logit per bit, shape "
                               f"{tuple(x0.shape)}; got {tuple(logits.shape)}")
    return F.binary_cross_entropy_with_logits(logits.to(torch.float64), z.to(torch.float64),
                                              reduction="none").sum(1)


def flip_logits_to_x0(flip_model: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """The token denoiser ``model(x_t, t, cond) -> logits (B, L, 2)`` of ``x_0`` given by a
    flip network: the logit of ``x_0^i = 1 - x_t^i`` is ``f_i``, that of ``x_0^i = x_t^i`` is 0."""

    def x0_logits(x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        f = flip_model(x_t, t, cond).to(torch.float64)
        keep = torch.zeros_like(f)
        one = torch.where(x_t == 0, f, keep)  # logit of x_0 = 1 (relative)
        zero = torch.where(x_t == 1, f, keep)  # logit of x_0 = 0
        return torch.stack([zero, one], -1)

    return x0_logits


def threshold_sample(flip_model: Callable[..., Tensor], process: Uniform, n: int,
                     length: int, steps: int, generator: torch.Generator | None = None,
                     cond: Any = None, threshold: float = 0.5) -> Tensor:
    """The paper's sampler: from uniform bits at ``t = 1``, on ``steps`` uniform times,
    ``x0_hat = x_t xor [sigmoid(f) > threshold]``, then ``x_s = x0_hat xor Bernoulli(p_s)``
    (``x0_hat`` itself at the last step). ``steps`` NFE."""
    _check_binary(process)
    x = categorical(process.prior().expand(n, length, 2), generator)
    grid = process.grid(steps)
    with torch.no_grad():
        for t, s in zip(grid[:-1].tolist(), grid[1:].tolist()):
            flips = torch.sigmoid(flip_model(x, times_of(t, n), cond)) > threshold
            x0_hat = x ^ flips.long()
            p = float(flip_probability(process, s))
            noise = (torch.rand(x.shape, generator=generator, dtype=torch.float64) < p).long()
            x = x0_hat ^ noise
    return x


class TabularBits:
    """A lossless map between table rows and fixed-size bit vectors (the paper's
    transformation for integer and categorical columns; floats keep their float32 bits).

    ``columns`` gives each column's kind: an int ``b`` for integer codes in ``[0, 2^b)``
    (categories or quantized values, ``b`` bits, most significant first) or ``"float32"``
    (the 32 bits of the IEEE value).
    """

    def __init__(self, columns: Sequence[int | str]) -> None:
        if not columns:
            raise InterpolantError("TabularBits needs at least one column")
        for c in columns:
            if c != "float32" and not (isinstance(c, int) and 1 <= c <= 62):
                raise InterpolantError(f"a column is a bit count in [1, 62] or 'float32', got "
                                       f"{c!r}")
        self.columns = list(columns)
        self.widths = [32 if c == "float32" else c for c in self.columns]
        self.num_bits = sum(self.widths)

    def encode(self, rows: Tensor) -> Tensor:
        """``(N, columns)`` rows (int64 codes, float columns as float) to int64 bits
        ``(N, num_bits)``; codes outside their range are refused."""
        if rows.ndim != 2 or rows.shape[1] != len(self.columns):
            raise InterpolantError(f"rows must have shape (N, {len(self.columns)}), got "
                                   f"{tuple(rows.shape)}")
        parts = []
        for j, (kind, width) in enumerate(zip(self.columns, self.widths)):
            if kind == "float32":
                code = rows[:, j].to(torch.float32).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
            else:
                code = rows[:, j].to(torch.int64)
                if bool((code < 0).any()) or bool((code >= 2 ** width).any()) or bool(
                        (rows[:, j] != code).any()):
                    raise InterpolantError(f"column {j} needs integer codes in [0, {2 ** width})")
            shifts = torch.arange(width - 1, -1, -1)
            parts.append((code[:, None] >> shifts) & 1)
        return torch.cat(parts, 1)

    def decode(self, bits: Tensor) -> Tensor:
        """The rows of :meth:`encode` back, float64 ``(N, columns)`` (exact for both kinds)."""
        check_tokens(bits, 2, "bits")
        if bits.shape[1] != self.num_bits:
            raise InterpolantError(f"bits must have {self.num_bits} columns, got {bits.shape[1]}")
        out, start = [], 0
        for kind, width in zip(self.columns, self.widths):
            chunk = bits[:, start: start + width]
            start += width
            code = (chunk << torch.arange(width - 1, -1, -1)).sum(1)
            if kind == "float32":
                code = torch.where(code >= 2 ** 31, code - 2 ** 32, code)
                out.append(code.to(torch.int32).view(torch.float32).to(torch.float64))
            else:
                out.append(code.to(torch.float64))
        return torch.stack(out, 1)
