"""Networks conditioned on discrete latent codes (DisCo-Diff, quantized adaptive conditions:
:mod:`interpolant.training.disco`, :mod:`interpolant.training.qac`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..labels import NULL_LABEL
from .embeddings import check_time
from .mlp import MLP

__all__ = ["LatentMLP"]


class LatentMLP(MLP):
    """:class:`~interpolant.models.MLP` conditioned on discrete latents instead of a label:
    ``cond`` is int64 codes ``(B, L)`` (``(B,)`` for one latent) or (relaxed) one-hots
    ``(B, L, K)``, embedded linearly (a one-hot times the table is the code's row, so gradients
    reach a Gumbel-softmax encoder) and added to the time embedding. ``NULL_LABEL`` codes (and
    all-zero one-hots) embed to 0: the unconditional branch of classifier-free guidance over the
    latents (DisCo-Diff's sampling), trained by ``DisCoObjective(drop=...)``."""

    arch = "latent-mlp"

    def __init__(self, dim: int, n_latents: int = 1, codebook: int = 8, hidden: int = 256,
                 depth: int = 4, time_dim: int = 64) -> None:
        super().__init__(dim, hidden, depth, None, time_dim)
        self._store_config(dim=dim, n_latents=n_latents, codebook=codebook, hidden=hidden,
                           depth=depth, time_dim=time_dim)
        self.n_latents, self.codebook = n_latents, codebook
        # one latent reads like a class label: guidance.CFG takes its (B,) codes
        self.num_classes = codebook if n_latents == 1 else None
        self.latent_embed = nn.Linear(n_latents * codebook, hidden, bias=False)

    def onehot(self, cond: Any, batch: int, dtype: torch.dtype) -> Tensor:
        """``cond`` as ``(B, L * K)`` one-hots."""
        shape = (batch, self.n_latents)
        if (isinstance(cond, Tensor) and cond.shape == (batch,) and self.n_latents == 1
                and not cond.is_floating_point()):
            cond = cond[:, None]
        if isinstance(cond, Tensor) and cond.shape == shape and not cond.is_floating_point():
            null = cond == NULL_LABEL
            if ((cond < 0) & ~null).any() or cond.max() >= self.codebook:
                raise InterpolantError(f"latent codes must lie in [0, {self.codebook}) or be "
                                       f"NULL_LABEL, got {int(cond.min())}..{int(cond.max())}")
            cond = nn.functional.one_hot(cond.clamp_min(0), self.codebook) * ~null[..., None]
        elif not (isinstance(cond, Tensor) and cond.shape == (*shape, self.codebook)):
            got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
            raise InterpolantError(f"LatentMLP needs cond = int64 codes {shape} or one-hots "
                                   f"{(*shape, self.codebook)}, got {got}; draw codes with "
                                   "LatentPrior.sample or DiscreteEncoder.codes")
        return cond.to(dtype).flatten(1)

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        self._check_x(x)
        t = check_time(t, x.shape[0])
        c = self.time_embed(t.to(x.dtype)) + self.latent_embed(
            self.onehot(cond, x.shape[0], x.dtype))
        c = nn.functional.silu(c)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, c)
        return self.output(nn.functional.silu(self.out_norm(h)))
