"""Aggregating an ensemble of trained denoisers, after AFA ("Ensembling Diffusion Models via
Adaptive Feature Aggregation", 2024): frozen networks of one prediction target are fused by a
small trainable aggregator that decides, per noise level, how much to trust each.

AFA fuses the members' block-wise U-Net features with a spatial-aware aggregator (per
location, prompt, noise and step); this is the same idea at the output, where every network
here has an interface in common, and by time alone:

    out(x, t, c) = sum_m w_m(t) f_m(x, t, c),   w(t) = softmax(A(e(t))),

``e`` the sinusoidal time features and ``A`` a SiLU MLP whose last layer starts at zero, so the
untrained aggregate is the plain average. The outputs of every prediction target are affine in
``x0`` given ``x_t`` with coefficients shared by the members, so a convex combination of the
members' outputs is the same combination of their ``x0`` estimates: averaging exact denoisers
stays exact, and the error of the combination is at most the combined error (convexity),
``|sum w_m e_m|^2 <= sum w_m |e_m|^2``, about ``1/M`` of it for ``M`` independent errors.
Training the aggregator with the ordinary denoising loss moves the weights, at each time, to
the members that are better there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from .base import zero_init
from .embeddings import sinusoidal_embedding

__all__ = ["Aggregate"]


class Aggregate(nn.Module):
    """``Aggregate(members, freq_dim=32, hidden=64)``: a network ``model(x, t, cond=None)``
    that combines frozen ``members`` (networks of one prediction target) with learned weights
    per time; only the aggregator trains. :meth:`weights` gives ``w(t)``, ``(B, M)``."""

    def __init__(self, members: Sequence[Callable[..., Tensor]], freq_dim: int = 32,
                 hidden: int = 64) -> None:
        super().__init__()
        if len(members) < 2:
            raise InterpolantError(f"an ensemble needs at least two members, got {len(members)}")
        self.members = list(members)
        self.frozen = nn.ModuleList(m for m in members if isinstance(m, nn.Module))
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        self.freq_dim = freq_dim
        self.aggregator = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(),
                                        zero_init(nn.Linear(hidden, len(members))))

    def weights(self, t: Tensor) -> Tensor:
        """The members' weights ``softmax(A(e(t)))`` at each time, ``(B, M)``."""
        param = self.aggregator[0].weight
        return self.aggregator(sinusoidal_embedding(t.to(param.dtype), self.freq_dim)).softmax(-1)

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        w = self.weights(t).to(x.dtype)
        with torch.no_grad():
            outs = [m(x, t) if cond is None else m(x, t, cond) for m in self.members]
        out = torch.zeros_like(x)
        for m, o in enumerate(outs):
            out = out + w[:, m].reshape(-1, *[1] * (x.ndim - 1)) * o.to(x.dtype)
        return out
