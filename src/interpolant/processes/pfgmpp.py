"""PFGM++: Poisson flow generative models with an augmented dimension ``D``.

Xu, Liu, Tian, Tegmark & Jaakkola, "PFGM++: Unlocking the Potential of Physics-Inspired
Generative Models" (ICML 2023). Data ``y`` in ``R^N`` are perturbed with the kernel

    p_r(x | y) ∝ (||x - y||^2 + r^2)^(-(N + D) / 2),        r = sigma sqrt(D)   (eq. 4, Sec. 4)

sampled as ``x = y + R u`` with ``u`` uniform on the sphere and ``R = r sqrt(b / (1 - b))``,
``b ~ Beta(N/2, D/2)`` (App. B). The kernel is a multivariate Student t with ``D`` degrees of
freedom and scale ``sigma``, so ``E||x - y||^2 = r^2 N / (D - 2) = sigma^2 N D / (D - 2)``
(``D > 2``) and, as ``D -> inf`` at fixed ``sigma``, it tends to ``N(y, sigma^2 I)``: the VE/EDM
perturbation (Prop. 4.1). With ``r = sigma sqrt(D)`` the Poisson-field ODE is EDM's
``dx/dsigma = (x - E[y | x, sigma]) / sigma`` with the posterior mean under this kernel
(Sec. 4), so a network trained as EDM on these perturbations samples with EDM's solvers from
the heavy-tailed prior :func:`prior` at ``sigma_max``::

    model = ip.EDMPrecond(net, ip.paths.EDM())
    pfgmpp.train(model, data, D=128, steps=...)
    x1 = pfgmpp.prior((n, dim), ip.paths.EDM().sigma(1.0), D=128)
    x0 = ip.sample(ip.Denoiser(model, ip.paths.EDM(), prediction="x0"), x1, solver="edm")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath, broadcast_time
from ..paths.flows import EDM
from ..predictions import Denoiser
from ..training.fit import fit

__all__ = ["check_dimension", "radii", "perturb", "prior", "posterior_mean", "exact_denoiser",
           "edm_loss", "train"]


def check_dimension(D: float) -> float:  # noqa: N803 - the paper's name
    """``D`` as a float, or an :class:`InterpolantError` unless ``0 < D <= inf``."""
    if isinstance(D, bool) or not isinstance(D, (int, float)) or not D > 0:
        raise InterpolantError(f"PFGM++ needs an augmented dimension D > 0 (e.g. 128; "
                               f"D = inf is EDM), got {D!r}")
    return float(D)


def _numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    seed = torch.randint(0, 2**62, (1,), generator=generator).item()
    return np.random.default_rng(seed)


def radii(n: int, N: int, D: float, r: Tensor | float,  # noqa: N803
          generator: torch.Generator | None = None) -> Tensor:
    """``n`` radii ``R = r sqrt(b / (1 - b))``, ``b ~ Beta(N/2, D/2)`` (float64); ``D = inf``
    gives the Gaussian radii ``sigma chi_N`` with ``sigma = r / sqrt(D)`` read as ``r``."""
    D = check_dimension(D)
    if math.isinf(D):
        z = torch.randn(n, N, generator=generator, dtype=torch.float64)
        return torch.as_tensor(r, dtype=torch.float64) * z.norm(dim=1)
    b = torch.from_numpy(_numpy_rng(generator).beta(N / 2.0, D / 2.0, size=n))
    return torch.as_tensor(r, dtype=torch.float64) * torch.sqrt(b / (1.0 - b))


def perturb(y: Tensor, sigma: Tensor | float, D: float,  # noqa: N803
            generator: torch.Generator | None = None) -> Tensor:
    """``x = y + R u`` per sample, ``r = sigma sqrt(D)`` (``sigma`` a float or ``(B,)``)."""
    D = check_dimension(D)
    n, dim = y.shape[0], y[0].numel()
    sig = torch.as_tensor(sigma, dtype=torch.float64)
    r = sig if math.isinf(D) else sig * math.sqrt(D)
    big_r = radii(n, dim, D, r, generator)
    u = torch.randn(y.shape, generator=generator, dtype=torch.float64).flatten(1)
    u = (u / u.norm(dim=1, keepdim=True)).view(y.shape)
    return y + (broadcast_time(big_r, u) * u).to(y.device, y.dtype)


def prior(shape: tuple[int, ...], sigma_max: float, D: float,  # noqa: N803
          generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
          ) -> Tensor:
    """Samples of the heavy-tailed prior ``p_{r_max}(x | 0)`` (``r_max = sigma_max sqrt(D)``)."""
    return perturb(torch.zeros(shape, dtype=dtype), sigma_max, D, generator)


def _log_kernel(sq: Tensor, sigma: Tensor, dim: int, D: float) -> Tensor:  # noqa: N803
    """``log p_r(x | y)`` up to a constant in ``y``, from ``sq = ||x - y||^2``."""
    if math.isinf(D):
        return -sq / (2.0 * sigma**2)
    return -0.5 * (dim + D) * torch.log1p(sq / (sigma**2 * D))


def posterior_mean(points: Tensor, weights: Tensor, x: Tensor, sigma: Tensor | float,
                   D: float) -> Tensor:  # noqa: N803
    """``E[y | x]`` for data ``sum_i w_i delta(y_i)`` under the PFGM++ kernel (exact): the
    kernel-weighted mean of the points, ``sigma`` a float or ``(B,)``; ``D = inf`` is the
    Gaussian (VE/EDM) posterior."""
    D = check_dimension(D)
    x64, pts = x.to(torch.float64).flatten(1), points.to(torch.float64).flatten(1)
    sig = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1)
    sq = torch.cdist(x64, pts).pow(2)
    logits = torch.log(weights.to(torch.float64))[None] + _log_kernel(sq, sig, pts.shape[1], D)
    return (torch.softmax(logits, dim=1) @ pts).view(x.shape).to(x.dtype)


def exact_denoiser(points: Tensor, weights: Tensor, D: float,  # noqa: N803
                   path: GaussianPath | None = None) -> Denoiser:
    """:func:`posterior_mean` as an ``x0``-predicting :class:`~interpolant.Denoiser` on a
    VE/EDM path (``alpha = 1``; default ``EDM()``), for EDM's samplers."""
    path = EDM() if path is None else path
    return Denoiser(lambda x, t: posterior_mean(points, weights, x, path.sigma(t), D), path,
                    prediction="x0")


