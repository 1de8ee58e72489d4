"""The exact two-sided interpolant between two Gaussian mixtures.

With ``x_0 ~ sum_i w_i N(m_i, C_i)`` and ``x_1 ~ sum_j v_j N(n_j, D_j)`` independent and
``x_t = a x_0 + b x_1 + gamma z``, the law of ``x_t`` is the mixture over pairs ``(i, j)`` of
``N(mu_ij, S_ij)`` with ``mu_ij = a m_i + b n_j`` and ``S_ij = a^2 C_i + b^2 D_j + gamma^2 I``.
Gaussian conditioning inside each pair gives, with ``r = S_ij^{-1} (x - mu_ij)``::

    E[x_0 | x, ij] = m_i + a C_i r,   E[x_1 | x, ij] = n_j + b D_j r,   E[z | x, ij] = gamma r

and the pair's responsibility ``p(ij | x)`` mixes them. The velocity is
``u = a' E[x_0|x] + b' E[x_1|x] + gamma' E[z|x]`` and the score ``-sum_ij p(ij|x) r``: all
exact, so samplers and learned fields of :mod:`interpolant.interpolants` can be checked
against them (Albergo, Boffi & Vanden-Eijnden 2023, Sec. 2-3). :class:`CoupledMixture` is the
same for a linear data-dependent coupling ``x_1 = B x_0 + C zeta``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from ..errors import InterpolantError
from ..oracle import GaussianMixture
from ..paths.interpolant import Interpolant

F64 = torch.float64


def _posterior_terms(x: Tensor, means: Tensor, covs: Tensor, log_w: Tensor
                     ) -> tuple[Tensor, Tensor]:
    """For the mixture ``sum_k w_k N(means_k, covs_k)``: the responsibilities ``p(k | x)``,
    ``(n, K)``, and ``r_k = covs_k^{-1} (x - means_k)``, ``(n, K, D)``, in float64."""
    chol = torch.linalg.cholesky(covs)  # (K, D, D)
    diff = x.to(F64)[:, None] - means[None]  # (n, K, D)
    white = torch.linalg.solve_triangular(chol[None], diff[..., None], upper=False)
    r = torch.cholesky_solve(diff[..., None], chol[None]).squeeze(-1)
    log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    log_p = log_w - 0.5 * (white.squeeze(-1).pow(2).sum(-1) + log_det)
    return torch.softmax(log_p, dim=1), r


class TwoSidedMixture:
    """The exact interpolant ``x_t = a x_0 + b x_1 + gamma z`` between mixtures ``p0`` and
    ``p1`` (independent coupling)."""

    def __init__(self, p0: GaussianMixture, p1: GaussianMixture, path: Interpolant) -> None:
        if p0.dim != p1.dim:
            raise InterpolantError(
                f"the two ends must have the same dimension, got {p0.dim} and {p1.dim}"
            )
        self.p0, self.p1, self.path = p0, p1, path

    def _pairs(self, t: float) -> tuple[Tensor, Tensor, Tensor]:
        """Means ``(K0 K1, D)``, covariances ``(K0 K1, D, D)`` and log-weights of ``x_t``."""
        a, b, g = self.path.scalars(t)[:3]
        eye = torch.eye(self.p0.dim, dtype=F64)
        means = (a * self.p0.means[:, None] + b * self.p1.means[None]).flatten(0, 1)
        covs = (a * a * self.p0.covs[:, None] + b * b * self.p1.covs[None]
                + g * g * eye).flatten(0, 1)
        log_w = (self.p0.weights.log()[:, None] + self.p1.weights.log()[None]).flatten()
        return means, covs, log_w

    def marginal(self, t: float) -> GaussianMixture:
        """The exact law of ``x_t``."""
        means, covs, log_w = self._pairs(t)
        return GaussianMixture(means, covs, log_w.exp())

    def expectations(self, x: Tensor, t: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(E[x_0|x_t=x], E[x_1|x_t=x], E[z|x_t=x], score)`` at ``t``, each ``(n, D)``."""
        a, b, g = self.path.scalars(t)[:3]
        means, covs, log_w = self._pairs(t)
        resp, r = _posterior_terms(x, means, covs, log_w)
        k0, k1 = self.p0.n_components, self.p1.n_components
        c0 = self.p0.covs.repeat_interleave(k1, 0)
        c1 = self.p1.covs.repeat(k0, 1, 1)
        m0 = self.p0.means.repeat_interleave(k1, 0)
        m1 = self.p1.means.repeat(k0, 1)
        e0 = m0[None] + a * torch.einsum("kde,nke->nkd", c0, r)
        e1 = m1[None] + b * torch.einsum("kde,nke->nkd", c1, r)
        mix = lambda v: torch.einsum("nk,nkd->nd", resp, v).to(x.dtype)  # noqa: E731
        return mix(e0), mix(e1), mix(g * r), mix(-r)

    def velocity(self, x: Tensor, t: float) -> Tensor:
        """``u(t, x) = E[a' x_0 + b' x_1 + gamma' z | x_t = x]``."""
        da, db, dg = self.path.scalars(t)[3:]
        e0, e1, ez, _ = self.expectations(x, t)
        return da * e0 + db * e1 + dg * ez

    def model(self) -> ExactInterpolantModel:
        """The exact fields as a model that samplers can call (``.path``, ``.nfe``)."""
        return ExactInterpolantModel(self)

    def flow(self, x: Tensor, t_from: float, t_to: float, rtol: float = 1e-10,
             atol: float = 1e-10) -> Tensor:
        """Transport ``x`` along the exact probability-flow ODE ``dx/dt = u`` (DOP853)."""
        shape = x.shape

        def rhs(t: float, y: np.ndarray) -> np.ndarray:
            xt = torch.from_numpy(y).view(shape)
            return self.velocity(xt, t).reshape(-1).numpy()

        sol = solve_ivp(rhs, (t_from, t_to), x.to(F64).reshape(-1).numpy(), method="DOP853",
                        rtol=rtol, atol=atol)
        if not sol.success:
            raise InterpolantError(f"the reference ODE solve failed: {sol.message}")
        return torch.from_numpy(sol.y[:, -1]).view(shape).to(x.dtype)


