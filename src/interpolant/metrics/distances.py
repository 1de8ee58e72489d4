"""Two-sample distances between sample sets ``x`` of shape ``(n, D)`` and ``y`` of ``(m, D)``.

* :func:`wasserstein`: ``W_p``, returned as a distance (not ``W_p^p``); plug-in, exact OT.
* :func:`sliced_wasserstein`: ``SW_p = (E_theta W_p^p(<theta, X>, <theta, Y>))^(1/p)``;
  plug-in, Monte Carlo over directions ``theta``.
* :func:`mmd`: ``MMD^2`` (squared), RBF or cubic polynomial kernel; unbiased U-statistic.
* :func:`energy_distance`: ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` (squared form); V- or U-statistic.

"Plug-in" means the distance between the two empirical measures: it is biased upwards for
finite samples (two samples of one law are at a positive distance, shrinking like
``n^(-1/D)`` for ``W_p``). The MMD and energy U-statistics are unbiased for the population
value and may therefore come out slightly negative.

All results are Python floats computed in float64. Inputs may be tensors or numpy arrays.
References: Villani (2009) for OT; Bonneel et al. (2015) for sliced Wasserstein;
Gretton et al. (2012, JMLR) for the MMD; Szekely & Rizzo (2013) for the energy distance.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ..errors import InterpolantError
from ._checks import ArrayLike, as_pair, check_positive_int, pairwise_distances

__all__ = ["wasserstein", "sliced_wasserstein", "mmd", "energy_distance", "median_bandwidth"]


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 1:
        raise InterpolantError(f"p must be a number >= 1, got {p!r}")
    return float(p)


def wasserstein(x: ArrayLike, y: ArrayLike, p: float = 2) -> float:
    """Exact ``W_p`` between the empirical measures of ``x`` and ``y`` (uniform weights).

    ``W_p = (min_pi sum_ij pi_ij |x_i - y_j|^p)^(1/p)`` over couplings ``pi`` with marginals
    ``1/n`` and ``1/m``, solved exactly by the network simplex of POT (``ot.emd2``). The
    return value is the distance ``W_p``, not ``W_p^p``. Without POT installed, equal sample
    sizes are still handled exactly: the optimal plan is then a permutation (Birkhoff), found
    by ``scipy.optimize.linear_sum_assignment``. Cost ``O(n^3)``; fine up to a few thousand.
    """
    p = _check_p(p)
    x, y = as_pair(x, y)
    cost = (pairwise_distances(x, y) ** p).numpy()
    try:
        import ot
    except ImportError:
        ot = None
    if ot is not None:
        a = np.full(x.shape[0], 1.0 / x.shape[0])
        b = np.full(y.shape[0], 1.0 / y.shape[0])
        value = float(ot.emd2(a, b, cost, numItermax=10_000_000))
    elif x.shape[0] == y.shape[0]:
        rows, cols = linear_sum_assignment(cost)
        value = float(cost[rows, cols].mean())
    else:
        raise InterpolantError(
            "wasserstein() between sets of different sizes needs POT: pip install pot "
            "(or pass sets of equal size)"
        )
    return max(value, 0.0) ** (1.0 / p)


def _w_pp_1d(a: Tensor, b: Tensor, p: float) -> Tensor:
    """``W_p^p`` between 1-D empirical measures, column by column; ``a, b`` sorted ``(n, L)``.

    In one dimension the optimal plan couples quantiles: ``W_p^p = int_0^1 |F^-1(u) -
    G^-1(u)|^p du``, piecewise constant between the breakpoints ``i/n`` and ``j/m``.
    """
    n, m = a.shape[0], b.shape[0]
    if n == m:
        return (a - b).abs().pow(p).mean(0)
    u = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n,
                   torch.arange(1, m + 1, dtype=torch.float64) / m])
    u = torch.unique(u)  # sorted breakpoints, last one is 1
    lo = torch.cat([u.new_zeros(1), u[:-1]])
    mid, width = 0.5 * (lo + u), u - lo
    ia = torch.clamp((mid * n).long(), max=n - 1)
    ib = torch.clamp((mid * m).long(), max=m - 1)
    return ((a[ia] - b[ib]).abs().pow(p) * width[:, None]).sum(0)


def sliced_wasserstein(
    x: ArrayLike, y: ArrayLike, n_projections: int = 512, p: float = 2, seed: int = 0
) -> float:
    """Sliced Wasserstein distance ``SW_p = (E_theta[W_p^p(<theta, X>, <theta, Y>)])^(1/p)``.

    ``theta`` uniform on the unit sphere (normalised Gaussians from ``torch.Generator`` seeded
    with ``seed``); the expectation is a Monte Carlo mean over ``n_projections`` directions and
    each 1-D ``W_p`` is exact (quantile coupling, any ``n, m``). Bonneel et al. (2015).

    For a translation ``Y = X + s``: ``SW_p^p = |s|^p E|<theta, e>|^p``, e.g.
    ``SW_2 = |s| / sqrt(D)``.
    """
    p = _check_p(p)
    n_projections = check_positive_int(n_projections, "n_projections")
    x, y = as_pair(x, y)
    g = torch.Generator().manual_seed(int(seed))
    theta = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px = torch.sort(x @ theta, dim=0).values
    py = torch.sort(y @ theta, dim=0).values
    return float(_w_pp_1d(px, py, p).mean()) ** (1.0 / p)


def median_bandwidth(x: ArrayLike, y: ArrayLike) -> float:
    """The median heuristic: the median of the pairwise distances ``|z_i - z_j|``, ``i < j``,
    in the pooled sample ``z = (x, y)`` (Gretton et al. 2012)."""
    x, y = as_pair(x, y)
    z = torch.cat([x, y])
    d = torch.pdist(z)
    h = float(d.median()) if d.numel() else 0.0
    if not h > 0:
        raise InterpolantError(
            "the median pairwise distance is 0 (most points coincide); pass bandwidth= explicitly"
        )
    return h


def _kernel(a: Tensor, b: Tensor, kernel: str, bandwidth: float, degree: int) -> Tensor:
    if kernel == "rbf":
        return torch.exp(-pairwise_distances(a, b).square() / (2.0 * bandwidth**2))
    return (a @ b.T / a.shape[1] + 1.0) ** degree  # "poly"


def mmd(
    x: ArrayLike,
    y: ArrayLike,
    kernel: str = "rbf",
    bandwidth: float | str = "median",
    unbiased: bool = True,
    degree: int = 3,
) -> float:
    """Squared maximum mean discrepancy ``MMD^2 = E k(X,X') + E k(Y,Y') - 2 E k(X,Y)``.

    Kernels: ``"rbf"``, ``k(a, b) = exp(-|a - b|^2 / (2 h^2))`` with ``h = bandwidth`` or the
    median heuristic (:func:`median_bandwidth`, computed on these samples); ``"poly"``,
    ``k(a, b) = (a.b / D + 1)^degree`` (the cubic kernel of KID, Binkowski et al. 2018).

    ``unbiased=True`` returns the U-statistic of Gretton et al. (2012, eq. 3): the within-set
    means leave out the diagonal ``i = j``, so its expectation is exactly the population
    ``MMD^2`` (zero for equal laws; the estimate can be negative). ``unbiased=False`` returns
    the V-statistic, the ``MMD^2`` between the empirical measures (``>= 0``, biased upward).
    """
    if kernel not in ("rbf", "poly"):
        raise InterpolantError(f"unknown kernel {kernel!r}; choose one of: poly, rbf")
    x, y = as_pair(x, y, min_n=2)
    degree = check_positive_int(degree, "degree")
    h = 1.0
    if kernel == "rbf":
        if isinstance(bandwidth, str):
            if bandwidth != "median":
                raise InterpolantError(f"bandwidth must be a positive number or 'median', "
                                       f"got {bandwidth!r}")
            h = median_bandwidth(x, y)
        elif not (isinstance(bandwidth, (int, float)) and bandwidth > 0):
            raise InterpolantError(f"bandwidth must be a positive number or 'median', "
                                   f"got {bandwidth!r}")
        else:
            h = float(bandwidth)
    kxx, kyy = _kernel(x, x, kernel, h, degree), _kernel(y, y, kernel, h, degree)
    kxy = _kernel(x, y, kernel, h, degree)
    return float(_within(kxx, unbiased) + _within(kyy, unbiased) - 2.0 * kxy.mean())


def _within(k: Tensor, unbiased: bool) -> Tensor:
    """Mean of a square kernel (or distance) matrix, without the diagonal if ``unbiased``."""
    n = k.shape[0]
    if not unbiased:
        return k.mean()
    return (k.sum() - k.diagonal().sum()) / (n * (n - 1))


def energy_distance(x: ArrayLike, y: ArrayLike, unbiased: bool = False) -> float:
    """Energy distance in its squared form ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` (Euclidean norms).

    Szekely & Rizzo (2013). It is zero iff the two laws are equal. ``unbiased=False`` (the
    default) gives the V-statistic, the energy distance between the empirical measures:
    ``>= 0`` and exactly 0 for identical sets; in 1-D its square root equals
    ``scipy.stats.energy_distance``. ``unbiased=True`` leaves the diagonal out of the within-set
    means, giving an unbiased estimate of the population value (can be negative).
    """
    x, y = as_pair(x, y, min_n=2)
    exy = pairwise_distances(x, y).mean()
    value = 2.0 * exy - _within(pairwise_distances(x, x), unbiased)
    value = value - _within(pairwise_distances(y, y), unbiased)
    value = float(value)
    return max(value, 0.0) if not unbiased and math.isfinite(value) else value
