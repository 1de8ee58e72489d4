"""Switch-DiT's diffusion prior loss as a training objective (Park et al. 2024, "Switch
Diffusion Transformer: Synergizing Denoising Tasks with Sparse Mixture-of-Experts"):

    L = L_diffusion + lambda * L_prior,

``L_prior`` the Jensen-Shannon divergence of the blocks' gates at the batch's times from DTR's
sliding-window prior over the gate units, after matching units to the prior by the Hungarian
assignment (:func:`interpolant.models.routing.diffusion_prior_loss`, where the formula is).
It pulls the gates of nearby times onto shared experts and those of distant times apart;
``lambda = 1`` is the official configuration's ``w_JSD``. The gates are functions of the time
alone, so the prior term costs one small linear layer per block, not a network pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError

__all__ = ["SwitchPrior"]


def _unwrap(net: nn.Module) -> nn.Module:
    return getattr(net, "module", net)  # DistributedDataParallel keeps the network as .module


class SwitchPrior(nn.Module):
    """``SwitchPrior(base, net, weight=1.0, grid=64)``: ``base``'s loss plus ``weight`` times the
    diffusion prior loss of ``net`` (a :class:`interpolant.models.SwitchDiT`), its units matched
    on ``grid`` evenly spaced times."""

    def __init__(self, base: Callable[..., Tensor], net: nn.Module, weight: float = 1.0,
                 grid: int = 64) -> None:
        super().__init__()
        if not callable(getattr(_unwrap(net), "prior_loss", None)):
            raise InterpolantError("the Switch-DiT prior loss needs the switch-dit network "
                                   f"(it gates experts by time), got {type(_unwrap(net)).__name__}"
                                   "; use --model switch-dit")
        if not weight >= 0 or not (isinstance(grid, int) and grid >= 2):
            raise InterpolantError(f"the Switch-DiT prior loss needs weight >= 0 and an integer "
                                   f"grid >= 2, got weight = {weight}, grid = {grid!r}")
        self.base, self.weight, self.grid = base, float(weight), grid

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.base.sample_time(n, generator)

    def forward(self, net: nn.Module, x0: Tensor, noise: Tensor, t: Tensor,
                cond: Any = None) -> Tensor:
        """``L_diffusion + lambda * L_prior`` (module docstring)."""
        model = _unwrap(net)
        dtype = next(model.gates.parameters()).dtype
        prior = model.prior_loss(t.to(device=x0.device, dtype=dtype), self.grid)
        self.last_prior = float(prior.detach())
        return self.base(net, x0, noise, t, cond) + self.weight * prior

    def __repr__(self) -> str:
        return f"SwitchPrior({self.base!r}, weight={self.weight})"
