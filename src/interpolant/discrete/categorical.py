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

import torch
from torch import Tensor

from ..errors import InterpolantError

__all__ = ["categorical", "gumbel_noise"]


def gumbel_noise(
    shape: tuple[int, ...], generator: torch.Generator | None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Standard Gumbel noise ``-log(-log u)`` computed in ``dtype`` from uniforms in ``dtype``."""
    u = torch.rand(shape, dtype=dtype, generator=generator)
    return -torch.log(-torch.log(u))


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
