"""Variational-bound training of a diffusion whose reverse kernel's mean and variance are both
learned: Sohl-Dickstein, Weiss, Maheswaranathan & Ganguli, "Deep Unsupervised Learning using
Nonequilibrium Thermodynamics" (ICML 2015), Sec. 2.4 and App. D.

The forward chain is a discrete VP schedule (:class:`interpolant.paths.VPDiscrete`, ``N``
steps); the reverse kernel ``p(x_{k-1} | x_k) = N(mu, diag(e^{log_var}))`` comes from one
network ``f(x_k, t_k) = (f_mu, f_var)`` (:class:`KernelMLP`) as

    mu = x_k + f_mu,      log_var = log beta_k + f_var,

and training minimises the bound of :mod:`interpolant.training.vlb` (the paper's ``K``,
eq. 14, written with the analytic Gaussian KLs of its App. B), estimated without bias with one
uniform ``k`` per sample: ``L = L_prior + N L_k``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..paths import VPDiscrete
from ..solvers.ddpm_learned import PosteriorStep
from ..training.fit import fit
from ..training.vlb import Kernel, bound_term, prior_kl

__all__ = ["KernelMLP", "mlp_kernel", "bound_loss", "train_bound"]


class KernelMLP(nn.Module):
    """``f(x, t) = (f_mu, f_var)`` for ``x`` of shape ``(B, dim)``: an MLP on ``x`` and
    ``frequencies`` sinusoidal features of ``t``; the last layer starts at zero (so the
    untrained kernel is ``N(x_k, beta_k)``)."""

    def __init__(self, dim: int, hidden: int = 64, depth: int = 2, frequencies: int = 8) -> None:
        super().__init__()
        if min(dim, hidden, depth, frequencies) < 1:
            raise InterpolantError("KernelMLP needs dim, hidden, depth, frequencies >= 1")
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(frequencies) / 2)
        layers: list[nn.Module] = []
        width = dim + 2 * frequencies
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(hidden, 2 * dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        angles = t[:, None].to(x.dtype) * self.freqs.to(x.dtype)
        return self.out(self.body(torch.cat([x, angles.sin(), angles.cos()], 1)))


def mlp_kernel(net: nn.Module) -> Kernel:
    """The reverse kernel ``mu = x + f_mu``, ``log_var = log beta + f_var`` of ``net``."""
    def kernel(x: Tensor, t: Tensor, step: PosteriorStep) -> tuple[Tensor, Tensor]:
        f_mu, f_var = net(x, t).split(x.shape[1], dim=1)
        return x + f_mu, step.log_beta + f_var
    return kernel


def bound_loss(path: VPDiscrete, kernel: Kernel, x0: Tensor,
               generator: torch.Generator | None = None) -> Tensor:
    """``mean(L_prior + N L_k) / D`` in nats per dimension, ``k`` uniform per sample: an
    unbiased estimate of the bound."""
    n = path.num_train_timesteps
    k = torch.randint(0, n, (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    total = prior_kl(path, x0) + n * bound_term(path, kernel, x0, k, noise)
    return total.mean() / x0[0].numel()


def train_bound(net: nn.Module, data: Callable[[int, torch.Generator], Tensor],
                path: VPDiscrete, steps: int, batch_size: int = 256, lr: float = 3e-3,
                seed: int = 0) -> list[float]:
    """Fit ``net`` (a :class:`KernelMLP`) to ``data(n, generator)`` by the bound, with Adam;
    returns the per-step loss (nats per dimension)."""
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise InterpolantError(f"need steps >= 1, batch_size >= 1 and lr > 0, got {steps}, "
                               f"{batch_size}, {lr}")
    gen = torch.Generator().manual_seed(seed)
    kernel = mlp_kernel(net)
    return fit(net, lambda k: bound_loss(path, kernel, data(batch_size, gen), gen), steps, lr,
               name="bound training", clip=None)
