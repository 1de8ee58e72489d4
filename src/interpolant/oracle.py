"""Exact references: a Gaussian mixture and everything about it in closed form.

For data ``p_0 = sum_k w_k N(mu_k, S_k)`` and any Gaussian path the marginal at time ``t`` is
``p_t = sum_k w_k N(alpha mu_k, alpha^2 S_k + sigma^2 I)``, and the posterior mean
(Tweedie's formula) is

    D(x, t) = sum_k r_k(x) [mu_k + alpha S_k (alpha^2 S_k + sigma^2 I)^{-1} (x - alpha mu_k)],

with responsibilities ``r_k`` proportional to ``w_k N(x; alpha mu_k, alpha^2 S_k + sigma^2 I)``.
With the eigendecomposition ``S_k = U_k diag(l_k) U_k^T`` every inverse is a division.

The probability-flow ODE depends on the path only through the log-SNR: with
``y = x / sigma`` and ``lam = log(alpha / sigma)`` it reads ``dy/dlam = exp(lam) D``, and
``D`` depends on ``(y, lam)`` alone. :meth:`GaussianMixture.flow` integrates that with
DOP853 at tight tolerances (closed form for one component: along each eigendirection
``x_t - alpha_t mu = sqrt(alpha_t^2 l + sigma_t^2) / sqrt(alpha_s^2 l + sigma_s^2) (x_s - alpha_s mu)``).

Classes: with ``labels`` (component ``k`` belongs to class ``labels[k]``) the class-conditional
law ``p(x0 | c)`` is the mixture of class ``c``'s components, so every quantity above holds for
it with the responsibilities restricted to those components; the exact noise-aware classifier
is ``p(c | x_t) = sum_{k: labels[k] = c} r_k(x_t)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from .errors import InterpolantError
from .labels import NULL_LABEL
from .paths import GaussianPath
from .predictions import Denoiser

LAM_CLAMP = 30.0  # |lam| beyond which the flow has moved by less than exp(-30) relative

__all__ = ["GaussianMixture", "LAM_CLAMP"]


def _as64(x: Any, name: str) -> Tensor:
    try:
        return torch.as_tensor(x).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise InterpolantError(f"{name} must be a tensor of numbers") from None


class GaussianMixture:
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
        self.labels = None if labels is None else _check_labels(labels, k)

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

    # -- classes (labels=) ----------------------------------------------------------------
    @property
    def num_classes(self) -> int | None:
        """``C`` for a class-conditional mixture (labels ``0 .. C-1``), else ``None``."""
        return None if self.labels is None else int(self.labels.max()) + 1

    def _labelled(self) -> Tensor:
        if self.labels is None:
            raise InterpolantError(
                "this mixture has no classes; build it with GaussianMixture(..., labels=...)"
            )
        return self.labels

    def class_log_prior(self) -> Tensor:
        """``log p(c) = log sum_{k: labels[k] = c} w_k``, shape ``(C,)``."""
        labels = self._labelled()
        prior = torch.zeros(self.num_classes, dtype=torch.float64)  # type: ignore[arg-type]
        return torch.log(prior.index_add_(0, labels, self.weights))

    def restrict(self, label: int) -> GaussianMixture:
        """``p(x0 | c = label)``: class ``label``'s components, renormalised (no labels)."""
        own = self._labelled()
        keep = own == int(label)
        if not keep.any():
            raise InterpolantError(f"no component has label {label}; classes: 0..{int(own.max())}")
        return GaussianMixture(self.means[keep], self.covs[keep], self.weights[keep])

    def class_log_posterior(self, x: Tensor, t: float | Tensor, path: GaussianPath) -> Tensor:
        """The exact noise-aware classifier ``log p(c | x_t = x)``, shape ``(n, C)``:
        ``logsumexp_{k: labels[k] = c} log w_k N(x; alpha mu_k, alpha^2 S_k + sigma^2 I)``
        minus ``log p_t(x)``."""
        labels = self._labelled()
        log_joint, _, _ = self._components(x, path.alpha(t), path.sigma(t))
        per_class = torch.stack(
            [torch.logsumexp(log_joint[:, labels == c], dim=1) for c in range(self.num_classes)], 1
        )
        return (per_class - torch.logsumexp(log_joint, dim=1, keepdim=True)).to(x.dtype)

    def classifier(self, path: GaussianPath) -> _ExactClassifier:
        """``classifier(x, t) -> log p(c | x_t)`` (``t`` of shape ``(n,)``): the exact
        noise-aware classifier of classifier guidance (Dhariwal & Nichol 2021) on ``path``."""
        self._labelled()
        return _ExactClassifier(self, path)

    def _class_mask(self, cond: Any, n: int) -> Tensor | None:
        """``(n, K)`` log-weights turning ``w_k`` into ``w_k / p(c_n)`` on class ``c_n`` and 0
        elsewhere (``-inf`` in logs); ``None`` (no change) for ``cond=None``; rows with
        ``NULL_LABEL`` unchanged."""
        if cond is None:
            return None
        labels = cond.get("labels") if isinstance(cond, Mapping) else cond
        if (not isinstance(labels, Tensor) or labels.shape != (n,)
                or labels.is_floating_point() or labels.dtype == torch.bool):
            got = (f"{labels.dtype} of shape {tuple(labels.shape)}" if isinstance(labels, Tensor)
                   else type(labels).__name__)
            raise InterpolantError(
                f"cond must be None or int64 class labels of shape ({n},), got {got}"
            )
        labels = labels.to("cpu", torch.int64)
        null = labels == NULL_LABEL
        if bool(null.all()):
            return None
        own = self._labelled()
        last = int(own.max())
        bad = ~null & ((labels < 0) | (labels > last))
        if bad.any():
            raise InterpolantError(
                f"label {int(labels[bad][0])} is outside this mixture's classes "
                f"0..{last} (NULL_LABEL = {NULL_LABEL} means no label)"
            )
        log_prior = self.class_log_prior()[labels.clamp(min=0)]
        mask = torch.where(labels[:, None] == own[None], -log_prior[:, None], -math.inf)
        return torch.where(null[:, None], 0.0, mask)

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

    # -- the probability-flow ODE -------------------------------------------------------
    def flow(
        self,
        path: GaussianPath,
        x: Tensor,
        t_from: float = 1.0,
        t_to: float | None = None,
        rtol: float = 1e-12,
        atol: float = 1e-12,
    ) -> Tensor:
        """Transport ``x`` at ``t_from`` along the exact probability-flow ODE to ``t_to``.

        Closed form for one component; otherwise DOP853 in ``(y = x / sigma, lam)``,
        accurate to about 1e-9 at the default tolerances. Either direction works.
        """
        t_to = path.t_min if t_to is None else float(t_to)
        t_from = float(t_from)
        x64 = self._check_points(x)
        if t_from == t_to:
            return x.clone()
        if self.n_components == 1:
            return self._gaussian_flow(path, x64, t_from, t_to).to(x.dtype)
        lam_a = min(max(path.lam(t_from), -LAM_CLAMP), LAM_CLAMP)
        lam_b = min(max(path.lam(t_to), -LAM_CLAMP), LAM_CLAMP)
        a_from, s_from = path.alpha(t_from), path.sigma(t_from)
        y0 = x64 / s_from if s_from > 0 else x64 * (math.exp(lam_a) / a_from)
        shape = y0.shape

        def rhs(lam: float, y: np.ndarray) -> np.ndarray:
            a_vp = 1.0 / math.sqrt(1.0 + math.exp(-2.0 * lam))  # any (alpha, sigma) with this lam
            s_vp = a_vp * math.exp(-lam)
            yt = torch.from_numpy(y).view(shape)
            return (math.exp(lam) * self.posterior_mean(s_vp * yt, a_vp, s_vp)).flatten().numpy()

        sol = solve_ivp(rhs, (lam_a, lam_b), y0.flatten().numpy(), method="DOP853",
                        rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"reference ODE solve failed: {sol.message}")
        y1 = torch.from_numpy(sol.y[:, -1]).view(shape)
        a_to, s_to = path.alpha(t_to), path.sigma(t_to)
        x1 = s_to * y1 if s_to > 0 else a_to * math.exp(-lam_b) * y1
        return x1.to(x.dtype)

    def _gaussian_flow(self, path: GaussianPath, x: Tensor, t_from: float, t_to: float) -> Tensor:
        mu, lam, u = self.means[0], self.eigvals[0], self.eigvecs[0]
        a_s, s_s, a_t, s_t = path.alpha(t_from), path.sigma(t_from), path.alpha(t_to), path.sigma(t_to)
        gain = torch.sqrt(a_t**2 * lam + s_t**2) / torch.sqrt(a_s**2 * lam + s_s**2)
        return a_t * mu + ((x - a_s * mu) @ u) * gain @ u.T

    # -- inverse problems (interpolant.inverse) ------------------------------------------
    def posterior(self, op: Any, y: Tensor, sigma_y: float) -> GaussianMixture:
        """The exact ``p(x | y)`` for ``y = op(x) + sigma_y n``: again a Gaussian mixture
        (Kalman update per component, weights times ``N(y; A m_k, A C_k A^T + sigma_y^2 I)``;
        see :func:`interpolant.inverse.posterior.posterior`). ``y``: one measurement, no batch."""
        from .inverse.posterior import posterior

        return posterior(self, op, y, sigma_y)


