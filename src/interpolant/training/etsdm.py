"""E-TSDM: timestep sharing near ``t = 0`` (Yang et al. 2023, "Lipschitz Singularities in
Diffusion Models").

The exact noise predictor has an infinite Lipschitz constant in ``t`` at ``t = 0`` (on VP
paths ``sigma(t) ~ sqrt(beta_0 t)``, so ``d eps*/dt -> inf``). E-TSDM divides ``[0, t~)`` into
``n`` equal sub-intervals ``[t_{i-1}, t_i)`` and gives the network the same time condition
throughout each, the left end ``f(t) = t_{i-1}``; times ``t >= t~`` pass unchanged. The
network is then piecewise constant in ``t`` near 0, and the loss changes its target there: for
``t`` in ``I_i`` the minimiser of ``E ||eps_theta(x_t, t_{i-1}) - eps||^2`` is the
posterior interval average

    eps_theta*(x, t_{i-1}) = E[eps | x_t = x, t in I_i]
                           = int_{I_i} q_t(x) p(t) w(t) eps*(x, t) dt / int_{I_i} q_t(x) p(t) w(t) dt

of the exact predictor (``q_t`` the marginal, ``p`` the time density, ``w`` the loss weight).
Defaults ``t~ = 0.1``, ``n = 5`` (their 100 of 1000 steps, 5 intervals). The wrapper is used
for training and sampling alike.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..network import call_network, takes_cond

__all__ = ["SharedTimeNet", "shared_time"]


def shared_time(t: Tensor, t_tilde: float = 0.1, intervals: int = 5) -> Tensor:
    """``f(t)``: the left end of ``t``'s sub-interval below ``t_tilde``, else ``t``."""
    width = t_tilde / intervals
    left = torch.floor(t / width).clamp(max=intervals - 1) * width
    return torch.where(t < t_tilde, left.to(t.dtype), t)


class SharedTimeNet(nn.Module):
    """``net(x, f(t), cond)`` with E-TSDM's shared time condition ``f`` (:func:`shared_time`)."""

    def __init__(self, net: nn.Module, t_tilde: float = 0.1, intervals: int = 5) -> None:
        super().__init__()
        if not 0.0 < t_tilde <= 1.0:
            raise InterpolantError(f"E-TSDM needs 0 < t_tilde <= 1, got {t_tilde}")
        if isinstance(intervals, bool) or not isinstance(intervals, int) or intervals < 1:
            raise InterpolantError(f"E-TSDM needs a positive int of intervals, got {intervals!r}")
        self.net, self.t_tilde, self.intervals = net, float(t_tilde), intervals
        self.config = getattr(net, "config", None)
        self.arch = getattr(net, "arch", None)

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        return call_network(self.net, takes_cond(self.net), x,
                            shared_time(t, self.t_tilde, self.intervals), cond)
