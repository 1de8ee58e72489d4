"""Learning a stochastic interpolant's velocity and denoiser by their quadratic objectives.

Albergo, Boffi & Vanden-Eijnden (2023), eq. 2.13 and 2.18: with ``x_t = a x_0 + b x_1 +
gamma z`` and ``t ~ U[0, 1]``,

    L_u(u)   = E |u(x_t, t) - (a' x_0 + b' x_1 + gamma' z)|^2      (minimised by the velocity)
    L_eta(e) = E |e(x_t, t) - z|^2                                  (minimised by E[z | x_t])

``x_0`` and ``x_1`` come from a pair sampler: independent draws of two data sets, or a
data-dependent coupling (Albergo et al., "Stochastic interpolants with data-dependent
couplings", 2024: ``x_1`` a degraded ``x_0``, e.g. masked or down-sampled), see
:func:`coupled`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..network import call_network, takes_cond
from ..training.fit import fit
from ..paths.interpolant import Interpolant

PairSampler = Callable[[int, torch.Generator], tuple[Tensor, Tensor]]


def _broadcast(values: list[float], like: Tensor) -> Tensor:
    return torch.tensor(values, dtype=like.dtype).view(-1, *([1] * (like.ndim - 1)))


def interpolate(path: Interpolant, x0: Tensor, x1: Tensor, z: Tensor, t: Tensor
                ) -> tuple[Tensor, Tensor]:
    """``(x_t, d x_t / dt)`` for per-sample times ``t`` of shape ``(B,)``."""
    times, where = torch.unique(t.detach().to("cpu", torch.float64), return_inverse=True)
    table = torch.tensor([path.scalars(s) for s in times.tolist()], dtype=torch.float64)
    cols = table[where].T.tolist()  # the six coefficients of each sample
    a, b, g, da, db, dg = (_broadcast(c, x0) for c in cols)
    return a * x0 + b * x1 + g * z, da * x0 + db * x1 + dg * z


def losses(path: Interpolant, velocity: nn.Module, x0: Tensor, x1: Tensor, t: Tensor,
           z: Tensor, eta: nn.Module | None = None) -> tuple[Tensor, Tensor | None]:
    """``(L_u, L_eta)`` on one batch (``L_eta`` is None without an eta network)."""
    if x0.shape != x1.shape:
        raise InterpolantError(
            f"x_0 and x_1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    xt, target = interpolate(path, x0, x1, z, t)
    loss_u = (call_network(velocity, takes_cond(velocity), xt, t, None) - target).pow(2)
    loss_u = loss_u.flatten(1).sum(1).mean()
    if eta is None:
        return loss_u, None
    loss_eta = (call_network(eta, takes_cond(eta), xt, t, None) - z).pow(2)
    return loss_u, loss_eta.flatten(1).sum(1).mean()


def coupled(x0_sampler: Callable[[int, torch.Generator], Tensor],
            degrade: Callable[[Tensor], Tensor]) -> PairSampler:
    """A data-dependent coupling: ``x_1 = degrade(x_0)`` for each drawn ``x_0``."""
    def sample(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x0 = x0_sampler(n, generator)
        return x0, degrade(x0)
    return sample


def independent(x0_sampler: Callable[[int, torch.Generator], Tensor],
                x1_sampler: Callable[[int, torch.Generator], Tensor]) -> PairSampler:
    """The independent coupling of two data sets."""
    return lambda n, g: (x0_sampler(n, g), x1_sampler(n, g))


def train(path: Interpolant, velocity: nn.Module, pairs: PairSampler, steps: int,
          batch_size: int = 256, lr: float = 2e-3, eta: nn.Module | None = None,
          seed: int = 0) -> list[float]:
    """Fit ``velocity`` (and ``eta``) with Adam for ``steps`` steps; returns the ``L_u`` curve.

    Times are drawn uniformly in ``[0, 1]``; everything random comes from one generator
    seeded with ``seed``."""
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise InterpolantError(f"need steps >= 1, batch_size >= 1 and lr > 0, got steps={steps}, "
                               f"batch_size={batch_size}, lr={lr}")
    nets = nn.ModuleList([velocity] + ([eta] if eta is not None else []))
    gen = torch.Generator().manual_seed(seed)
    curve: list[float] = []

    def batch_loss(step: int) -> Tensor:
        x0, x1 = pairs(batch_size, gen)
        t = torch.rand(batch_size, generator=gen, dtype=x0.dtype)
        z = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        loss_u, loss_eta = losses(path, velocity, x0, x1, t, z, eta)
        curve.append(loss_u.item())
        return loss_u if loss_eta is None else loss_u + loss_eta

    fit(nets, batch_loss, steps, lr, name="interpolant training", clip=None)
    return curve