class _ExactPosteriorMean:
    """``model(x, t, cond) -> E[x0 | x_t = x]`` for a mixture on a path."""

    def __init__(self, gmm: GaussianMixture, path: GaussianPath) -> None:
        self.gmm, self.path = gmm, path

    def __call__(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        t64 = t.to(torch.float64)
        a, s = self.path.alpha(t64), self.path.sigma(t64)
        return self.gmm.posterior_mean(x, a, s, cond).to(x.dtype)


class _ExactClassifier:
    """``classifier(x, t) -> log p(c | x_t = x)`` for a class-conditional mixture on a path."""

    def __init__(self, gmm: GaussianMixture, path: GaussianPath) -> None:
        self.gmm, self.path = gmm, path

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        return self.gmm.class_log_posterior(x, t.to(torch.float64), self.path)


def _check_labels(labels: Any, k: int) -> Tensor:
    """Component labels: ``k`` integers covering ``0 .. C-1``."""
    if not isinstance(labels, Tensor):
        labels = torch.as_tensor(labels)
    if labels.shape != (k,) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise InterpolantError(f"labels must be {k} integers (one class per component)")
    labels = labels.to("cpu", torch.int64)
    present = torch.unique(labels)
    if present.min() < 0 or present.numel() != int(present.max()) + 1:
        raise InterpolantError(
            f"labels must cover the classes 0..C-1 without gaps, got {present.tolist()}"
        )
    return labels
