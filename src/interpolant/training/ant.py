"""ANT: timestep clusters against negative transfer (Go et al. 2023, "Addressing Negative
Transfer in Diffusion Models").

Diffusion training is multi-task learning over noise levels, and tasks far apart in noise
transfer negatively. ANT groups the times into ``k`` *contiguous* intervals (interval
clustering) and applies a multi-task method with each interval as one task; ANT-UW uses
uncertainty weighting, ``L = sum_c L_c / e^{u_c} + u_c`` with one learned ``u_c`` per
cluster (Kendall et al. 2018, in the form EDM2 uses over noise levels:
:class:`~.uncertainty.UncertaintyObjective` with a per-cluster table for ``u``).

Interval clustering of ``T`` grid times by a feature ``v(t)`` (the time itself, the SNR or the
log-SNR; monotone in ``t``) minimises the total absolute deviation from each interval's median,

    min over 0 = b_0 < b_1 < ... < b_k = T of  sum_c sum_{b_{c-1} <= m < b_c} |v_m - med_c|,

solved exactly by dynamic programming in ``O(k T^2)``: ``F_c(j) = min_i F_{c-1}(i) +
cost(i, j)``, with ``cost`` from prefix sums (``v`` is sorted within an interval).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError, unknown_name
from ..paths import GaussianPath
from .uncertainty import UncertaintyObjective

__all__ = ["interval_clusters", "cluster_edges", "ClusterTable", "ant_uw"]

FEATURES = ("timestep", "snr", "log-snr")


def _cost_matrix(v: Tensor) -> Tensor:
    """``cost[i, j]``: total |v - median| over ``v[i:j]`` (``j > i``), ``inf`` elsewhere."""
    v = v.to(torch.float64)
    if bool(v[-1] < v[0]):
        v = -v  # a decreasing feature: the same deviations, sorted ascending
    n = v.numel()
    prefix = torch.cat([torch.zeros(1, dtype=torch.float64), v.cumsum(0)])
    i = torch.arange(n + 1)[:, None].expand(n + 1, n + 1)
    j = torch.arange(n + 1)[None, :].expand(n + 1, n + 1)
    valid = j > i
    mid = torch.where(valid, (i + j - 1) // 2, 0)
    med = v[mid.clamp(max=n - 1)]
    below = med * (mid - i + 1) - (prefix[mid + 1] - prefix[i])
    above = (prefix[j] - prefix[mid + 1]) - med * (j - mid - 1)
    return torch.where(valid, below + above, torch.full_like(below, float("inf")))


def interval_clusters(values: Tensor, k: int) -> tuple[list[int], float]:
    """Boundaries ``[0, b_1, ..., T]`` of the optimal ``k`` contiguous intervals of the
    monotone ``values`` (T,), and the minimal total absolute deviation."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InterpolantError(f"ANT needs a positive int of clusters, got {k!r}")
    n = values.numel()
    if values.ndim != 1 or n < k:
        raise InterpolantError(f"cannot cut {n} times into {k} intervals")
    diffs = values[1:] - values[:-1]
    if not (bool((diffs >= 0).all()) or bool((diffs <= 0).all())):
        raise InterpolantError("interval clustering needs a feature monotone in time")
    cost = _cost_matrix(values)
    best = cost[0].clone()  # F_1(j): one interval over [0, j)
    choice = []
    for _ in range(1, k):
        total = best[:, None] + cost  # F_{c-1}(i) + cost(i, j)
        best, arg = total.min(0)
        choice.append(arg)
    edges = [n]
    for arg in reversed(choice):
        edges.append(int(arg[edges[-1]]))
    return [0, *edges[::-1]], float(best[n])


def cluster_edges(path: GaussianPath, k: int, by: str = "log-snr", grid: int = 1000) -> Tensor:
    """The ``k + 1`` time edges of ANT's clusters of ``grid`` times in ``[t_min, t_max]``."""
    if by not in FEATURES:
        raise unknown_name("ANT clustering feature", by, FEATURES)
    t = torch.linspace(float(path.t_min), float(path.t_max), grid, dtype=torch.float64)
    lam = path.lam(t).clamp(-30.0, 30.0)  # finite at both ends
    feature = {"timestep": t, "snr": torch.exp(2 * lam), "log-snr": 2 * lam}[by]
    bounds, _ = interval_clusters(feature, k)
    mids = [float(t[0])] + [float(0.5 * (t[b - 1] + t[b])) for b in bounds[1:-1]] + [
        float(t[-1])]
    return torch.tensor(mids, dtype=torch.float64)


class ClusterTable(nn.Module):
    """One learned ``u_c`` per cluster ``[edges[c], edges[c + 1])``, zero at start."""

    def __init__(self, edges: Tensor) -> None:
        super().__init__()
        self.register_buffer("edges", edges.to(torch.float64))
        self.u = nn.Parameter(torch.zeros(len(edges) - 1, dtype=torch.float64))

    def cluster_of(self, t: Tensor) -> Tensor:
        inner = self.edges[1:-1].to(t.device)
        return torch.searchsorted(inner, t.detach().to(torch.float64), right=True)

    def forward(self, t: Tensor) -> Tensor:
        return self.u[self.cluster_of(t)]


def ant_uw(path: GaussianPath, target: str = "eps", density: Any = "uniform",
           weight: Any = "uniform", k: int = 5, by: str = "log-snr") -> UncertaintyObjective:
    """ANT-UW: uncertainty weighting over ``k`` interval clusters of the times."""
    return UncertaintyObjective(path, target, density, weight,
                                u_net=ClusterTable(cluster_edges(path, k, by)))