def edm_loss(model: Callable[..., Tensor], x0: Tensor, D: float,  # noqa: N803
             path: GaussianPath | None = None, generator: torch.Generator | None = None,
             p_mean: float = -1.2, p_std: float = 1.2, sigma_data: float = 0.5) -> Tensor:
    """EDM's loss with the PFGM++ kernel: ``ln sigma ~ N(p_mean, p_std^2)`` (clamped to the
    path's range), ``x = perturb(x0, sigma, D)``, and
    ``mean((sigma^2 + sd^2) / (sigma sd)^2 ||model(x, t) - x0||^2 / N)`` with ``model`` an
    ``x0``-predictor (e.g. :class:`interpolant.EDMPrecond`) at ``t`` of ``sigma`` on ``path``."""
    path = EDM() if path is None else path
    n = x0.shape[0]
    log_sigma = p_mean + p_std * torch.randn(n, generator=generator, dtype=torch.float64)
    lo, hi = math.log(path.sigma(path.t_min)), math.log(path.sigma(path.t_max))
    sigma = log_sigma.clamp(lo, hi).exp()
    t = path.t_of_lam(-sigma.log())
    x = perturb(x0, sigma, D, generator)
    err = (model(x, t.to(x0.device, x0.dtype)) - x0).pow(2).flatten(1).mean(1)
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    return (weight.to(err.device, err.dtype) * err).mean()


def train(model: Any, data: Callable[[int, torch.Generator], Tensor], D: float,  # noqa: N803
          steps: int, batch_size: int = 256, lr: float = 2e-3, seed: int = 0,
          path: GaussianPath | None = None) -> list[float]:
    """Fit an ``x0``-predicting ``model`` (an ``nn.Module``) by :func:`edm_loss` with Adam;
    returns the loss curve."""
    check_dimension(D)
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise InterpolantError(f"need steps >= 1, batch_size >= 1 and lr > 0, got {steps}, "
                               f"{batch_size}, {lr}")
    gen = torch.Generator().manual_seed(seed)
    return fit(model, lambda k: edm_loss(model, data(batch_size, gen), D, path, gen), steps, lr,
               name="PFGM++ training", clip=None)
