"""Distances between feature sets ``(n, F)``: Frechet distance, KID, precision and recall.

These are the metrics of FID-style evaluation, independent of the feature network; the
digits network of :mod:`interpolant.metrics.digits_classifier` supplies the features here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InterpolantError
from ._checks import ArrayLike, as_pair, as_samples, check_positive_int, pairwise_distances
from .distances import mmd

__all__ = ["gaussian_frechet", "frechet_distance", "kid", "precision_recall", "class_balance"]


def _psd_sqrt(s: Tensor) -> Tensor:
    w, u = torch.linalg.eigh(s)
    return (u * w.clamp(min=0).sqrt()) @ u.T


def gaussian_frechet(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """Squared Frechet (= W2) distance between ``N(mu1, cov1)`` and ``N(mu2, cov2)``:

        ``|mu1 - mu2|^2 + Tr(cov1 + cov2 - 2 (cov1^(1/2) cov2 cov1^(1/2))^(1/2))``

    (Dowson & Landau 1982; FID, Heusel et al. 2017). ``Tr (cov1 cov2)^(1/2)`` is computed as
    the sum of square roots of the eigenvalues of the symmetric ``cov1^(1/2) cov2 cov1^(1/2)``
    (``eigh``, negative rounding clamped to 0) in float64, stable for singular covariances
    where ``scipy.linalg.sqrtm`` of the non-symmetric product warns. Result clamped at 0.
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64).flatten() for m in (mu1, mu2))
    cov1, cov2 = (torch.as_tensor(c, dtype=torch.float64) for c in (cov1, cov2))
    d = mu1.shape[0]
    if mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise InterpolantError(
            f"need means (F,) and covariances (F, F) of one size, got {tuple(mu1.shape)}, "
            f"{tuple(cov1.shape)}, {tuple(mu2.shape)}, {tuple(cov2.shape)}"
        )
    root1 = _psd_sqrt(0.5 * (cov1 + cov1.T))
    middle = root1 @ (0.5 * (cov2 + cov2.T)) @ root1
    tr_sqrt = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * tr_sqrt
    return max(float(value), 0.0)


def frechet_distance(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the FID formula).

    Means and unbiased covariances (``1 / (n - 1)``) of each set, then
    :func:`gaussian_frechet`. The plug-in estimate is biased upward at finite ``n`` (two
    samples of one law give a positive value, the "noise floor", of order ``F^2 / n``);
    compare values only at equal sample sizes. With fewer samples than features the
    covariances are singular; the result is still defined but dominated by that floor.
    """
    a, b = as_pair(feats_a, feats_b, min_n=2)
    return gaussian_frechet(a.mean(0), torch.cov(a.T).reshape(a.shape[1], -1),
                            b.mean(0), torch.cov(b.T).reshape(b.shape[1], -1))


def kid(
    feats_a: ArrayLike,
    feats_b: ArrayLike,
    n_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): ``(mean, std)`` over subsets of the
    unbiased ``MMD^2`` with the cubic kernel ``k(a, b) = (a.b / F + 1)^3``.

    Each of ``n_subsets`` rounds draws ``min(subset_size, n_a, n_b)`` rows of each set without
    replacement (``torch.Generator`` seeded with ``seed``) and computes :func:`mmd` with
    ``kernel="poly"``. Every term is unbiased, so the mean is an unbiased estimate of the
    population ``MMD^2`` at any sample size (zero for equal laws, and may be negative).
    ``std`` is the spread over subsets (not the standard error of the mean).
    """
    a, b = as_pair(feats_a, feats_b, min_n=2)
    n_subsets = check_positive_int(n_subsets, "n_subsets")
    m = min(check_positive_int(subset_size, "subset_size"), a.shape[0], b.shape[0])
    if m < 2:
        raise InterpolantError("kid needs subsets of at least 2 samples")
    g = torch.Generator().manual_seed(int(seed))
    values = torch.empty(n_subsets, dtype=torch.float64)
    for i in range(n_subsets):
        ia = torch.randperm(a.shape[0], generator=g)[:m]
        ib = torch.randperm(b.shape[0], generator=g)[:m]
        values[i] = mmd(a[ia], b[ib], kernel="poly", degree=3)
    std = float(values.std()) if n_subsets > 1 else 0.0
    return float(values.mean()), std


def _kth_radius(x: Tensor, k: int) -> Tensor:
    """Distance from each point to its ``k``-th nearest neighbour in ``x``, itself excluded."""
    d = pairwise_distances(x, x)
    return torch.kthvalue(d, k + 1, dim=1).values  # the 1st smallest is the point itself


def precision_recall(
    feats_real: ArrayLike, feats_fake: ArrayLike, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius the distance to
    the ``k``-th nearest neighbour in the same set. Precision: fraction of fake points inside
    the real manifold (``|f - r| <= radius(r)`` for some real ``r``); recall: fraction of real
    points inside the fake manifold. Both are 1 for identical sets and 0 for far-apart ones.
    """
    real, fake = as_pair(feats_real, feats_fake)
    k = check_positive_int(k, "k")
    if min(real.shape[0], fake.shape[0]) <= k:
        raise InterpolantError(
            f"precision_recall with k={k} needs more than k points in each set, got "
            f"{real.shape[0]} real and {fake.shape[0]} fake; pass more samples or a smaller k"
        )
    r_real, r_fake = _kth_radius(real, k), _kth_radius(fake, k)
    d = pairwise_distances(fake, real)  # (n_fake, n_real)
    precision = (d <= r_real[None, :]).any(1).double().mean()
    recall = (d <= r_fake[:, None]).any(0).double().mean()
    return float(precision), float(recall)


def class_balance(counts: Tensor, expected: Tensor | None = None, min_fraction: float = 0.1
                  ) -> dict[str, float]:
    """Mode-coverage statistics of a class histogram ``counts (K,)``.

    ``entropy`` (nats) of the class frequencies ``q``, ``normalized_entropy = entropy / log K``
    (1 for a uniform histogram); ``covered``: number of classes with ``q_k >= min_fraction / K``;
    ``chi2 = sum_k (c_k - e_k)^2 / e_k`` against ``expected`` counts (default uniform), scaled
    to the same total.
    """
    c = as_samples(torch.as_tensor(counts).reshape(1, -1), "counts")[0]
    if (c < 0).any() or c.sum() <= 0:
        raise InterpolantError("counts must be non-negative with a positive total")
    k = c.shape[0]
    e = torch.ones(k, dtype=torch.float64) if expected is None else \
        as_samples(torch.as_tensor(expected).reshape(1, -1), "expected")[0]
    if e.shape != c.shape or (e <= 0).any():
        raise InterpolantError(f"expected must be {k} positive numbers")
    e = e * (c.sum() / e.sum())
    q = c / c.sum()
    entropy = -float((q[q > 0] * q[q > 0].log()).sum())
    return {
        "entropy": entropy,
        "normalized_entropy": entropy / math.log(k) if k > 1 else 1.0,
        "covered": int((q >= min_fraction / k).sum()),
        "chi2": float(((c - e).square() / e).sum()),
    }
