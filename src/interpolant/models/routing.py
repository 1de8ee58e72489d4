"""Routing denoising tasks (noise levels) through a DiT: DTR and Switch-DiT.

DTR, "Denoising Task Routing for Diffusion Models" (Park et al. 2024): every block sees only a
window of ``C_beta = round(beta C)`` of the ``C`` channels, a fixed (parameter-free) mask that
slides with the time,

    o(t) = floor((C - C_beta) t^alpha),   m_c(t) = 1 if o(t) <= c < o(t) + C_beta else 0,
    h <- h + f(m(t) * h)                  (the block's residual branch reads the window only)

so adjacent times share most channels (task affinity), and with ``alpha > 1`` the window moves
faster at high noise, where adjacent tasks share fewer channels (more task-specific capacity
for the early, structural denoising steps). ``t = 1`` is the noise end, the paper's ``t = T``.

Switch-DiT, "Switch Diffusion Transformer: Synergizing Denoising Tasks with Sparse
Mixture-of-Experts" (Park et al. 2024): the MLP of every block becomes a shared expert plus
``experts`` experts of which the ``top_k`` with the largest gate are used, the gate a function
of the time alone,

    g(t) = softmax(W e(t)),  G_e = g_e / sum_{top-k} g  on the top-k experts (0 elsewhere),
    MLP(x) = shared(x) + sum_e G_e(t) expert_e(x).

The experts are computed densely and weighted (exactly sparse in value and gradient, not in
compute; the nets here are tiny).

Switch-DiT's diffusion prior loss (:func:`diffusion_prior_loss`, :meth:`SwitchDiT.prior_loss`)
shapes the gates over time with DTR's prior: the ``U = depth * experts`` gate units of all
blocks get the sliding window ``P(t) = dtr_mask(t, U, top_k / experts, alpha)`` of
``depth * top_k`` active units, so nearby times share units and distant ones do not. The
units of the gates are matched to the prior's by the Hungarian assignment ``pi`` minimising
``sum_t |Q(t)_i - P(t)_pi(i)|`` on a grid of times (``Q`` the 0/1 top-k choices), and

    L_prior = mean_b JSD( p(t_b) / depth || P(t_b)_pi / (depth * top_k) ),

``p`` the full softmax gates of the blocks side by side (each block's sums to 1). It is zero
exactly when every block puts ``1 / top_k`` on its matched prior units (the official code,
github.com/byeongjun-park/Switch-DiT, models/DiT/models.py ``DiffusionPrior``, weight 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .dit import DiT, _AdaLNZeroBlock
from .embeddings import sinusoidal_embedding

__all__ = ["DTRDiT", "SwitchDiT", "SwitchMLP", "diffusion_prior_loss", "dtr_mask",
           "jensen_shannon", "switch_gates"]


def dtr_mask(t: Tensor, channels: int, beta: float = 0.8, alpha: float = 4.0) -> Tensor:
    """DTR's channel masks ``(B, channels)`` of 0/1 in ``t``'s dtype (module docstring)."""
    active = max(1, round(beta * channels))
    offset = torch.floor((channels - active) * t.to(torch.float64).clamp(0, 1) ** alpha)
    c = torch.arange(channels, dtype=torch.float64, device=t.device)
    inside = (c >= offset[:, None]) & (c < offset[:, None] + active)
    return inside.to(t.dtype)


class DTRDiT(DiT):
    """A :class:`interpolant.models.DiT` whose blocks are routed by DTR's masks; ``beta`` is the
    active share of the channels, ``alpha`` the speed-up of the window at high noise. No new
    parameters: the state dict is the DiT's."""

    arch = "dtr"

    def __init__(self, in_channels: int = 1, image_size: int = 8, patch_size: int = 2,
                 hidden: int = 128, depth: int = 4, heads: int = 4,
                 num_classes: int | None = None, mlp_ratio: float = 4.0,
                 out_channels: int | None = None, beta: float = 0.8, alpha: float = 4.0) -> None:
        super().__init__(in_channels, image_size, patch_size, hidden, depth, heads, num_classes,
                         mlp_ratio, out_channels)
        self.config.update(beta=beta, alpha=alpha)
        self.beta, self.alpha = beta, alpha

    def run_blocks(self, h: Tensor, c: Tensor, t: Tensor) -> Tensor:
        m = dtr_mask(t, h.shape[-1], self.beta, self.alpha)[:, None, :]
        for block in self.blocks:
            h = block(m * h, c) + (1 - m) * h  # = h + f(m h): block(y) = y + f(y)
        return h


def switch_gates(logits: Tensor, top_k: int) -> Tensor:
    """Softmax gates kept on the ``top_k`` largest and renormalised to sum to 1 (rows)."""
    g = logits.softmax(dim=-1)
    top = g.topk(top_k, dim=-1)
    kept = torch.zeros_like(g).scatter(-1, top.indices, top.values)
    return kept / kept.sum(dim=-1, keepdim=True)


def jensen_shannon(p: Tensor, q: Tensor) -> Tensor:
    """Rows' Jensen-Shannon divergence ``(KL(p || m) + KL(q || m)) / 2``, ``m = (p + q) / 2``,
    in nats (``0 log 0 = 0``)."""
    m = (p + q) / 2
    kl = lambda a: (torch.xlogy(a, a) - torch.xlogy(a, m)).sum(-1)  # noqa: E731
    return (kl(p) + kl(q)) / 2


