"""DiffuSSM: a diffusion backbone without attention (Yan et al. 2024, "Diffusion Models Without
Attention"): the DiT's attention is replaced by a gated bidirectional state-space model over the
raster-ordered patch tokens, so the cost grows linearly, not quadratically, with the tokens.

Diagonal state-space layer (S4D, Gu et al. 2022, real diagonal ``A``), per channel ``c`` with
``N`` states, discretised by zero-order hold with step ``Delta_c``:

    s_k = abar * s_{k-1} + Bbar * u_k,   y_k = C . s_k + D u_k,
    abar_n = exp(Delta A_n),  Bbar_n = (abar_n - 1) / A_n * B_n,  A_n = -exp(log_A_n) < 0,

which unrolls to the causal convolution ``y_k = sum_{j<=k} K_{k-j} u_j + D u_k`` with kernel
``K_m = sum_n C_n Bbar_n abar_n^m``; :meth:`DiagonalSSM.forward` uses the kernel (the short
sequences here make the dense Toeplitz product cheapest), :meth:`DiagonalSSM.recurrence` the
scan. The gated bidirectional block (the paper's figure 2, without its hourglass resampling):

    u = W_u h;  y = SSM_fwd(u) + flip(SSM_bwd(flip(u)));  out = W_o (y * SiLU(W_g h)).

:class:`DiffuSSM` is the DiT (adaLN-Zero blocks, patches, time and label embedding) with this
block in place of every attention.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .dit import DiT

__all__ = ["BiSSM", "DiagonalSSM", "DiffuSSM"]


class DiagonalSSM(nn.Module):
    """S4D-Real layer ``(B, L, channels) -> (B, L, channels)``, causal along ``L``."""

    def __init__(self, channels: int, state: int = 16, dt_min: float = 0.01,
                 dt_max: float = 0.5) -> None:
        super().__init__()
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.log_a = nn.Parameter(torch.log(0.5 + torch.arange(state).float()).repeat(
            channels, 1))  # S4D-Real: A_n = -(n + 1/2)
        self.b = nn.Parameter(torch.ones(channels, state))
        self.c = nn.Parameter(torch.randn(channels, state) / math.sqrt(state))
        self.d = nn.Parameter(torch.ones(channels))

    def discretised(self) -> tuple[Tensor, Tensor]:
        """``(abar, Bbar)``, each ``(channels, state)``: zero-order hold with step ``Delta``."""
        a = -torch.exp(self.log_a)
        abar = torch.exp(torch.exp(self.log_dt)[:, None] * a)
        return abar, (abar - 1) / a * self.b

    def kernel(self, length: int) -> Tensor:
        """``K_m = sum_n C_n Bbar_n abar_n^m`` for ``m = 0 .. length - 1``: ``(channels, L)``."""
        abar, bbar = self.discretised()
        m = torch.arange(length, dtype=abar.dtype, device=abar.device)
        powers = torch.exp(m[None, None, :] * torch.log(abar)[:, :, None])  # (C, N, L)
        return torch.einsum("cn,cnl->cl", self.c * bbar, powers)

    def forward(self, u: Tensor) -> Tensor:
        length = u.shape[1]
        k = self.kernel(length).to(u.dtype)
        lag = torch.arange(length, device=u.device)
        lag = lag[:, None] - lag[None, :]  # (L_out, L_in): k - j
        toeplitz = k[:, lag.clamp(min=0)] * (lag >= 0).to(u.dtype)  # (C, L, L), causal
        return torch.einsum("ckj,bjc->bkc", toeplitz, u) + self.d.to(u.dtype) * u

    def recurrence(self, u: Tensor) -> Tensor:
        """The same output by the scan ``s_k = abar s_{k-1} + Bbar u_k`` (a reference)."""
        abar, bbar = (v.to(u.dtype) for v in self.discretised())
        s = torch.zeros(u.shape[0], *abar.shape, dtype=u.dtype, device=u.device)
        out = []
        for k in range(u.shape[1]):
            s = abar * s + bbar * u[:, k, :, None]
            out.append((s * self.c.to(u.dtype)).sum(-1) + self.d.to(u.dtype) * u[:, k])
        return torch.stack(out, dim=1)


class BiSSM(nn.Module):
    """The gated bidirectional SSM block ``(B, L, D) -> (B, L, D)`` (module docstring)."""

    def __init__(self, hidden: int, state: int = 16) -> None:
        super().__init__()
        self.w_u = nn.Linear(hidden, hidden)
        self.w_g = nn.Linear(hidden, hidden)
        self.w_o = nn.Linear(hidden, hidden)
        self.forward_ssm = DiagonalSSM(hidden, state)
        self.backward_ssm = DiagonalSSM(hidden, state)

    def forward(self, h: Tensor) -> Tensor:
        u = self.w_u(h)
        y = self.forward_ssm(u) + self.backward_ssm(u.flip(1)).flip(1)
        return self.w_o(y * F.silu(self.w_g(h)))


class DiffuSSM(DiT):
    """The :class:`interpolant.models.DiT` with a :class:`BiSSM` (``state`` states per
    channel) in place of the attention of every block; ``heads`` is unused."""

    arch = "diffussm"

    def __init__(self, in_channels: int = 1, image_size: int = 8, patch_size: int = 2,
                 hidden: int = 128, depth: int = 4, num_classes: int | None = None,
                 mlp_ratio: float = 4.0, out_channels: int | None = None,
                 state: int = 16) -> None:
        super().__init__(in_channels, image_size, patch_size, hidden, depth, 1, num_classes,
                         mlp_ratio, out_channels)
        self._store_config(in_channels=in_channels, image_size=image_size,
                           patch_size=patch_size, hidden=hidden, depth=depth,
                           num_classes=num_classes, mlp_ratio=mlp_ratio,
                           out_channels=out_channels, state=state)
        for block in self.blocks:
            block.attn = BiSSM(hidden, state)
            for linear in (block.attn.w_u, block.attn.w_g, block.attn.w_o):  # DiT's init
                nn.init.xavier_uniform_(linear.weight)
                nn.init.zeros_(linear.bias)
