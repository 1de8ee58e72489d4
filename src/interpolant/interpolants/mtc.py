"""Minimizing Trajectory Curvature (MTC): a learned coupling of data and noise.

Lee, Lin & Wu, "Minimizing Trajectory Curvature of ODE-based Generative Models" (ICML 2023),
Sec. 3-4. An encoder ``q_phi(x_1 | x_0) = N(mu_phi(x_0), diag sigma_phi(x_0)^2)`` draws the
noise end of each datum; the velocity ``v_theta`` of ``x_t = a x_0 + b x_1`` and the encoder are
trained together on

    L(theta, phi) = E_{x_0, t, x_1 ~ q_phi(.|x_0)} |v_theta(x_t, t) - (a' x_0 + b' x_1)|^2
                    + beta E_{x_0} KL(q_phi(. | x_0) || N(0, I)),

``x_1 = mu + sigma eps`` reparameterised so the gradient reaches ``phi``. At the optimal
``v`` the first term is the curvature ``S = E int |dx_t/dt - u(x_t)|^2 dt`` of the coupling
(:func:`interpolant.processes.curvature.curvature`), so the encoder trades curvature against
the KL that keeps its aggregate close to the ``N(0, I)`` that sampling starts from (a VAE whose
decoder is the flow). Generation draws ``x_1 ~ N(0, I)`` and integrates the ODE as usual.

:class:`GaussianEncoder` is an MLP encoder, or an affine one (``mu = A x_0 + c``, a learned
constant ``sigma``) whose coupling is linear, so :meth:`GaussianEncoder.coupled_mixture` gives
the exact oracle of what was learned (:class:`~interpolant.interpolants.CoupledMixture`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..network import call_network, takes_cond
from ..oracle import GaussianMixture
from ..paths.interpolant import Interpolant
from .oracle import CoupledMixture
from .training import interpolate

__all__ = ["GaussianEncoder", "MTCObjective", "gaussian_kl"]


def gaussian_kl(mu: Tensor, log_sigma: Tensor) -> Tensor:
    """``KL(N(mu, diag sigma^2) || N(0, I)) = 1/2 sum (mu^2 + sigma^2 - 2 log sigma - 1)`` per
    sample (summed over the non-batch dimensions)."""
    return 0.5 * (mu.pow(2) + torch.exp(2 * log_sigma) - 2 * log_sigma - 1).flatten(1).sum(1)


class GaussianEncoder(nn.Module):
    """``q(x_1 | x_0) = N(mu(x_0), diag sigma(x_0)^2)`` for points ``(B, dim)``: an MLP with
    ``hidden`` units (``hidden=0``: affine ``mu = A x_0 + c``, constant ``log sigma``). It
    starts as the independent coupling ``N(0, I)`` (zero mean, unit std)."""

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        if dim < 1 or hidden < 0:
            raise InterpolantError(f"GaussianEncoder needs dim >= 1 and hidden >= 0, got "
                                   f"{dim}, {hidden}")
        self.dim, self.affine = dim, hidden == 0
        if self.affine:
            self.mean = nn.Linear(dim, dim)
            self.log_sigma = nn.Parameter(torch.zeros(dim))
            nn.init.zeros_(self.mean.weight)
            nn.init.zeros_(self.mean.bias)
        else:
            self.net = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                     nn.SiLU(), nn.Linear(hidden, 2 * dim))
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, log sigma)`` of ``q(. | x0)``."""
        if x0.ndim != 2 or x0.shape[1] != self.dim:
            raise InterpolantError(f"the encoder takes points (B, {self.dim}), got "
                                   f"{tuple(x0.shape)}")
        if self.affine:
            return self.mean(x0), self.log_sigma.expand_as(x0)
        mu, log_sigma = self.net(x0).chunk(2, dim=1)
        return mu, log_sigma

    def sample(self, x0: Tensor, eps: Tensor) -> Tensor:
        """``x_1 = mu(x_0) + sigma(x_0) eps`` (reparameterised)."""
        mu, log_sigma = self(x0)
        return mu + torch.exp(log_sigma) * eps

    def coupled_mixture(self, p0: GaussianMixture, path: Interpolant) -> CoupledMixture:
        """The exact interpolant of this (affine) encoder's coupling of ``p0`` and noise."""
        if not self.affine:
            raise InterpolantError("the exact coupled oracle needs the affine encoder (hidden=0)")
        with torch.no_grad():
            return CoupledMixture(p0, self.mean.weight.double(), torch.diag(
                self.log_sigma.double().exp()), path, shift=self.mean.bias.double())


class MTCObjective(nn.Module):
    """MTC's joint loss as a :class:`interpolant.training.Trainer` objective (an ``nn.Module``,
    so the trainer optimises and checkpoints the encoder with the network): per sample
    ``|v(x_t, t) - (a' x_0 + b' x_1)|^2 + beta KL``, sums over dimensions, ``t ~ U[0, 1]``."""

    def __init__(self, encoder: GaussianEncoder, path: Interpolant | None = None,
                 beta: float = 1.0) -> None:
        super().__init__()
        if not beta > 0:
            raise InterpolantError(f"beta must be > 0 (without the KL the encoder's noise "
                                   f"drifts from N(0, I)), got {beta}")
        self.path = Interpolant.linear() if path is None else path
        self.path.check_deterministic("MTC")
        self.encoder, self.beta = encoder, float(beta)

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, generator=generator, dtype=torch.float64)

    def per_sample(self, model: Any, x0: Tensor, noise: Tensor, t: Tensor, cond: Any = None
                   ) -> tuple[Tensor, Tensor]:
        """``(flow term, KL)`` per sample."""
        mu, log_sigma = self.encoder(x0)
        x1 = mu + torch.exp(log_sigma) * noise
        xt, target = interpolate(self.path, x0, x1, torch.zeros_like(x0), t)
        out = call_network(model, takes_cond(model), xt, t.to(x0.dtype), cond)
        return (out - target).pow(2).flatten(1).sum(1), gaussian_kl(mu, log_sigma)

    def forward(self, model: Any, x0: Tensor, noise: Tensor, t: Tensor, cond: Any = None
                ) -> Tensor:
        flow, kl = self.per_sample(model, x0, noise, t, cond)
        return (flow + self.beta * kl).mean()
