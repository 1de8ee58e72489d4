"""Exponential moving average of the weights (Polyak averaging).

``ema <- beta ema + (1 - beta) theta`` after every optimizer step. ``beta`` is given either

* directly, ``decay=0.999`` (per step), or
* as a half-life in training samples, Karras-style (EDM's ``ema_halflife_kimg``; Karras et al.
  2022 and 2024): after ``halflife`` samples the contribution of the current weights has halved,
  so with ``B`` samples per step ``beta = 0.5 ** (B / halflife)``. This is independent of the
  batch size: two runs with batch ``B`` and ``2B`` weigh past *samples* alike. A half-life of
  ``h`` optimizer steps is ``halflife = h * B`` (``B`` = samples per step over all ranks).
  ``rampup`` (EDM's ``ema_rampup_ratio``, e.g. 0.05) caps the half-life at ``rampup * n`` after
  ``n`` samples, so early weights are forgotten quickly.

The average lives in float32 (or the parameter's dtype if wider); buffers are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import InterpolantError

__all__ = ["EMA"]


class EMA:
    """``EMA(model, decay=None, halflife=None, rampup=None)``; the average is :attr:`model`."""

    def __init__(self, model: nn.Module, decay: float | None = None,
                 halflife: float | None = None, rampup: float | None = None) -> None:
        if (decay is None) == (halflife is None):
            raise InterpolantError("give the EMA either decay or halflife (in samples), not both")
        if decay is not None and not 0.0 <= decay < 1.0:
            raise InterpolantError(f"EMA decay must lie in [0, 1), got {decay}")
        if halflife is not None and not halflife > 0:
            raise InterpolantError(f"EMA halflife must be positive, got {halflife}")
        if rampup is not None and not rampup > 0:
            raise InterpolantError(f"EMA rampup must be positive, got {rampup}")
        self.decay, self.halflife, self.rampup = decay, halflife, rampup
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
            if p.is_floating_point() and p.dtype in (torch.float16, torch.bfloat16):
                p.data = p.data.float()

    def beta(self, batch_samples: int, samples_seen: int) -> float:
        """The decay of one step of ``batch_samples`` after ``samples_seen`` samples in all."""
        if self.decay is not None:
            return self.decay
        halflife = float(self.halflife)  # type: ignore[arg-type]
        if self.rampup is not None:
            halflife = min(halflife, self.rampup * samples_seen)
        return 0.5 ** (batch_samples / max(halflife, 1e-8))

    @torch.no_grad()
    def update(self, model: nn.Module, batch_samples: int, samples_seen: int) -> float:
        """Blend ``model`` into the average; returns the ``beta`` used."""
        beta = self.beta(batch_samples, samples_seen)
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach().to(e.dtype), 1.0 - beta)
        for e, b in zip(self.model.buffers(), model.buffers(), strict=True):
            e.copy_(b)
        return beta

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
