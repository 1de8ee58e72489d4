"""The variational bound of a discrete diffusion with Gaussian reverse kernels, in nats and in
bits per dimension, and improved DDPM's hybrid loss.

Ho et al. 2020, eq. 5; Sohl-Dickstein et al. 2015, eq. 14; Nichol & Dhariwal 2021, Sec. 3.
On a schedule of ``N`` steps (``interpolant.paths.VPDiscrete``: index ``k`` at
``t_k = (k + 1) / N``, clean data at ``t = 0``) and a reverse kernel
``p(x_{k-1} | x_k) = N(mu(x_k, k), exp(log_var(x_k, k)))``::

    -log p(x0) <= L_prior + sum_{k=1}^{N-1} L_k + L_0
    L_prior = KL(q(x_{N-1} | x0) || N(0, I))
    L_k     = KL(q(x_{k-1} | x_k, x0) || p(x_{k-1} | x_k))       (the posterior of
              :func:`interpolant.solvers.ddpm_learned.posterior_step`)
    L_0     = -log p(x0 | x_0-th state)                           (the decoder)

The decoder is ``"gaussian"`` (a continuous density, for low-dimensional data) or
``"discretized"`` (images in ``[-1, 1]`` with 256 bins: the Gaussian's mass on each bin of
width ``2 / 255``, the end bins open; the normal CDF is exact here, where guided-diffusion uses
a tanh approximation). The decoder's ``log beta~`` is clipped to the next step's (guided-
diffusion's ``posterior_log_variance_clipped``).

A *kernel* is a callable ``kernel(x_k, t, step) -> (mu, log_var)`` with ``t`` of shape ``(B,)``
and ``step`` a :class:`~interpolant.solvers.ddpm_learned.PosteriorStep` of per-sample tensors;
:func:`learned_range_kernel` is improved DDPM's. :func:`hybrid_loss` is
``L_simple + lam N L_k`` (guided-diffusion's ``RESCALED_MSE``: ``L_k`` in bits per dimension,
an unbiased estimate of ``lam L_vlb`` with ``k`` uniform), with the mean stopped in ``L_k``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..paths import VPDiscrete, broadcast_time
from ..solvers.ddpm_learned import (LearnedRangeDenoiser, PosteriorStep, learned_log_variance,
                                    posterior_step)

Kernel = Callable[[Tensor, Tensor, PosteriorStep], tuple[Tensor, Tensor]]
DECODERS = ("gaussian", "discretized")
LOG2 = math.log(2.0)

__all__ = ["DECODERS", "Kernel", "normal_kl", "gaussian_log_likelihood",
           "discretized_gaussian_log_likelihood", "step_table", "learned_range_kernel",
           "bound_term", "prior_kl", "nll_bound", "bits_per_dim", "hybrid_loss"]


def normal_kl(mean1: Tensor, log_var1: Tensor | float, mean2: Tensor,
              log_var2: Tensor | float) -> Tensor:
    """``KL(N(mean1, e^lv1) || N(mean2, e^lv2))`` per element:
    ``(lv2 - lv1 + e^(lv1 - lv2) + (mean1 - mean2)^2 e^-lv2 - 1) / 2``."""
    lv1, lv2 = torch.as_tensor(log_var1, dtype=mean1.dtype), torch.as_tensor(log_var2,
                                                                             dtype=mean1.dtype)
    return 0.5 * (lv2 - lv1 + torch.exp(lv1 - lv2) + (mean1 - mean2) ** 2 * torch.exp(-lv2) - 1)


def gaussian_log_likelihood(x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """``log N(x; mean, e^log_var)`` per element."""
    return -0.5 * (math.log(2 * math.pi) + log_var + (x - mean) ** 2 * torch.exp(-log_var))


def _log_mass(lo: Tensor, hi: Tensor) -> Tensor:
    """``log(Phi(hi) - Phi(lo))`` for ``lo < hi``, in the tail where it is accurate."""
    right = lo > 0  # both in the right tail: Phi(-lo) - Phi(-hi)
    a, b = torch.where(right, -hi, lo), torch.where(right, -lo, hi)
    log_b = torch.special.log_ndtr(b)
    return log_b + torch.log1p(-torch.exp(torch.special.log_ndtr(a) - log_b).clamp(max=1.0))


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_var: Tensor,
                                        bins: int = 256) -> Tensor:
    """``log P(bin of x)`` per element for ``x`` in ``[-1, 1]`` on ``bins`` levels: the mass of
    ``N(mean, e^log_var)`` on ``[x - 1/(bins-1), x + 1/(bins-1)]``, with the first bin open
    to ``-inf`` and the last to ``+inf`` (Ho et al. 2020, eq. 13)."""
    half, inv_std = 1.0 / (bins - 1), torch.exp(-0.5 * log_var)
    lo, hi = (x - mean - half) * inv_std, (x - mean + half) * inv_std
    lo = torch.where(x < -1 + half, torch.full_like(lo, -math.inf), lo)
    hi = torch.where(x > 1 - half, torch.full_like(hi, math.inf), hi)
    return _log_mass(lo, hi)


@lru_cache(maxsize=16)
def step_table(path: VPDiscrete) -> Tensor:
    """``(N, 6)`` float64: row ``k`` is :func:`posterior_step` of ``t_k -> t_{k-1}`` (to
    ``t = 0`` for ``k = 0``, its ``log beta~`` clipped to row 1's)."""
    n = path.num_train_timesteps
    rows = [posterior_step(path, (k + 1) / n, k / n, clip_next=2 / n if k == 0 else None)
            for k in range(n)]
    return torch.tensor(rows, dtype=torch.float64)


def _steps(path: VPDiscrete, k: Tensor, like: Tensor) -> PosteriorStep:
    rows = step_table(path)[k.cpu()].to(device=like.device, dtype=like.dtype)
    return PosteriorStep(*(broadcast_time(c, like) for c in rows.unbind(1)))


def learned_range_kernel(den: LearnedRangeDenoiser, detach_mean: bool = False,
                         cond: object = None, keep: list[Tensor] | None = None) -> Kernel:
    """Improved DDPM's kernel: ``mu`` the posterior mean at the network's ``x0``, ``log_var``
    of :func:`learned_log_variance`. ``detach_mean`` stops the gradient through ``mu`` (the
    hybrid loss trains the mean with ``L_simple`` only); ``keep`` collects the predictions."""
    def kernel(x: Tensor, t: Tensor, step: PosteriorStep) -> tuple[Tensor, Tensor]:
        pred, r = den.outputs(x, t, cond)
        if keep is not None:
            keep.append(pred)
        x0 = den.to_target(pred.detach() if detach_mean else pred, x, t, "x0")
        return step.c_0 * x0 + step.c_x * x, learned_log_variance(r, step)
    return kernel


def _check(path: VPDiscrete, decoder: str) -> None:
    if not isinstance(path, VPDiscrete):
        raise InterpolantError(f"the variational bound needs a discrete schedule "
                               f"(interpolant.paths.VPDiscrete), got {type(path).__name__}")
    if decoder not in DECODERS:
        raise unknown_name("decoder", decoder, DECODERS)


def bound_term(path: VPDiscrete, kernel: Kernel, x0: Tensor, k: Tensor, noise: Tensor,
               decoder: str = "gaussian") -> Tensor:
    """``L_k`` in nats per sample, shape ``(B,)``, at ``x_k = alpha x0 + sigma noise`` for the
    per-sample indices ``k`` (int64 ``(B,)``): ``L_0`` where ``k = 0``, the KL elsewhere."""
    _check(path, decoder)
    n = path.num_train_timesteps
    if k.shape != (x0.shape[0],) or int(k.min()) < 0 or int(k.max()) >= n:
        raise InterpolantError(f"k must be int64 of shape ({x0.shape[0]},) in [0, {n})")
    t64 = (k + 1).to("cpu", torch.float64) / n  # the knots exactly, as in the step table
    a, s = (broadcast_time(c.to(x0.device, x0.dtype), x0) for c in (path.alpha(t64),
                                                                     path.sigma(t64)))
    x_k = a * x0 + s * noise
    step = _steps(path, k, x0)
    mean, log_var = kernel(x_k, t64.to(x0.device, x0.dtype), step)
    kl = normal_kl(step.c_0 * x0 + step.c_x * x_k, step.log_beta_tilde.clamp(min=-1e4),
                   mean, log_var)
    ll = (discretized_gaussian_log_likelihood if decoder == "discretized"
          else gaussian_log_likelihood)(x0, mean, log_var)
    first = broadcast_time(k == 0, x0)
    return torch.where(first, -ll, kl).flatten(1).sum(1)


def prior_kl(path: VPDiscrete, x0: Tensor) -> Tensor:
    """``L_prior = KL(N(alpha_1 x0, sigma_1^2) || N(0, I))`` in nats per sample."""
    a, s = path.alpha(1.0), path.sigma(1.0)
    return normal_kl(a * x0, 2 * math.log(s), torch.zeros_like(x0), 0.0).flatten(1).sum(1)


def nll_bound(path: VPDiscrete, kernel: Kernel, x0: Tensor, decoder: str = "gaussian",
              generator: torch.Generator | None = None) -> Tensor:
    """The whole bound ``L_prior + sum_k L_k`` in nats per sample (``N`` kernel evaluations,
    fresh noise for each ``k``)."""
    total = prior_kl(path, x0)
    for k in range(path.num_train_timesteps):
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        ks = torch.full((x0.shape[0],), k, dtype=torch.int64, device=x0.device)
        total = total + bound_term(path, kernel, x0, ks, noise, decoder)
    return total


def bits_per_dim(nats: Tensor, x0: Tensor) -> Tensor:
    """Nats per sample as bits per dimension: ``nats / (D log 2)``."""
    return nats / (x0[0].numel() * LOG2)


def hybrid_loss(den: LearnedRangeDenoiser, x0: Tensor, noise: Tensor, k: Tensor,
                lam: float = 1e-3, decoder: str = "gaussian") -> Tensor:
    """``L_hybrid = L_simple + lam N L_k`` (Nichol & Dhariwal 2021, eq. 16), the batch mean:
    ``L_simple`` the squared error of the network's ``eps`` (mean over dimensions), ``L_k`` in
    bits per dimension with the mean stopped, so that it trains the variances only."""
    path = den.path
    _check(path, decoder)
    if den.prediction != "eps":
        raise InterpolantError("the hybrid loss trains an eps-predicting network; build the "
                               "LearnedRangeDenoiser with prediction='eps'")
    eps: list[Tensor] = []  # the one network evaluation serves both terms
    kernel = learned_range_kernel(den, detach_mean=True, keep=eps)
    vlb = bits_per_dim(bound_term(path, kernel, x0, k, noise, decoder), x0)
    simple = (eps[0] - noise).pow(2).flatten(1).mean(1)
    return (simple + lam * path.num_train_timesteps * vlb).mean()
