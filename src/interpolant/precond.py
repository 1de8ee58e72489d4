"""EDM preconditioning (Karras et al. 2022, "Elucidating the design space...", Table 1).

EDM writes the denoiser at noise level ``sigma`` as

    D(x; sigma) = c_skip x + c_out F(c_in x, c_noise),
    c_skip = sd^2 / (sigma^2 + sd^2),  c_out = sigma sd / sqrt(sigma^2 + sd^2),
    c_in = 1 / sqrt(sigma^2 + sd^2),  c_noise = ln(sigma) / 4,

with ``sd = sigma_data``. Trained with the x0-space weight ``(sigma^2 + sd^2) / (sigma sd)^2``
(``weight="edm"``, ``target="x0"``) the loss of ``D`` is exactly the unit-weight MSE of ``F``
against ``(x0 - c_skip x) / c_out``: every noise level has a unit-variance input and target.

Mapping ``t`` to ``sigma``. On a VE/EDM path (``alpha = 1``) ``sigma = sigma(t)``. On any other
Gaussian path ``x_t / alpha = x0 + (sigma / alpha) eps``, so :class:`EDMPrecond` divides the input
by ``alpha(t)`` and uses ``sigma_e = sigma(t) / alpha(t) = exp(-lam(t))``; for ``alpha = 1`` this
is EDM's formula unchanged. The wrapped network ``F`` is called as ``net(c_in x, c_noise, cond)``
with ``c_noise`` of shape ``(B,)`` in ``x``'s dtype, i.e. it sees ``ln(sigma_e) / 4`` as its time.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .errors import InterpolantError
from .paths import GaussianPath, broadcast_time

__all__ = ["EDMPrecond"]


class EDMPrecond(nn.Module):
    """``model(x, t, cond) -> x0`` prediction ``D`` built on a raw network ``F``.

    Use it with ``prediction="x0"`` (sampling) and ``target="x0"`` (training).
    """

    def __init__(self, net: nn.Module, path: GaussianPath, sigma_data: float | None = None
                 ) -> None:
        super().__init__()
        if not isinstance(path, GaussianPath):
            raise InterpolantError(f"EDMPrecond needs a Gaussian path, got {type(path).__name__}")
        sd = float(getattr(path, "sigma_data", 0.5) if sigma_data is None else sigma_data)
        if not sd > 0:
            raise InterpolantError(f"sigma_data must be positive, got {sd}")
        self.net = net
        self.path = path
        self.sigma_data = sd
        self.config = {"sigma_data": sd, "net": dict(getattr(net, "config", {}))}

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(1/alpha, c_skip, c_out, c_in, c_noise)`` at times ``t`` (float64, ``(B,)``)."""
        t = t.to(torch.float64)
        a, s = self.path.alpha(t), self.path.sigma(t)
        sig = s / a
        sd = self.sigma_data
        root = torch.sqrt(sig * sig + sd * sd)
        return 1.0 / a, sd * sd / root**2, sig * sd / root, 1.0 / root, torch.log(sig) / 4.0

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        if not isinstance(t, Tensor) or t.shape != (x.shape[0],):
            raise InterpolantError(f"t must be a tensor of shape ({x.shape[0]},)")
        inv_a, c_skip, c_out, c_in, c_noise = (
            c.to(device=x.device, dtype=x.dtype) for c in self.coefficients(t)
        )
        x_ve = broadcast_time(inv_a, x) * x
        f = self.net(broadcast_time(c_in, x) * x_ve, c_noise, cond)
        return broadcast_time(c_skip, x) * x_ve + broadcast_time(c_out, x) * f.to(x.dtype)
