"""The exact posterior of a Gaussian mixture under a linear-Gaussian measurement.

For a prior ``sum_k w_k N(m_k, C_k)`` and ``y = A x + sigma_y n``, Bayes' rule per component
(the Kalman update) gives again a mixture, ``sum_k w'_k N(m'_k, C'_k)``, with

    S_k  = A C_k A^T + sigma_y^2 I                 (the law of y under component k)
    G_k  = C_k A^T S_k^{-1}                        (the gain)
    m'_k = m_k + G_k (y - A m_k)
    C'_k = C_k - G_k A C_k = (C_k^{-1} + A^T A / sigma_y^2)^{-1}
    w'_k ∝ w_k N(y; A m_k, S_k).

The gain form needs no ``C^{-1}`` and also holds for ``sigma_y = 0`` (then ``C'_k`` is singular
along the measured directions; those eigenvalues are raised to ``EIG_FLOOR`` times the
largest so that the result is a valid :class:`~interpolant.oracle.GaussianMixture`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from .operators import Operator, as_tensor64

if TYPE_CHECKING:
    from ..oracle import GaussianMixture

EIG_FLOOR = 1e-12

__all__ = ["posterior", "check_sigma_y", "mixture_moments", "EIG_FLOOR"]


def check_sigma_y(sigma_y: Any) -> float:
    """``sigma_y`` as a float, or an error unless it is a finite number ``>= 0``."""
    if isinstance(sigma_y, Tensor) and sigma_y.numel() == 1:
        sigma_y = sigma_y.item()
    if isinstance(sigma_y, bool) or not isinstance(sigma_y, (int, float)) or not (
        math.isfinite(sigma_y) and sigma_y >= 0
    ):
        raise InterpolantError(
            f"sigma_y must be a finite number >= 0 (the measurement noise std), got {sigma_y!r}"
        )
    return float(sigma_y)


def posterior(gmm: GaussianMixture, op: Operator, y: Any, sigma_y: Any) -> GaussianMixture:
    """``p(x | y)`` for the prior ``gmm`` and ``y = op(x) + sigma_y n`` (one measurement ``y``,
    no batch dimension, of the shape ``op`` gives for one sample of ``gmm``)."""
    if not isinstance(op, Operator):
        raise InterpolantError(
            f"op must be an interpolant.inverse operator (Inpaint, Downsample, Blur, Linear, "
            f"...), got {type(op).__name__}"
        )
    s = check_sigma_y(sigma_y)
    a = op.matrix((gmm.dim,))
    y = as_tensor64(y, "the measurement y")
    out_shape = op.output_shape((gmm.dim,))
    if tuple(y.shape) != out_shape:
        raise InterpolantError(
            f"y must have shape {out_shape} (one measurement of a {gmm.dim}-D sample, no batch "
            f"dimension), got {tuple(y.shape)}"
        )
    y = y.flatten()
    m = y.numel()
    ca = gmm.covs @ a.T  # (K, D, m)
    cov_y = a @ ca + s * s * torch.eye(m, dtype=torch.float64)
    chol, info = torch.linalg.cholesky_ex(0.5 * (cov_y + cov_y.mT))
    if bool((info != 0).any()):
        raise InterpolantError(
            "A C A^T + sigma_y^2 I is singular: the operator has dependent rows and sigma_y = 0; "
            "pass sigma_y > 0 or an operator of full row rank"
        )
    resid = y - gmm.means @ a.T  # (K, m)
    gain = torch.cholesky_solve(ca.mT, chol).mT  # (K, D, m) = C A^T S^-1
    means = gmm.means + torch.einsum("kdm,km->kd", gain, resid)
    covs = gmm.covs - gain @ ca.mT
    white = torch.linalg.solve_triangular(chol, resid[..., None], upper=False)[..., 0]
    log_lik = (-0.5 * white.pow(2).sum(-1) - torch.diagonal(chol, dim1=1, dim2=2).log().sum(-1)
               - 0.5 * m * math.log(2 * math.pi))
    log_w = torch.log(gmm.weights) + log_lik
    weights = torch.softmax(log_w, 0).clamp_min(torch.finfo(torch.float64).tiny)
    extra = {"labels": gmm.labels} if getattr(gmm, "labels", None) is not None else {}
    return type(gmm)(means, _floored(covs), weights, **extra)


def _floored(covs: Tensor) -> Tensor:
    """Symmetrise and raise eigenvalues below ``EIG_FLOOR`` times the largest."""
    e, u = torch.linalg.eigh(0.5 * (covs + covs.mT))
    e = torch.maximum(e, EIG_FLOOR * e.amax(-1, keepdim=True))
    out = (u * e[:, None, :]) @ u.mT
    return 0.5 * (out + out.mT)


def mixture_moments(gmm: GaussianMixture) -> tuple[Tensor, Tensor]:
    """Mean ``sum w_k m_k`` and covariance ``sum w_k (C_k + m_k m_k^T) - mean mean^T``."""
    w = gmm.weights
    mean = w @ gmm.means
    second = torch.einsum("k,kde->de", w, gmm.covs + gmm.means[:, :, None] * gmm.means[:, None])
    return mean, second - torch.outer(mean, mean)
