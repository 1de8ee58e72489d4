"""Trajectory straightness: curvature and kinetic energy of an interpolant's flow under a
coupling, the exact field of a coupled mixture, and alpha-(de)blending.

* Curvature (Lee, Lin & Wu, "Minimizing Trajectory Curvature of ODE-based Generative Models",
  ICML 2023, eq. 6): for pairs ``(x_0, x_1)`` from a coupling and ``x_t = a x_0 + b x_1 +
  gamma z``,

      S = E int_0^1 |dx_t/dt - u(x_t, t)|^2 dt = E int |dx_t/dt|^2 dt - E int |u|^2 dt >= 0,

  with ``u = E[dx_t/dt | x_t]`` the flow's velocity (for the linear interpolant
  ``E|x_1 - x_0|^2 - E int |u|^2``). ``S = 0`` exactly when the flow's trajectories are the
  straight pair lines (no crossings); a better coupling (minibatch OT: Tong et al. 2023,
  Pooladian et al. 2023) lowers it.
* Kinetic energy ``E int |u|^2 dt`` (Shaul et al., "On Kinetic Optimal Probability Paths for
  Generative Models", ICML 2023: the linear "CondOT" path minimises it for a point mass).
* :class:`PairedMixture`: data ``x_0 ~ N(m_i, s^2 I)``, ``x_1 ~ N(n_i, s^2 I)`` coupled through
  the pair index ``i`` (a smoothed empirical coupling). ``x_t | i ~ N(a m_i + b n_i, v I)``,
  ``v = (a^2 + b^2) s^2 + gamma^2``, so ``u`` is exact: per pair ``E[x_0 | x, i] = m_i +
  a s^2 r``, ``E[x_1 | x, i] = n_i + b s^2 r``, ``E[z | x, i] = gamma r``,
  ``r = (x - a m_i - b n_i) / v``, mixed by the pairs' responsibilities.
* Iterative alpha-(de)blending (Heitz, Belcour & Chambon, SIGGRAPH 2023, Alg. 4):
  ``x_{alpha'} = x_alpha + (alpha' - alpha) D(x_alpha, alpha)``, ``D ~ E[x_data - x_noise |
  x_alpha]``, ``alpha = 1 - t``: Euler on the linear interpolant (tested against ``euler``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths.interpolant import Interpolant

Velocity = Callable[[Tensor, float], Tensor]
Pairs = Callable[[int, torch.Generator], tuple[Tensor, Tensor]]

__all__ = ["PairedMixture", "curvature", "kinetic_energy", "iadb_sample"]


class PairedMixture:
    """The coupled law ``sum_i w_i N(m_i, s^2 I) x N(n_i, s^2 I)`` on ``path``."""

    def __init__(self, x0_means: Tensor, x1_means: Tensor, std: float, path: Interpolant,
                 weights: Tensor | None = None) -> None:
        if x0_means.shape != x1_means.shape or x0_means.ndim != 2:
            raise InterpolantError(
                f"the paired means must both be (K, D), got {tuple(x0_means.shape)} and "
                f"{tuple(x1_means.shape)}")
        if not std > 0:
            raise InterpolantError(f"std must be > 0, got {std}")
        k = x0_means.shape[0]
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else weights
        self.m0, self.m1 = x0_means.to(torch.float64), x1_means.to(torch.float64)
        self.log_w, self.std, self.path = torch.log(w.to(torch.float64) / w.sum()), std, path

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` coupled pairs ``(x_0, x_1)``."""
        idx = torch.multinomial(self.log_w.exp(), n, replacement=True, generator=generator)
        noise = torch.randn(2, n, self.m0.shape[1], generator=generator, dtype=torch.float64)
        return self.m0[idx] + self.std * noise[0], self.m1[idx] + self.std * noise[1]

    def velocity(self, x: Tensor, t: float) -> Tensor:
        """The exact ``u(x, t) = E[a' x_0 + b' x_1 + gamma' z | x_t = x]``."""
        a, b, g, da, db, dg = self.path.scalars(t)
        var = (a * a + b * b) * self.std**2 + g * g
        r = (x.to(torch.float64)[:, None] - (a * self.m0 + b * self.m1)[None]) / var
        resp = torch.softmax(self.log_w - 0.5 * r.pow(2).sum(-1) * var, dim=1)  # (n, K)
        per_pair = (da * (self.m0 + a * self.std**2 * r) + db * (self.m1 + b * self.std**2 * r)
                    + dg * g * r)
        return torch.einsum("nk,nkd->nd", resp, per_pair).to(x.dtype)


def _quadrature(nodes: int) -> tuple[list[float], list[float]]:
    """Gauss-Legendre nodes and weights on ``[0, 1]``."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    return ((x + 1) / 2).tolist(), (w / 2).tolist()


def _integrate(fn: Callable[[Tensor, Tensor, float], Tensor], path: Interpolant, pairs: Pairs,
               n: int, nodes: int, seed: int) -> float:
    """``int_0^1 E[fn(x_t, dx_t/dt, t)] dt``: Gauss-Legendre in ``t``, ``n`` pairs per node."""
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for t, w in zip(*_quadrature(nodes)):
        x0, x1 = pairs(n, gen)
        if x0.shape != x1.shape:
            raise InterpolantError(f"the coupling gave x_0 of shape {tuple(x0.shape)} and x_1 "
                                   f"of shape {tuple(x1.shape)}; they must be equal")
        z = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        a, b, g, da, db, dg = path.scalars(t)
        total += w * fn(a * x0 + b * x1 + g * z, da * x0 + db * x1 + dg * z, t).mean().item()
    return total


def curvature(velocity: Velocity, pairs: Pairs, path: Interpolant, n: int = 2048,
              nodes: int = 16, seed: int = 0) -> float:
    """``S = E int |dx_t/dt - u(x_t, t)|^2 dt`` (Monte Carlo in the pairs, quadrature in
    ``t``) for the exact or learned velocity ``u(x, t)`` of the coupling ``pairs(n, g)``."""
    return _integrate(lambda x, dx, t: (dx - velocity(x, t)).pow(2).flatten(1).sum(1), path,
                      pairs, n, nodes, seed)


def kinetic_energy(velocity: Velocity, pairs: Pairs, path: Interpolant, n: int = 2048,
                   nodes: int = 16, seed: int = 0) -> float:
    """``E int |u(x_t, t)|^2 dt`` of the flow (same estimator as :func:`curvature`)."""
    return _integrate(lambda x, dx, t: velocity(x, t).pow(2).flatten(1).sum(1), path, pairs, n,
                      nodes, seed)


def iadb_sample(deblend: Callable[[Tensor, float], Tensor], x_noise: Tensor, steps: int
                ) -> Tensor:
    """IADB's deterministic deblending from noise (``alpha = 0``) to data (``alpha = 1``) on
    ``alpha_k = k / steps``; ``deblend(x, alpha)`` estimates ``x_data - x_noise``."""
    if steps < 1:
        raise InterpolantError(f"steps must be >= 1, got {steps}")
    x = x_noise
    for k in range(steps):
        x = x + (1.0 / steps) * deblend(x, k / steps)
    return x
