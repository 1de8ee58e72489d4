"""Learned stochastic interpolants as a model the samplers can call."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..paths.interpolant import Interpolant
from ..network import call_network, takes_cond


class InterpolantModel:
    """A velocity network ``u(x, t, cond)`` and, for SDE sampling, a denoiser network
    ``eta(x, t, cond) ~ E[z | x_t]`` on an :class:`~interpolant.paths.Interpolant`.

    Called as ``model(x, t, cond, target)`` with ``target`` ``"velocity"`` or ``"score"``
    (``s = -eta / gamma(t)``, Albergo et al. 2023, Theorem 2.8; undefined where ``gamma = 0``,
    so choose a diffusion ``eps(t)`` that vanishes there). ``nfe`` counts network calls.
    """

    def __init__(self, velocity: nn.Module | Any, path: Interpolant,
                 eta: nn.Module | Any | None = None) -> None:
        if not isinstance(path, Interpolant):
            raise InterpolantError(
                f"InterpolantModel needs an interpolant.paths.Interpolant, got {type(path).__name__}"
            )
        self.velocity, self.eta, self.path, self.nfe = velocity, eta, path, 0
        self._cond = {"velocity": takes_cond(velocity)}
        if eta is not None:
            self._cond["eta"] = takes_cond(eta)

    def __call__(self, x: Tensor, t: Any, cond: Any = None, target: str = "velocity") -> Tensor:
        t_float = float(t) if not isinstance(t, Tensor) else float(t.flatten()[0])
        t_vec = torch.full((x.shape[0],), t_float, dtype=x.dtype, device=x.device)
        if target == "velocity":
            self.nfe += 1
            return call_network(self.velocity, self._cond["velocity"], x, t_vec, cond)
        if target != "score":
            raise InterpolantError(f"target must be 'velocity' or 'score', got {target!r}")
        if self.eta is None:
            raise InterpolantError("the score needs the eta (denoiser) network: pass eta=...")
        gamma = self.path.gamma(t_float)
        if gamma <= 0.0:
            raise InterpolantError(
                f"the score -eta/gamma is undefined at t={t_float:g}, where gamma(t) = 0; use a "
                "diffusion eps(t) that is 0 there (e.g. proportional to gamma(t))"
            )
        self.nfe += 1
        return -call_network(self.eta, self._cond["eta"], x, t_vec, cond) / gamma
