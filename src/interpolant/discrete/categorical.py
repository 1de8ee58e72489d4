"""Categorical draws by Gumbel-max, in float64 by default.

    x = argmax_j (log p_j + g_j),   g_j = -log(-log u_j),   u_j ~ U(0, 1)

(Gumbel 1954; the form used by MDLM and MD4 samplers.) Zheng et al. 2024 ("Masked diffusion
models are secretly time-agnostic masked models and exploit inaccurate categorical sampling")
show that in float32 this lowers the sampling temperature: ``torch.rand`` in float32 returns
multiples of ``2^-24``, so ``-log u >= 2^-24`` and ``g <= -log(2^-24) ~ 16.6``; a category
whose probability is below about ``2^-24`` times the leader's can (almost) never win, and one
just above that is under-drawn. The tail of the law is cut and diversity (entropy) drops. In
float64 the grid is ``2^-53`` and the effect is gone at any realistic vocabulary size.
:func:`categorical` takes ``dtype`` so the effect can be shown (see the tests), and the
library always samples with its float64 default.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InterpolantError

__all__ = ["categorical", "gumbel_from_uniform", "gumbel_noise", "tail_factor"]


def gumbel_noise(
    shape: tuple[int, ...], generator: torch.Generator | None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Standard Gumbel noise ``-log(-log u)`` computed in ``dtype`` from uniforms in ``dtype``."""
    return gumbel_from_uniform(torch.rand(shape, dtype=dtype, generator=generator))


def categorical(
    probs: Tensor, generator: torch.Generator | None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """One int64 draw per row of ``probs (..., N)`` (non-negative, rows need not be normalised).

    Gumbel-max in ``dtype`` (float64 unless you are reproducing the float32 effect).
    """
    if not isinstance(probs, Tensor) or not probs.is_floating_point() or probs.ndim < 1:
        raise InterpolantError("probs must be a floating tensor of shape (..., N)")
    if bool((probs < 0).any()) or not bool(torch.isfinite(probs).all()):
        raise InterpolantError("probs must be finite and non-negative")
    if bool((probs.sum(-1) <= 0).any()):
        raise InterpolantError("every row of probs needs positive mass")
    logp = torch.log(probs.to(dtype))
    return (logp + gumbel_noise(tuple(probs.shape), generator, dtype)).argmax(-1)


_GRID_BITS = {torch.float16: 11, torch.bfloat16: 8, torch.float32: 24}


def tail_factor(ratio: Tensor | float, dtype: torch.dtype = torch.float32) -> Tensor:
    """How much Gumbel-max in ``dtype`` under-draws a category of probability ``ratio`` times
    its leader's: ``P_dtype(it beats the leader) / P_exact``, ``P_exact = r / (1 + r)``.

    Exact in the category's noise: every uniform ``u = k 2^-b`` that ``torch.rand`` can return
    in ``dtype`` (``b`` = 11 for float16, 8 for bfloat16, 24 for float32) is enumerated and
    ``g(u) = -log(-log u)`` computed in ``dtype``; the leader's Gumbel is taken as exact:

        P_dtype = 2^-b sum_k exp(-exp(-(g(u_k) + log r))).

    Grid points with ``g + log r_max < -4`` are skipped (each term is below ``exp(-e^4)``,
    about ``2e-24``); ``r`` above ``1e-2`` raises.
    """
    if dtype not in _GRID_BITS:
        raise InterpolantError(f"tail_factor enumerates float16, bfloat16 or float32, not {dtype}")
    r = torch.as_tensor(ratio, dtype=torch.float64).reshape(-1)
    if not bool(((r > 0) & (r <= 1e-2)).all()):
        raise InterpolantError("tail_factor needs ratios in (0, 1e-2]")
    bits = _GRID_BITS[dtype]
    cut = -4.0 - float(torch.log(r.max()))  # keep g >= cut, i.e. u >= exp(-exp(-cut))
    first = max(1, math.floor(math.exp(-math.exp(-cut)) * 2**bits) - 1)
    k = torch.arange(first, 2**bits, dtype=torch.float64)
    g = gumbel_from_uniform((k * 2.0**-bits).to(dtype)).to(torch.float64)
    g = g[g >= cut]
    win = torch.exp(-torch.exp(-(g[None, :] + torch.log(r)[:, None]))).sum(1) * 2.0**-bits
    return win / (r / (1.0 + r))


def gumbel_from_uniform(u: Tensor) -> Tensor:
    """``-log(-log u)`` in ``u``'s dtype (the arithmetic :func:`gumbel_noise` does)."""
    return -torch.log(-torch.log(u))
