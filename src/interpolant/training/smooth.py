"""Smooth Diffusion's step-wise variation regularisation (Guo et al. 2024, "Smooth Diffusion:
Crafting Smooth Latent Spaces in Diffusion Models").

A smooth latent space changes the output steadily with the input: the ratio of the variation
of the predicted image to the variation of the input latent should be one constant at every
training step. With the data prediction ``x0_hat(x_t, t)``, ``x_t = alpha x0 + sigma eps``, and
a random direction ``y = sigma n / sqrt(D)``, ``n ~ N(0, I)``, the variation of sample ``i`` is

    r_i = || d <x0_hat_i, y_i> / d eps_i ||  = || sigma_i J_i^T y_i ||,   J = d x0_hat / d x_t,

a running mean ``a <- a + 0.01 (mean_i r_i - a)`` tracks its level (StyleGAN2's path-length
regulariser, here over the noise), and the loss adds ``lambda mean_i (r_i - a)^2`` to the
denoising loss. The penalty is zero exactly when every sample and time has the same
variation; it changes the optimum (the exact denoiser is not smooth in this sense), trading
fidelity for smoothness by ``lambda``. ``a`` is a buffer: it is checkpointed, so a resumed run
continues exactly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..errors import InterpolantError
from ..paths import GaussianPath, broadcast_time
from ..predictions import convert
from .objectives import Objective

__all__ = ["SmoothObjective"]


class SmoothObjective(nn.Module):
    """``SmoothObjective(path, target, density, weight, lam=1.0, decay=0.01)``: the loss of
    ``Objective(path, target, density, weight)`` plus ``lam`` times the variation penalty."""

    def __init__(self, path: GaussianPath, target: str = "eps", density: Any = "uniform",
                 weight: Any = "uniform", lam: float = 1.0, decay: float = 0.01) -> None:
        super().__init__()
        if not (lam >= 0 and 0 < decay <= 1):
            raise InterpolantError(f"Smooth Diffusion needs lam >= 0 and 0 < decay <= 1, got "
                                   f"lam = {lam}, decay = {decay}")
        self.inner = Objective(path, target, density, weight)
        self.lam, self.decay = float(lam), float(decay)
        self.register_buffer("mean_variation", torch.zeros((), dtype=torch.float64))

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Training times from the inner objective's density."""
        return self.inner.sample_time(n, generator)

    def variations(self, net: Any, x0: Tensor, noise: Tensor, t: Tensor, cond: Any = None,
                   direction: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(per-sample loss, r)``: the denoising loss and the variations ``r_i`` (with a
        graph for both); ``direction`` is ``n`` (default: fresh ``N(0, I)``)."""
        noise = noise.detach().requires_grad_(True)
        # the penalty differentiates a gradient: attention must use the math kernel, the only
        # one with a second derivative on every device
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
            x_t, out = self.inner.outputs(net, x0, noise, t, cond)
            loss = self.inner.loss_of(out, x0, noise, t)
            tt = t.to(device=x0.device, dtype=x0.dtype)
            x0_hat = convert(out, self.inner.target, "x0", x_t, tt, self.inner.path)
            n = torch.randn_like(x0) if direction is None else direction
            sigma = broadcast_time(self.inner.path.sigma(t.to(torch.float64)).to(x0), x0)
            y = sigma * n / math.sqrt(x0[0].numel())
            (grad,) = torch.autograd.grad((x0_hat * y).sum(), noise, create_graph=True)
        return loss, grad.flatten(1).norm(dim=1)

    def forward(self, net: Any, x0: Tensor, noise: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        loss, r = self.variations(net, x0, noise, t, cond)
        with torch.no_grad():
            if self.training:
                self.mean_variation += self.decay * (r.detach().mean().to(torch.float64)
                                                     - self.mean_variation)
        penalty = (r - self.mean_variation.to(r)).pow(2).mean()
        return loss.mean() + self.lam * penalty

    def __repr__(self) -> str:
        return f"SmoothObjective({self.inner!r}, lam={self.lam}, decay={self.decay})"