def diffusion_prior_loss(probs: Tensor, t: Tensor, grid_probs: Tensor, grid_t: Tensor,
                         depth: int, top_k: int, alpha: float = 4.0) -> Tensor:
    """Switch-DiT's diffusion prior loss (module docstring) of the gates ``probs (B, U)`` at
    times ``t``; ``grid_probs (G, U)`` at ``grid_t`` choose the matching of units."""
    units = probs.shape[-1]
    experts = units // depth
    prior = lambda s: dtr_mask(s, units, top_k / experts, alpha).to(probs)  # noqa: E731
    with torch.no_grad():
        g = grid_probs.view(len(grid_t), depth, experts)
        top = torch.zeros_like(g).scatter(-1, g.topk(top_k, dim=-1).indices, 1.0).flatten(1)
        cost = (top[:, :, None] - prior(grid_t)[:, None, :]).abs().sum(0)
        from ..training.couplings import assignment

        match = assignment(cost).to(probs.device)
    target = prior(t)[:, match]
    return jensen_shannon(probs / depth, target / target.sum(-1, keepdim=True)).mean()


def _mlp(hidden: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, width), nn.GELU(approximate="tanh"),
                         nn.Linear(width, hidden))


class SwitchMLP(nn.Module):
    """``shared(x) + sum_e G_e expert_e(x)`` for tokens ``(B, N, hidden)`` and gates ``(B, E)``."""

    def __init__(self, hidden: int, width: int, experts: int) -> None:
        super().__init__()
        self.shared = _mlp(hidden, width)
        self.experts = nn.ModuleList(_mlp(hidden, width) for _ in range(experts))

    def forward(self, x: Tensor, gates: Tensor) -> Tensor:
        out = self.shared(x)
        for e, expert in enumerate(self.experts):
            out = out + gates[:, e, None, None] * expert(x)
        return out


class _SwitchBlock(_AdaLNZeroBlock):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float, experts: int) -> None:
        super().__init__(hidden, heads, mlp_ratio)
        self.mlp = SwitchMLP(hidden, max(1, int(hidden * mlp_ratio) // 2), experts)

    def forward(self, h: Tensor, c: Tensor, gates: Tensor) -> Tensor:  # type: ignore[override]
        b1, g1, a1, b2, g2, a2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        h = h + a1 * self.attn(self.norm1(h) * (1 + g1) + b1)
        return h + a2 * self.mlp(self.norm2(h) * (1 + g2) + b2, gates)


class SwitchDiT(DiT):
    """A :class:`interpolant.models.DiT` with Switch-DiT's time-gated sparse mixture of experts
    in every block (``experts`` experts, ``top_k`` used, each expert and the shared one of
    width ``hidden * mlp_ratio / 2``); each block has its own gate ``W e(t)``."""

    arch = "switch-dit"

    def __init__(self, in_channels: int = 1, image_size: int = 8, patch_size: int = 2,
                 hidden: int = 128, depth: int = 4, heads: int = 4,
                 num_classes: int | None = None, mlp_ratio: float = 4.0,
                 out_channels: int | None = None, experts: int = 4, top_k: int = 2) -> None:
        if not 1 <= top_k <= experts:
            from ..errors import InterpolantError

            raise InterpolantError(f"Switch-DiT needs 1 <= top_k <= experts, got top_k={top_k}, "
                                   f"experts={experts}")
        super().__init__(in_channels, image_size, patch_size, hidden, 0, heads, num_classes,
                         mlp_ratio, out_channels)
        self.config.update(depth=depth, experts=experts, top_k=top_k)
        self.top_k, self.freq_dim = top_k, 64
        self.blocks = nn.ModuleList(_SwitchBlock(hidden, heads, mlp_ratio, experts)
                                    for _ in range(depth))
        self.gates = nn.ModuleList(nn.Linear(self.freq_dim, experts) for _ in range(depth))
        for module in [*self.blocks.modules(), *self.gates]:  # DiT's initialisation
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            nn.init.zeros_(block.modulation.weight)
            nn.init.zeros_(block.modulation.bias)

    def gate_logits(self, t: Tensor) -> list[Tensor]:
        """Each block's gate logits ``W e(t)`` ``(B, experts)``, functions of ``t`` alone."""
        e = sinusoidal_embedding(t, self.freq_dim) / math.sqrt(self.freq_dim / 2)
        return [gate(e) for gate in self.gates]

    def block_gates(self, t: Tensor) -> list[Tensor]:
        """Each block's gates ``(B, experts)``, functions of ``t`` alone."""
        return [switch_gates(logits, self.top_k) for logits in self.gate_logits(t)]

    def prior_loss(self, t: Tensor, grid: int = 64, alpha: float = 4.0) -> Tensor:
        """Switch-DiT's diffusion prior loss of the gates at ``t`` (module docstring), the
        units matched on ``grid`` evenly spaced times of [0, 1]."""
        s = torch.linspace(0, 1, grid, dtype=t.dtype, device=t.device)
        probs = lambda u: torch.cat([g.softmax(-1) for g in self.gate_logits(u)], -1)  # noqa
        with torch.no_grad():
            grid_probs = probs(s)
        return diffusion_prior_loss(probs(t), t, grid_probs, s, len(self.gates), self.top_k,
                                    alpha)

    def run_blocks(self, h: Tensor, c: Tensor, t: Tensor) -> Tensor:
        for block, gates in zip(self.blocks, self.block_gates(t)):
            h = block(h, c, gates)
        return h