class ExactInterpolantModel:
    """The exact velocity, score and data prediction of a :class:`TwoSidedMixture`, called as
    ``model(x, t, cond, target)`` with ``target`` in ``velocity, score, x0, x1, eta``
    (``eta = E[z | x_t]``); ``nfe`` counts calls."""

    def __init__(self, oracle: TwoSidedMixture | CoupledMixture) -> None:
        self.oracle, self.path, self.nfe = oracle, oracle.path, 0

    def __call__(self, x: Tensor, t: Any, cond: Any = None, target: str = "velocity") -> Tensor:
        t = float(t) if not isinstance(t, Tensor) or t.numel() == 1 else None
        if t is None:
            raise InterpolantError("the exact interpolant model takes one time per batch")
        self.nfe += 1
        if target == "velocity":
            return self.oracle.velocity(x, t)
        if not hasattr(self.oracle, "expectations"):
            raise InterpolantError(f"{type(self.oracle).__name__} gives the velocity only, "
                                   f"not {target!r}")
        e0, e1, ez, score = self.oracle.expectations(x, t)
        fields = {"score": score, "x0": e0, "x1": e1, "eta": ez}
        if target not in fields:
            raise InterpolantError(
                f"target must be one of velocity, score, x0, x1, eta; got {target!r}"
            )
        return fields[target]


class CoupledMixture:
    """The exact interpolant of a *linear data-dependent coupling* (Albergo et al. 2024):
    ``x_0 ~ p0`` (a Gaussian mixture), ``x_1 = B x_0 + shift + C zeta`` with ``zeta ~ N(0, I)``
    independent (e.g. :class:`~interpolant.interpolants.Degraded`: ``B = A^+ A``,
    ``C = fill (I - A^+ A)``), ``x_t = a x_0 + b x_1`` (``gamma = 0``).

    In component ``k`` (mean ``m``, covariance ``S``) ``x_t = K x_0 + b C zeta`` and the
    velocity target ``T = K' x_0 + b' C zeta`` (``K = a I + b B``, ``K' = a' I + b' B``) are
    jointly Gaussian, so ``E[T | x_t = x, k] = K' m + (K' S K^T + b b' C C^T) V^{-1} (x - K m)``
    with ``V = K S K^T + b^2 C C^T`` (``b shift`` added to ``K m``, ``b' shift`` to ``K' m``);
    the responsibilities of ``N(K m, V)`` mix them.
    """

    def __init__(self, p0: GaussianMixture, B: Tensor, C: Tensor, path: Interpolant,  # noqa: N803
                 shift: Tensor | None = None) -> None:
        d = p0.dim
        if B.shape != (d, d) or C.shape != (d, d):
            raise InterpolantError(f"B and C must be ({d}, {d}) matrices, got "
                                   f"{tuple(B.shape)} and {tuple(C.shape)}")
        path.check_deterministic("the coupled mixture oracle")
        self.p0, self.B, self.C, self.path = p0, B.to(F64), C.to(F64), path
        self.shift = torch.zeros(d, dtype=F64) if shift is None else shift.to(F64).reshape(d)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` coupled pairs ``(x_0, x_1)``."""
        x0 = self.p0.sample(n, generator)
        zeta = torch.randn(x0.shape, generator=generator, dtype=F64)
        return x0, x0 @ self.B.T + self.shift + zeta @ self.C.T

    def _moments(self, t: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per component: mean ``K m`` and covariance ``V`` of ``x_t``, the target's mean
        ``K' m`` and ``cov(T, x_t)``."""
        a, b, _, da, db, _ = self.path.scalars(t)
        eye = torch.eye(self.p0.dim, dtype=F64)
        k, dk, cc = a * eye + b * self.B, da * eye + db * self.B, self.C @ self.C.T
        covs = self.p0.covs
        return (self.p0.means @ k.T + b * self.shift, k @ covs @ k.T + b * b * cc,
                self.p0.means @ dk.T + db * self.shift, dk @ covs @ k.T + b * db * cc)

    def marginal(self, t: float) -> GaussianMixture:
        """The exact law of ``x_t`` (at ``t = 1`` the source's)."""
        means, covs, _, _ = self._moments(t)
        return GaussianMixture(means, covs, self.p0.weights)

    def velocity(self, x: Tensor, t: float) -> Tensor:
        """``u(t, x) = E[a' x_0 + b' x_1 | x_t = x]``."""
        means, covs, t_means, cross = self._moments(t)
        resp, r = _posterior_terms(x, means, covs, self.p0.weights.log())
        per = t_means[None] + torch.einsum("kde,nke->nkd", cross, r)
        return torch.einsum("nk,nkd->nd", resp, per).to(x.dtype)

    def model(self) -> ExactInterpolantModel:
        """The exact velocity as a model that ``euler`` and ``heun`` can call."""
        return ExactInterpolantModel(self)
