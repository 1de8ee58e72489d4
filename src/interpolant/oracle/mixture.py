"""A Gaussian mixture and everything about it in closed form.

For data ``p_0 = sum_k w_k N(mu_k, S_k)`` and any Gaussian path the marginal at time ``t`` is
``p_t = sum_k w_k N(alpha mu_k, alpha^2 S_k + sigma^2 I)``, and the posterior mean
(Tweedie's formula) is

    D(x, t) = sum_k r_k(x) [mu_k + alpha S_k (alpha^2 S_k + sigma^2 I)^{-1} (x - alpha mu_k)],

with responsibilities ``r_k`` proportional to ``w_k N(x; alpha mu_k, alpha^2 S_k + sigma^2 I)``.
With the eigendecomposition ``S_k = U_k diag(l_k) U_k^T`` every inverse is a division.

The probability-flow ODE depends on the path only through the log-SNR: with
``y = x / sigma`` and ``lam = log(alpha / sigma)`` it reads ``dy/dlam = exp(lam) D``, and
``D`` depends on ``(y, lam)`` alone (:mod:`.flow`).

Classes: with ``labels`` (component ``k`` belongs to class ``labels[k]``) the class-conditional
law ``p(x0 | c)`` is the mixture of class ``c``'s components, so every quantity above holds for
it with the responsibilities restricted to those components; the exact noise-aware classifier
is ``p(c | x_t) = sum_{k: labels[k] = c} r_k(x_t)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..paths import GaussianPath
from ..predictions import Denoiser
from .classes import ClassConditional, check_labels
from .flow import LAM_CLAMP, mixture_flow

__all__ = ["GaussianMixture", "LAM_CLAMP"]


def _as64(x: Any, name: str) -> Tensor:
    try:
        return torch.as_tensor(x).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise InterpolantError(f"{name} must be a tensor of numbers") from None


class GaussianMixture(ClassConditional):
    """``sum_k w_k N(mu_k, S_k)`` with means ``(K, D)``, covariances ``(K, D, D)``, weights ``(K,)``.

    ``labels`` (int64 ``(K,)``, values covering ``0 .. C-1``) makes it class-conditional: the
    methods that take ``cond`` (int64 ``(n,)`` class labels, ``NULL_LABEL`` entries or ``None``
    for the unconditional mixture) then answer for ``p(x0 | c)``. All computation is in float64; inputs of other dtypes are converted, and tensor results
    come back in the dtype of the query.
    """

    def __init__(
        self,
        means: Tensor,
        covs: Tensor,
        weights: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> None:
        means, covs = _as64(means, "means"), _as64(covs, "covs")
        if means.ndim != 2:
            raise InterpolantError(f"means must have shape (K, D), got {tuple(means.shape)}")
        k, d = means.shape
        if covs.shape != (k, d, d):
            raise InterpolantError(
                f"covs must have shape (K, D, D) = ({k}, {d}, {d}), got {tuple(covs.shape)}"
            )
        weights = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else _as64(
            weights, "weights"
        )
        if weights.shape != (k,) or not torch.all(weights > 0):
            raise InterpolantError(f"weights must be {k} positive numbers")
        if not torch.allclose(covs, covs.transpose(1, 2), rtol=1e-10, atol=1e-12):
            raise InterpolantError("covariances must be symmetric")
        eigvals, eigvecs = torch.linalg.eigh(covs)
        if not torch.all(eigvals > 0):
            raise InterpolantError("covariances must be positive definite")
        self.means, self.covs = means, covs
        self.weights = weights / weights.sum()
        self.eigvals, self.eigvecs = eigvals, eigvecs
        self._log_w = torch.log(self.weights)
        self.labels = None if labels is None else check_labels(labels, k)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.n_components}, D={self.dim})"

    # -- presets ------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> GaussianMixture:
        """Test mixtures: ``"aniso2d"`` (8 elongated components on a circle, smallest std
        0.1, unequal weights), ``"mix8d"`` (4 components in 8-D, random full covariances),
        ``"gauss2d"`` (one anisotropic, rotated Gaussian)."""
        if name == "aniso2d":
            ang = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
            means = 1.5 * torch.stack([ang.cos(), ang.sin()], 1)
            rot = torch.stack([torch.stack([ang.cos(), -ang.sin()], 1),
                               torch.stack([ang.sin(), ang.cos()], 1)], 1)
            covs = rot @ torch.diag(torch.tensor([0.1, 0.3], dtype=torch.float64) ** 2) @ rot.mT
            return cls(means, covs, torch.arange(1, 9, dtype=torch.float64))
        if name == "mix8d":
            g = torch.Generator().manual_seed(8)
            means = 1.2 * torch.randn(4, 8, generator=g, dtype=torch.float64)
            a = torch.randn(4, 8, 8, generator=g, dtype=torch.float64) / math.sqrt(8)
            covs = 0.3 * a @ a.mT + 0.02 * torch.eye(8, dtype=torch.float64)
            return cls(means, covs, torch.tensor([0.4, 0.3, 0.2, 0.1]))
        if name == "gauss2d":
            c, s = math.cos(0.5), math.sin(0.5)
            rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
            cov = rot @ torch.diag(torch.tensor([0.6, 0.15], dtype=torch.float64) ** 2) @ rot.T
            return cls(torch.tensor([[0.3, -0.2]]), cov[None])
        raise InterpolantError(f"unknown preset {name!r}; choose one of: aniso2d, gauss2d, mix8d")

    # -- data ------------------------------------------------------------------------
    def sample(
        self, n: int, generator: torch.Generator | None = None, return_labels: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``n`` exact samples (float64), optionally with their component labels."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        scaled = z * self.eigvals[labels].sqrt()
        x = self.means[labels] + torch.einsum("nde,ne->nd", self.eigvecs[labels], scaled)
        return (x, labels) if return_labels else x

    def marginal(self, path: GaussianPath, t: float) -> GaussianMixture:
        """The exact law of ``x_t`` under ``path``: means ``alpha mu``, covs ``alpha^2 S + sigma^2 I``."""
        a, s = path.alpha(float(t)), path.sigma(float(t))
        eye = torch.eye(self.dim, dtype=torch.float64)
        return GaussianMixture(
            a * self.means, a * a * self.covs + s * s * eye, self.weights, self.labels
        )

    def log_prob(self, x: Tensor, cond: Any = None) -> Tensor:
        """Exact log-density of the data (given the class ``cond``), shape ``(n,)``."""
        log_joint, _, _ = self._components(x, 1.0, 0.0, cond)
        return torch.logsumexp(log_joint, dim=1).to(x.dtype)

    # -- the posterior -----------------------------------------------------------------
    def _check_points(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InterpolantError(f"points must have shape (n, {self.dim}), got {shape}")
        return x.to(torch.float64)

    def _components(
        self, x: Tensor, a: Tensor | float, s: Tensor | float, cond: Any = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per component: ``log w_k N(x; a mu_k, a^2 S_k + s^2 I)`` (given the class ``cond``:
        ``log w_k / p(c) N(...)``, ``-inf`` off the class), the rotated residual
        ``U_k^T (x - a mu_k)`` and the variances ``a^2 l_k + s^2``; ``a, s`` floats or ``(n,)``."""
        x = self._check_points(x)
        mask = self._class_mask(cond, x.shape[0])
        if isinstance(a, Tensor):
            a = a.to(torch.float64)[:, None, None]
            s = s.to(torch.float64)[:, None, None]  # type: ignore[union-attr]
        resid = x[:, None, :] - a * self.means[None]
        z = torch.einsum("nkd,kde->nke", resid, self.eigvecs)
        var = a * a * self.eigvals[None] + s * s
        log_joint = -0.5 * ((z * z) / var + torch.log(2 * math.pi * var)).sum(-1) + self._log_w
        return (log_joint if mask is None else log_joint + mask), z, var

    def posterior_mean(
        self, x: Tensor, a: Tensor | float, s: Tensor | float, cond: Any = None
    ) -> Tensor:
        """``E[x0 | a x0 + s eps = x, c]`` for scalars or per-sample ``(n,)`` coefficients."""
        log_joint, z, var = self._components(x, a, s, cond)
        a3 = a.to(torch.float64)[:, None, None] if isinstance(a, Tensor) else a
        resp = torch.softmax(log_joint, dim=1)
        shrunk = a3 * self.eigvals[None] * z / var
        means = self.means[None] + torch.einsum("kde,nke->nkd", self.eigvecs, shrunk)
        return torch.einsum("nk,nkd->nd", resp, means)

    def score(
        self, x: Tensor, t: float | Tensor, path: GaussianPath, cond: Any = None
    ) -> Tensor:
        """``grad_x log p_t(x | c)`` exactly (``cond`` as in :meth:`posterior_mean`)."""
        a, s = path.alpha(t), path.sigma(t)
        log_joint, z, var = self._components(x, a, s, cond)
        resp = torch.softmax(log_joint, dim=1)
        grads = -torch.einsum("kde,nke->nkd", self.eigvecs, z / var)
        return torch.einsum("nk,nkd->nd", resp, grads).to(x.dtype)

    def denoiser(self, path: GaussianPath) -> Denoiser:
        """The exact denoiser on ``path`` (predicts ``x0``); its ``nfe`` counts calls.

        Called as ``den(x, t, cond)``: ``E[x0 | x_t = x, c = cond]`` (see :meth:`posterior_mean`).
        """
        return Denoiser(_ExactPosteriorMean(self, path), path, prediction="x0")

    def flow(self, path: GaussianPath, x: Tensor, t_from: float = 1.0,
             t_to: float | None = None, **tolerances: float) -> Tensor:
        """Transport ``x`` at ``t_from`` along the exact probability-flow ODE to ``t_to``
        (:func:`.flow.mixture_flow`: closed form for one component, else DOP853 in
        ``(x / sigma, lam)`` at ``rtol = atol = 1e-12`` unless given, accurate to about 1e-9;
        either direction)."""
        return mixture_flow(self, path, x, t_from, t_to, **tolerances)

    # -- inverse problems (interpolant.inverse) ------------------------------------------
    def posterior(self, op: Any, y: Tensor, sigma_y: float) -> GaussianMixture:
        """The exact ``p(x | y)`` for ``y = op(x) + sigma_y n``: again a Gaussian mixture
        (Kalman update per component, weights times ``N(y; A m_k, A C_k A^T + sigma_y^2 I)``;
        see :func:`interpolant.inverse.posterior.posterior`). ``y``: one measurement, no batch."""
        from ..inverse.posterior import posterior

        return posterior(self, op, y, sigma_y)


class _ExactPosteriorMean:
    """``model(x, t, cond) -> E[x0 | x_t = x]`` for a mixture on a path."""

    def __init__(self, gmm: GaussianMixture, path: GaussianPath) -> None:
        self.gmm, self.path = gmm, path

    def __call__(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        t64 = t.to(torch.float64)
        a, s = self.path.alpha(t64), self.path.sigma(t64)
        return self.gmm.posterior_mean(x, a, s, cond).to(x.dtype)
