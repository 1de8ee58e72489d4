"""EDM2's learned uncertainty weighting of the loss over noise levels (Karras et al. 2024).

"Analyzing and Improving the Training Dynamics of Diffusion Models", sec. 5 and App. B.2: the
loss of every noise level is divided by a learned estimate of its own magnitude,

    L(D, u) = E_sigma [ lambda(sigma) / e^{u(sigma)} E_{y, n} ||D(y + n; sigma) - y||^2 + u(sigma) ],

with ``u`` a small learned function of the noise level, trained jointly with the denoiser. For
fixed ``D`` the inner minimum over ``u(sigma)`` is at ``u*(sigma) = log E[lambda ||D - y||^2 |
sigma]`` (the derivative ``1 - e^{-u} E[.]`` vanishes), where every level contributes 1 to the
loss: the levels are balanced whatever their difficulty. For fixed ``u`` the loss is the
per-level reweighting ``lambda / e^u > 0`` of the MSE, so the exact denoiser remains its
minimiser: only the balance of the gradients changes.

Here ``lambda ||D - y||^2`` is the per-sample loss of an :class:`~.objectives.Objective`
(``weight="edm"`` is EDM2's ``lambda``; any target, density and weight work), averaged over the
data dimensions, as EDM2's per-element loss is. ``sigma`` is the path's VE noise level
``sigma / alpha = e^{-lam}``; ``u`` is EDM2's head: Fourier features of ``c_noise = ln(sigma) / 4``
and one linear layer initialised to zero (``u = 0``: the plain loss at the start). Any module
mapping float64 ``(B,)`` times to ``(B,)`` may replace it (``u_net``).

Pass it as the trainer's objective: ``Trainer(net, path, data, objective=UncertaintyObjective(
path, "x0", "edm", "edm"))``; its ``u`` is then optimised with the network and checkpointed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..paths import GaussianPath
from .objectives import Objective

__all__ = ["LogVarianceHead", "UncertaintyObjective"]

_LOG_SIGMA_MAX = 20.0  # ln sigma clipped to [-20, 20]: both path ends give finite features


class LogVarianceHead(nn.Module):
    """EDM2's ``u(sigma) = linear(sqrt(2) cos(2 pi (f c + phi)))``, ``c = ln(sigma) / 4``,
    ``f ~ N(0, 1)``, ``phi ~ U[0, 1)`` (fixed buffers), the linear layer zero at start."""

    def __init__(self, path: GaussianPath, channels: int = 128, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise InterpolantError(f"the uncertainty head needs channels >= 1, got {channels}")
        g = torch.Generator().manual_seed(seed)
        self.path = path
        self.register_buffer("freqs", torch.randn(channels, generator=g, dtype=torch.float64))
        self.register_buffer("phases", torch.rand(channels, generator=g, dtype=torch.float64))
        self.linear = nn.Linear(channels, 1, dtype=torch.float64)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, t: Tensor) -> Tensor:
        t64 = t.to(torch.float64)
        log_sigma = (-self.path.lam(t64)).clamp(-_LOG_SIGMA_MAX, _LOG_SIGMA_MAX)
        c = log_sigma.to(self.freqs.device)[:, None] / 4
        features = math.sqrt(2.0) * torch.cos(2 * math.pi * (c * self.freqs + self.phases))
        return self.linear(features.to(self.linear.weight.dtype))[:, 0]


class UncertaintyObjective(nn.Module):
    """``UncertaintyObjective(path, target="x0", density="edm", weight="edm", u_net=None)``:
    the loss ``mean_i [l_i / e^{u(t_i)} + u(t_i)]`` with ``l_i`` the per-sample loss of
    ``Objective(path, target, density, weight)`` and ``u`` learned (EDM2, Karras et al. 2024)."""

    def __init__(self, path: GaussianPath, target: str = "x0", density: Any = "edm",
                 weight: Any = "edm", u_net: Callable[[Tensor], Tensor] | None = None) -> None:
        super().__init__()
        self.inner = Objective(path, target, density, weight)
        self.u = LogVarianceHead(path) if u_net is None else u_net

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Training times from the inner objective's density."""
        return self.inner.sample_time(n, generator)

    def log_variance(self, t: Tensor) -> Tensor:
        """``u(t)`` as a ``(B,)`` tensor."""
        u = self.u(t)
        if not isinstance(u, Tensor) or u.shape != t.shape:
            got = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
            raise InterpolantError(f"u_net must map times of shape {tuple(t.shape)} to the same "
                                   f"shape, got {got}")
        return u

    def per_sample(self, net: Callable[..., Tensor], x0: Tensor, noise: Tensor, t: Tensor,
                   cond: Any = None) -> Tensor:
        """``l_i / e^{u(t_i)} + u(t_i)``."""
        loss = self.inner.per_sample(net, x0, noise, t, cond)
        u = self.log_variance(t).to(device=loss.device)
        return loss / u.exp().to(loss.dtype) + u.to(loss.dtype)

    def forward(self, net: Callable[..., Tensor], x0: Tensor, noise: Tensor, t: Tensor,
                cond: Any = None) -> Tensor:
        return self.per_sample(net, x0, noise, t, cond).mean()

    def __repr__(self) -> str:
        return f"UncertaintyObjective({self.inner!r}, u={type(self.u).__name__})"
