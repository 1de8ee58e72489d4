"""Truncated diffusion with a learned prior (Franzese et al. 2023, "How Much is Enough? A Study
on Diffusion Times in Score-based Generative Models"; also Zheng et al. 2023, TDPM).

The forward process need not run until its marginal is ``N(0, I)``: train the denoiser only on
``t in [0, T]`` (``density=Uniform(hi=T)``) and replace the Gaussian prior by an auxiliary
model ``q_psi ~ p_T`` of the (still non-Gaussian) forward marginal at ``T``; sampling draws
``x_T ~ q_psi`` and runs the reverse process from ``t_start = T``. The error of the prior
then is ``KL(p_T || q_psi)`` instead of ``KL(p_1 || N(0, I))``, and the denoiser only learns the
easier, less noisy part of the path.

Here ``q_psi`` is a Gaussian mixture fitted by EM (Dempster et al. 1977) to forward samples
``x_T = alpha(T) x0 + sigma(T) eps`` of the training data, initialised by k-means++ seeding:

    E: r_ik = w_k N(x_i; m_k, C_k) / sum_j w_j N(x_i; m_j, C_j)
    M: w_k = mean_i r_ik,  m_k = sum_i r_ik x_i / sum_i r_ik,
       C_k = sum_i r_ik (x_i - m_k)(x_i - m_k)^T / sum_i r_ik + reg I.

It suits low-dimensional data (full covariances).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath

__all__ = ["MixturePrior", "fit_marginal_prior"]


@dataclass
class MixturePrior:
    """A fitted Gaussian mixture ``sum_k w_k N(m_k, C_k)`` (float64) for ``x_T``."""

    weights: Tensor
    means: Tensor
    covs: Tensor
    t: float

    def log_prob(self, x: Tensor) -> Tensor:
        """``log q(x)`` for ``x`` of shape ``(B, D)``."""
        return torch.logsumexp(_log_joint(x.to(torch.float64), self), 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws ``x_T`` (float64), to start sampling at ``t_start = self.t``."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covs)
        return self.means[k] + (chol[k] @ z[:, :, None])[:, :, 0]


def _log_joint(x: Tensor, q: MixturePrior) -> Tensor:
    """``log w_k + log N(x_i; m_k, C_k)``, shape ``(B, K)``."""
    d = x.shape[1]
    chol = torch.linalg.cholesky(q.covs)  # (K, D, D)
    diff = (x[:, None, :] - q.means[None]).permute(1, 2, 0)  # (K, D, B)
    sol = torch.linalg.solve_triangular(chol, diff, upper=False)  # (K, D, B)
    maha = sol.pow(2).sum(1).T  # (B, K)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)
    return torch.log(q.weights)[None] - 0.5 * (maha + logdet[None] + d * math.log(2 * math.pi))


def fit_marginal_prior(data: Tensor, path: GaussianPath, t: float, components: int = 8,
                       iters: int = 200, reg: float = 1e-6,
                       generator: torch.Generator | None = None) -> MixturePrior:
    """EM fit of ``components`` Gaussians to ``x_T`` of every row of ``data`` ``(N, D)``."""
    if not (isinstance(data, Tensor) and data.ndim == 2 and data.is_floating_point()):
        raise InterpolantError("the truncated-diffusion prior needs data of shape (N, D) "
                               "(a full-covariance mixture; flatten small images first)")
    if not 0.0 < t <= 1.0:
        raise InterpolantError(f"the truncation time T must lie in (0, 1], got {t}")
    if isinstance(components, bool) or not isinstance(components, int) or not (
            1 <= components <= data.shape[0]):
        raise InterpolantError(f"components must be an int in [1, {data.shape[0]}], "
                               f"got {components!r}")
    x0 = data.to(torch.float64)
    tt = torch.full((x0.shape[0],), float(t), dtype=torch.float64)
    x = path.sample(x0, tt, torch.randn(x0.shape, generator=generator, dtype=torch.float64))
    n, d = x.shape
    means = x[torch.randint(0, n, (1,), generator=generator)]
    for _ in range(components - 1):  # k-means++ seeding
        dist = torch.cdist(x, means).min(1).values.pow(2)
        means = torch.cat([means, x[torch.multinomial(dist, 1, generator=generator)]])
    eye = torch.eye(d, dtype=torch.float64)
    q = MixturePrior(torch.full((components,), 1.0 / components, dtype=torch.float64), means,
                     torch.cov(x.T).reshape(d, d).expand(components, d, d).clone() + reg * eye,
                     float(t))
    for _ in range(iters):
        r = torch.softmax(_log_joint(x, q), 1)  # E-step
        mass = r.sum(0) + 1e-12
        q.weights = mass / n
        q.means = (r.T @ x) / mass[:, None]
        diff = x[None] - q.means[:, None]  # (K, N, D)
        q.covs = torch.einsum("kn,kni,knj->kij", r.T, diff, diff) / mass[:, None, None] + reg * eye
    return q
