"""Rewards with a closed-form tilt, and the exact reward-tilted Gaussian mixture.

For a mixture prior ``p = sum_k w_k N(mu_k, S_k)`` and a reward that is at most quadratic,
written in natural form ``r(x) = -1/2 x^T P x + h^T x + c0``, the tilted law
``p(x) exp(lam r(x)) / Z`` is again a mixture (complete the square per component)::

    S'_k   = (S_k^{-1} + lam P)^{-1}
    mu'_k  = S'_k (S_k^{-1} mu_k + lam h)
    log Z_k = 1/2 mu'_k^T S'_k^{-1} mu'_k - 1/2 mu_k^T S_k^{-1} mu_k
              + 1/2 log det S'_k - 1/2 log det S_k + lam c0
    w'_k ∝ w_k Z_k,      Z = E_p[exp(lam r)] = sum_k w_k Z_k.

This is the target of reward steering (Singhal et al. 2025, "A General Framework for
Inference-time Scaling and Steering of Diffusion Models"): FK steering, SMC and DriftLite all
aim at it, so on a mixture prior every one of them has an exact reference.

The optimal twist of the same target on a Gaussian path is also closed form: with ``p_t`` and
``p~_t`` the marginals of ``p`` and of the tilted law at time ``t``,
``h_t(x) = E[exp(lam r(x0)) | x_t = x] = Z p~_t(x) / p_t(x)`` (:func:`exact_twist`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import InterpolantError

if TYPE_CHECKING:
    from ..oracle import GaussianMixture
    from ..paths import GaussianPath

__all__ = ["LinearReward", "QuadraticReward", "tilted", "tilted_log_normalizer", "exact_twist"]

F64 = torch.float64


def _vector(v: Any, name: str) -> Tensor:
    try:
        out = torch.as_tensor(v).detach().to("cpu", F64)
    except (TypeError, ValueError, RuntimeError):
        raise InterpolantError(f"{name} must be a tensor of numbers") from None
    if out.ndim != 1 or not bool(torch.isfinite(out).all()):
        raise InterpolantError(f"{name} must be a finite 1-D tensor, got shape {tuple(out.shape)}")
    return out


class _Natural:
    """A reward ``r(x) = -1/2 x^T P x + h^T x + c0`` on points ``(n, D)``; returns ``(n,)``."""

    P: Tensor
    h: Tensor
    c0: float

    def __call__(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.h.numel():
            raise InterpolantError(
                f"this reward is defined on {self.h.numel()} coordinates, got points of shape "
                f"{tuple(x.shape)}"
            )
        z = flat.to(F64)
        quad = torch.einsum("nd,de,ne->n", z, self.P, z)
        return (-0.5 * quad + z @ self.h + self.c0).to(x.dtype)


class LinearReward(_Natural):
    """``r(x) = b . x`` (a half-space's direction; ``exp(lam r)`` shifts every component's
    mean by ``lam S_k b``)."""

    def __init__(self, b: Any) -> None:
        self.h = _vector(b, "b")
        self.P = torch.zeros(self.h.numel(), self.h.numel(), dtype=F64)
        self.c0 = 0.0

    def __repr__(self) -> str:
        return f"LinearReward(b={self.h.tolist()})"


class QuadraticReward(_Natural):
    """``r(x) = -1/2 (x - c)^T A (x - c)`` (``A`` symmetric; ``A = I``: minus half the squared
    distance to ``c``)."""

    def __init__(self, A: Any, c: Any) -> None:
        self.c = _vector(c, "c")
        d = self.c.numel()
        A = torch.as_tensor(A).detach().to("cpu", F64)
        if A.shape != (d, d) or not torch.allclose(A, A.T) or not bool(torch.isfinite(A).all()):
            raise InterpolantError(f"A must be a finite symmetric ({d}, {d}) matrix")
        self.P, self.h = A, A @ self.c
        self.c0 = float(-0.5 * self.c @ A @ self.c)

    def __repr__(self) -> str:
        return f"QuadraticReward(c={self.c.tolist()})"


def _natural(reward: Any, dim: int) -> _Natural:
    if not isinstance(reward, _Natural):
        raise InterpolantError(
            "the exact tilt needs a LinearReward or QuadraticReward (a reward at most quadratic "
            f"in x), got {type(reward).__name__}"
        )
    if reward.h.numel() != dim:
        raise InterpolantError(f"the reward has {reward.h.numel()} coordinates, the mixture {dim}")
    return reward


def _tilt(gmm: GaussianMixture, reward: Any, scale: float) -> tuple[GaussianMixture, float]:
    """The tilted mixture and ``log Z = log E_p[exp(scale r)]`` (formulas in the module doc)."""
    r = _natural(reward, gmm.dim)
    lam = float(scale)
    inv_l = 1.0 / gmm.eigvals
    s_inv = torch.einsum("kde,ke,kfe->kdf", gmm.eigvecs, inv_l, gmm.eigvecs)
    prec = s_inv + lam * r.P
    prec = 0.5 * (prec + prec.mT)
    ev, evec = torch.linalg.eigh(prec)
    if not bool((ev > 0).all()):
        k = int((ev <= 0).any(-1).nonzero()[0])
        raise InterpolantError(
            f"exp({lam:g} r) is not integrable under component {k}: S^-1 + scale A is not "
            "positive definite there; use a smaller scale or a positive semi-definite A"
        )
    cov = torch.einsum("kde,ke,kfe->kdf", evec, 1.0 / ev, evec)
    eta = torch.einsum("kde,ke->kd", s_inv, gmm.means) + lam * r.h
    mean = torch.einsum("kde,ke->kd", cov, eta)
    log_zk = (0.5 * torch.einsum("kd,kd->k", mean, eta)
              - 0.5 * torch.einsum("kd,kd->k", gmm.means, eta - lam * r.h)
              - 0.5 * torch.log(ev).sum(-1) - 0.5 * torch.log(gmm.eigvals).sum(-1) + lam * r.c0)
    log_w = torch.log(gmm.weights) + log_zk
    log_z = float(torch.logsumexp(log_w, 0))
    return type(gmm)(mean, 0.5 * (cov + cov.mT), torch.softmax(log_w, 0), gmm.labels), log_z


def tilted(gmm: GaussianMixture, reward: Any, scale: float = 1.0) -> GaussianMixture:
    """The exact law ``p(x) exp(scale r(x)) / Z`` of a mixture ``p`` and a
    :class:`LinearReward` or :class:`QuadraticReward` ``r``: again a mixture."""
    return _tilt(gmm, reward, scale)[0]


def tilted_log_normalizer(gmm: GaussianMixture, reward: Any, scale: float = 1.0) -> float:
    """``log Z = log E_p[exp(scale r(x))]``, the normaliser of :func:`tilted`."""
    return _tilt(gmm, reward, scale)[1]


class _ExactTwist:
    """``log h_t(x) = log Z + log p~_t(x) - log p_t(x)``, called as ``twist(x, x0hat, t)``."""

    def __init__(self, gmm: GaussianMixture, reward: Any, path: GaussianPath, scale: float):
        self.gmm, self.path = gmm, path
        self.tilt, self.log_z = _tilt(gmm, reward, scale)

    def __call__(self, x: Tensor, x0hat: Tensor | None, t: float) -> Tensor:
        p_t = self.gmm.marginal(self.path, t).log_prob(x)
        q_t = self.tilt.marginal(self.path, t).log_prob(x)
        return (q_t - p_t + self.log_z).to(x.dtype)


def exact_twist(
    gmm: GaussianMixture, reward: Any, path: GaussianPath, scale: float = 1.0
) -> _ExactTwist:
    """The optimal twist of the tilted target on ``path``:
    ``log h_t(x) = log E_p[exp(scale r(x0)) | x_t = x] = log Z + log p~_t(x) - log p_t(x)``
    (``p~`` = :func:`tilted`). Pass it as ``potential=`` to :func:`interpolant.guidance.smc`
    with ``proposal=tilted(gmm, r, scale).denoiser(path)`` and the weights stay (nearly)
    constant: the twisted SMC sampler of Wu et al. (2023) with its optimal twist."""
    if not math.isfinite(float(scale)):
        raise InterpolantError(f"scale must be finite, got {scale}")
    return _ExactTwist(gmm, reward, path, float(scale))
