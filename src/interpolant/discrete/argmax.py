"""Argmax Flows and Multinomial Diffusion (Hoogeboom et al. 2021).

**Multinomial diffusion** is the discrete-time uniform process,
``q(x_t | x_{t-1}) = Cat((1 - beta_t) x_{t-1} + beta_t / K)``, whose posterior has the closed
form (their eq. 9-10), with ``a_t = alpha_t / alpha_s`` the keep probability from ``s`` to ``t``:

    theta(x_t, x_0) = [a_t x_t + (1 - a_t)/K] * [alpha_s x_0 + (1 - alpha_s)/K]
    q(x_s | x_t, x_0) = Cat(theta / sum theta)

:func:`multinomial_posterior` writes that formula; :class:`~.processes.Uniform` computes the
same posterior from its transition matrices (tested equal).

**Argmax Flows** model tokens through a continuous variable ``v in R^K`` per position with
``x = argmax v``: a continuous generative model (any Gaussian path of the library) learns
``p(v)`` on dequantized data, and ``log P(x) >= E_{q(v|x)}[log p(v) - log q(v|x)]``. The
dequantizer is the paper's thresholding: for ``x = k`` and ``u ~ N(0, I)``,

    v_k = u_k,   v_j = v_k - softplus(v_k - u_j)  (j != k),
    log q(v | x) = log N(u; 0, I) - sum_{j != k} log sigmoid(u_k - u_j),

since ``dv_j/du_j = sigmoid(u_k - u_j)`` and the Jacobian is triangular; every ``v_j < v_k``,
so ``argmax v = x`` exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from ..errors import InterpolantError
from .processes import check_tokens

__all__ = ["argmax_dequantize", "argmax_elbo", "argmax_quantize", "multinomial_posterior",
           "thresholding_inverse"]


def multinomial_posterior(x_t: Tensor, x0: Tensor, alpha_s: float, alpha_t: float,
                          num_tokens: int) -> Tensor:
    """``(B, L, K)``: ``q(x_s | x_t, x_0)`` of multinomial diffusion (module docstring), for
    ``alpha_t <= alpha_s`` the probabilities of keeping a token from 0 to ``t`` and ``s``."""
    if not 0.0 <= alpha_t <= alpha_s <= 1.0:
        raise InterpolantError(f"need 0 <= alpha_t <= alpha_s <= 1, got {alpha_t}, {alpha_s}")
    k = num_tokens
    check_tokens(x_t, k, "x_t")
    check_tokens(x0, k, "x0")
    a = alpha_t / alpha_s if alpha_s > 0 else 1.0
    one_t = F.one_hot(x_t, k).to(torch.float64)
    one_0 = F.one_hot(x0, k).to(torch.float64)
    theta = (a * one_t + (1 - a) / k) * (alpha_s * one_0 + (1 - alpha_s) / k)
    return theta / theta.sum(-1, keepdim=True)


def argmax_dequantize(tokens: Tensor, num_tokens: int, generator: torch.Generator | None = None
                      ) -> tuple[Tensor, Tensor]:
    """``(v, log_q)``: thresholded continuous values ``(B, L, K)`` with ``argmax v = tokens``
    and their log-density ``log q(v | x)`` summed per sequence ``(B,)`` (module docstring)."""
    check_tokens(tokens, num_tokens, "tokens")
    u = torch.randn((*tokens.shape, num_tokens), generator=generator, dtype=torch.float64)
    v, log_det = _threshold(u, tokens)
    log_normal = -0.5 * (u ** 2).sum(-1) - 0.5 * num_tokens * math.log(2 * math.pi)
    return v, (log_normal - log_det).sum(-1)


def _threshold(u: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
    """``v`` and ``log |det dv/du|`` per position."""
    top = u.gather(-1, tokens[..., None])  # u_k
    others = F.one_hot(tokens, u.shape[-1]).to(torch.bool).logical_not()
    v = torch.where(others, top - F.softplus(top - u), u)
    log_det = torch.where(others, F.logsigmoid(top - u), torch.zeros_like(u)).sum(-1)
    return v, log_det


def thresholding_inverse(v: Tensor) -> Tensor:
    """``u`` from ``v``: ``u_k = v_k``, ``u_j = v_k - log(expm1(v_k - v_j))`` (the inverse of
    the thresholding, ``k = argmax v``)."""
    tokens = v.argmax(-1)
    top = v.gather(-1, tokens[..., None])
    gap = (top - v).clamp_min(1e-300)
    u = top - torch.log(torch.expm1(gap))
    return torch.where(F.one_hot(tokens, v.shape[-1]).to(torch.bool), v, u)


def argmax_quantize(v: Tensor) -> Tensor:
    """Tokens ``argmax v`` of continuous values ``(B, L, K)`` (the model's samples)."""
    if v.ndim != 3:
        raise InterpolantError(f"argmax values have shape (B, L, K), got {tuple(v.shape)}")
    return v.argmax(-1)


def argmax_elbo(log_p_v: Tensor, log_q: Tensor) -> Tensor:
    """``log p(v) - log q(v | x)`` per sequence: a one-sample lower bound on ``log P(x)``."""
    return log_p_v - log_q
