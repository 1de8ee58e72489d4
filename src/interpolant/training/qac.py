"""Learning Quantized Adaptive Conditions (QAC): a tiny encoder whose output is quantized to a
few bits conditions the denoiser, trained jointly with it and with no extra regulariser.

Liang, Tian, Yu, Tang, Hu, Fang & Chen, "Learning Quantized Adaptive Conditions for Diffusion
Models" (ECCV 2024): the condition ``c = Q(E_phi(x_0))`` of each datum lets the network's ODE
trajectories bend less (the curvature reduction
:func:`~interpolant.interpolants.latents.latent_curvature` measures for ideal codes), so
few-NFE sampling improves; at sampling time the condition is drawn from the codes of the
training data. Here ``Q`` is 1-bit scalar quantisation per dimension,
``c = sign(h)`` with the straight-through gradient ``dc/dh = 1`` (``c = h + stopgrad(sign(h) -
h)``); ``d`` bits address ``2^d`` conditions. The pieces are DisCo-Diff's with a codebook of 2
per latent: the network is :class:`~interpolant.models.latent.LatentMLP` with
``codebook=2`` (bit ``b`` as code ``(1 + c_b) / 2``) and the condition law a
:class:`~interpolant.training.disco.LatentPrior` over the bits, fitted on the encoder's codes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..paths import GaussianPath
from .objectives import Objective

__all__ = ["BinaryEncoder", "QACObjective", "bits_onehot"]


def bits_onehot(c: Tensor) -> Tensor:
    """Signs ``c`` in ``{-1, +1}`` ``(B, d)`` as one-hots ``(B, d, 2)`` of the codes ``(1 + c)
    / 2``, linear in ``c`` so a straight-through gradient reaches the encoder."""
    return torch.stack([(1 - c) / 2, (1 + c) / 2], dim=-1)


class BinaryEncoder(nn.Module):
    """``c = sign(h(x_0))`` with ``h`` an MLP from points ``(B, dim)`` to ``bits`` values;
    straight-through in the backward pass."""

    def __init__(self, dim: int, bits: int = 2, hidden: int = 32) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("bits", bits), ("hidden", hidden)):
            if not isinstance(value, int) or value < 1:
                raise InterpolantError(f"BinaryEncoder {name} must be a positive integer, "
                                       f"got {value!r}")
        self.dim, self.bits = dim, bits
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, bits))

    def pre(self, x0: Tensor) -> Tensor:
        """The unquantised ``h(x_0)``, ``(B, bits)``."""
        if x0.ndim != 2 or x0.shape[1] != self.dim:
            raise InterpolantError(f"the encoder takes points (B, {self.dim}), got "
                                   f"{tuple(x0.shape)}")
        return self.net(x0)

    def forward(self, x0: Tensor) -> Tensor:
        h = self.pre(x0)
        return h + (torch.where(h >= 0, 1.0, -1.0).to(h) - h).detach()

    @torch.no_grad()
    def codes(self, x0: Tensor) -> Tensor:
        """The bits as int64 codes ``(B, bits)`` in ``{0, 1}`` (for the prior and sampling)."""
        return (self.pre(x0) >= 0).long()


class QACObjective(nn.Module):
    """The ``Objective(path, target, density, weight)`` loss of the network conditioned on
    ``bits_onehot(encoder(x_0))``, as a :class:`~interpolant.training.Trainer` objective (the
    encoder trains and checkpoints with the network)."""

    def __init__(self, encoder: BinaryEncoder, path: GaussianPath, target: str = "eps",
                 density: Any = "uniform", weight: Any = "uniform") -> None:
        super().__init__()
        self.encoder, self.base = encoder, Objective(path, target, density, weight)

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.base.sample_time(n, generator)

    def forward(self, model: Any, x0: Tensor, noise: Tensor, t: Tensor, cond: Any = None
                ) -> Tensor:
        if cond is not None:
            raise InterpolantError("QAC conditions the network on its own quantized codes; "
                                   "train it without labels")
        return self.base(model, x0, noise, t, bits_onehot(self.encoder(x0)))
