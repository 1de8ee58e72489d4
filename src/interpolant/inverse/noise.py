"""Estimating an unknown measurement noise ``sigma_y`` from the measurements themselves.

Under a Gaussian-mixture prior ``sum_k w_k N(m_k, C_k)`` (the exact oracle, or a Gaussian fitted
to training data as a stand-in for a learnt prior) a measurement ``y = A x + sigma_y n`` has the
marginal law

    p(y | sigma_y) = sum_k w_k N(y; A m_k, A C_k A^T + sigma_y^2 I),

the evidence of :func:`.posterior.posterior`. :func:`estimate_sigma_y` maximises it (type-II
maximum likelihood, empirical Bayes; e.g. MacKay 1992, Bishop PRML sec. 3.5) over ``sigma_y``,
jointly for ``N`` measurements that share the noise level. With ``A C_k A^T = U diag(e) U^T``
and ``z = U^T (y - A m_k)`` each term costs ``O(m)`` per trial value:

    log N = -1/2 sum_i [z_i^2 / (e_i + s^2) + log(e_i + s^2) + log 2 pi].

The noise is identifiable along the directions where the prior's ``e_i`` is small against
``sigma_y^2`` (the data's null space and fine detail); its error falls like ``1 / sqrt(N m')``
over the ``m'`` such directions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from ..errors import InterpolantError
from .operators import Operator, as_tensor64

if TYPE_CHECKING:
    from ..oracle import GaussianMixture

__all__ = ["estimate_sigma_y", "log_evidence"]

GRID = 64  # log-spaced trial values before the bounded refinement


def _spectra(prior: GaussianMixture, a: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues ``e`` (K, m) of ``A C_k A^T`` and ``z^2`` (N, K, m) of the measurements."""
    e, u = torch.linalg.eigh(a @ prior.covs @ a.T)
    resid = y[:, None, :] - (prior.means @ a.T)[None]  # (N, K, m)
    z = torch.einsum("nkm,kmj->nkj", resid, u)
    return e.clamp_min(0.0), z.pow(2)


def _log_evidence(e: Tensor, z2: Tensor, log_w: Tensor, sigma: float) -> float:
    var = e + sigma * sigma  # (K, m)
    per = -0.5 * (z2 / var + var.log() + math.log(2 * math.pi)).sum(-1)  # (N, K)
    return float(torch.logsumexp(per + log_w, dim=1).sum())


def _setup(prior: Any, op: Any, y: Any, shape: Sequence[int] | None
           ) -> tuple[Tensor, Tensor, Tensor]:
    from ..oracle import GaussianMixture

    if not isinstance(prior, GaussianMixture):
        raise InterpolantError(f"prior must be an interpolant.oracle.GaussianMixture, got "
                               f"{type(prior).__name__}")
    if not isinstance(op, Operator):
        raise InterpolantError(f"op must be an interpolant.inverse operator, got "
                               f"{type(op).__name__}")
    shape = (prior.dim,) if shape is None else tuple(shape)
    if math.prod(shape) != prior.dim:
        raise InterpolantError(f"samples of shape {shape} do not fit a {prior.dim}-D prior")
    y = as_tensor64(y, "the measurement y")
    out = op.output_shape(shape)
    if tuple(y.shape) == out:
        y = y[None]
    if tuple(y.shape[1:]) != out:
        dims = ", ".join(map(str, out))
        raise InterpolantError(f"y must have shape {out} (one measurement) or (N, {dims}) (N "
                               f"measurements with one noise level), got {tuple(y.shape)}")
    return op.matrix(shape), y.reshape(y.shape[0], -1), torch.log(prior.weights)


def log_evidence(prior: GaussianMixture, op: Operator, y: Tensor, sigma_y: float,
                 shape: Sequence[int] | None = None) -> float:
    """``sum_n log p(y_n | sigma_y)`` under ``prior`` (see the module docstring)."""
    a, y, log_w = _setup(prior, op, y, shape)
    e, z2 = _spectra(prior, a, y)
    return _log_evidence(e, z2, log_w, float(sigma_y))


def estimate_sigma_y(prior: GaussianMixture, op: Operator, y: Tensor,
                     shape: Sequence[int] | None = None,
                     bounds: tuple[float, float] = (1e-4, 10.0)) -> float:
    """The ``sigma_y`` in ``bounds`` that maximises the evidence of ``y`` (one measurement, or
    ``N`` stacked along a first dimension, sharing one noise level) under ``prior``: the best of
    ``GRID`` log-spaced values, refined by a bounded scalar search in ``log sigma_y``.

    ``shape``: the shape of one sample that ``op`` acts on (default ``(prior.dim,)``; e.g.
    ``(1, 8, 8)`` for an image operator with a prior over flattened images). A result at the
    lower bound says the measurement is consistent with no noise at all.
    """
    lo, hi = (float(b) for b in bounds)
    if not 0 < lo < hi or not math.isfinite(hi):
        raise InterpolantError(f"bounds must be 0 < low < high, got {bounds}")
    a, y, log_w = _setup(prior, op, y, shape)
    e, z2 = _spectra(prior, a, y)

    def loss(u: float) -> float:
        return -_log_evidence(e, z2, log_w, math.exp(u))

    grid = torch.linspace(math.log(lo), math.log(hi), GRID).tolist()
    best = min(range(GRID), key=lambda i: loss(grid[i]))
    left, right = grid[max(best - 1, 0)], grid[min(best + 1, GRID - 1)]
    found = minimize_scalar(loss, bounds=(left, right), method="bounded",
                            options={"xatol": 1e-10})
    return math.exp(found.x)
