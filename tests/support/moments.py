"""Sample moments against a Gaussian's: the acceptance test of the restoration tests."""

from __future__ import annotations

import math

import torch
from scipy.stats import chi2


def whitened_stats(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> tuple[float, float]:
    """``n |mean(z)|^2`` (chi-square with d degrees of freedom) and ``|cov(z) - I|_F`` in units of
    its root-mean-square ``sqrt((d^2 + d) / n)`` for ``z = L^{-1} (x - mean)``, ``cov = L L^T``."""
    z = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), (x - mean).T, upper=False).T
    n, d = z.shape
    mean_stat = n * float(z.mean(0).pow(2).sum())
    eye = torch.eye(d, dtype=z.dtype)
    cov_err = float((torch.cov(z.T) - eye).norm()) / math.sqrt((d * d + d) / n)
    return mean_stat, cov_err


def matches(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> bool:
    """Both statistics inside bounds that exact samples break with probability ~1e-4."""
    mean_stat, cov_err = whitened_stats(x, mean, cov)
    return bool(mean_stat < chi2.ppf(1 - 1e-4, x.shape[1])) and cov_err < 3.5


def mixture_moments(g) -> tuple[torch.Tensor, float]:
    """Mean and total variance ``tr Cov`` of a Gaussian mixture (law of total variance)."""
    mu = g.weights @ g.means
    second = (g.weights[:, None] * (g.covs.diagonal(dim1=1, dim2=2) + g.means**2)).sum()
    return mu, float(second - mu.pow(2).sum())
