"""The Gaussian-uniform duality of Duo (Sahoo et al. 2025, "The Diffusion Duality").

Diffuse the one-hot vector of a token with a Gaussian path, ``w_t = a_t e_{x_0} + s_t eps``,
``eps ~ N(0, I_K)``. Then ``argmax(w_t)`` is exactly the uniform-state process of
:class:`~.processes.Uniform`: it is ``x_0`` with probability

    P(nu) = int phi(z - nu) Phi(z)^(K - 1) dz,      nu = a_t / s_t,

and every other token with probability ``(1 - P) / (K - 1)`` by symmetry, i.e.
``Cat(alpha e_{x_0} + (1 - alpha) / K)`` with

    alpha = (K P(nu) - 1) / (K - 1)                 (alpha = 0 at nu = 0, -> 1 as nu -> inf).

``duo_alpha`` evaluates this on a fine float64 grid in ``z`` (trapezoid rule over
``nu +- 12``, where ``phi`` is below ``1e-31``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InterpolantError

__all__ = ["argmax_tokens", "duo_alpha"]


def duo_alpha(nu: Tensor | float, num_tokens: int, points: int = 4001) -> Tensor:
    """``alpha`` of the uniform process that ``argmax`` of the Gaussian path induces, float64."""
    if num_tokens < 2:
        raise InterpolantError(f"num_tokens must be >= 2, got {num_tokens}")
    nu = torch.as_tensor(nu, dtype=torch.float64)
    if bool((nu < 0).any()):
        raise InterpolantError("nu = a_t / s_t must be non-negative")
    offsets = torch.linspace(-12.0, 12.0, points, dtype=torch.float64)
    z = nu[..., None] + offsets  # centred on the peak of phi(z - nu)
    phi = torch.exp(-0.5 * offsets**2) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * torch.special.erfc(-z / math.sqrt(2))
    p = torch.trapezoid(phi * big_phi ** (num_tokens - 1), z, dim=-1)
    return (num_tokens * p - 1.0) / (num_tokens - 1)


def argmax_tokens(
    x0: Tensor, a: float, s: float, num_tokens: int, generator: torch.Generator | None
) -> Tensor:
    """``argmax(a e_{x_0} + s eps)`` per position: a draw of the Gaussian side, read as tokens."""
    w = s * torch.randn(*x0.shape, num_tokens, dtype=torch.float64, generator=generator)
    return (w + a * torch.nn.functional.one_hot(x0, num_tokens)).argmax(-1)
