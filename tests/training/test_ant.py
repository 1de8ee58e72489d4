"""ANT: exact interval clustering by dynamic programming, and ANT-UW's per-cluster weights."""

from __future__ import annotations

import itertools

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.models import MLP
from interpolant.training.ant import ant_uw, cluster_edges, interval_clusters


def _brute_force(v, k):
    """The best of all C(T-1, k-1) cuts into contiguous intervals (lower median)."""
    best = None
    for cuts in itertools.combinations(range(1, len(v)), k - 1):
        b = [0, *cuts, len(v)]
        cost = sum(float((v[b[i]:b[i + 1]] - v[b[i]:b[i + 1]].median()).abs().sum())
                   for i in range(k))
        if best is None or cost < best[1] - 1e-9:
            best = (b, cost)
    return best


@pytest.mark.parametrize("n,k,sign", [(9, 3, 1), (10, 4, -1), (8, 2, 1)])
def test_dynamic_programming_finds_the_best_interval_clustering(n, k, sign):
    g = torch.Generator().manual_seed(n + k)
    v = sign * (torch.rand(n, generator=g, dtype=torch.float64).cumsum(0) ** 2)
    bounds, cost = interval_clusters(v, k)
    want_bounds, want_cost = _brute_force(v, k)
    assert cost == pytest.approx(want_cost, abs=1e-9)
    assert bounds == want_bounds


def test_clusters_of_the_time_are_equal_and_of_log_snr_follow_the_schedule():
    # a linear feature is cut into equal intervals; on the EDM path the log-SNR is linear in t
    # (sigma log-linear), so its log-SNR clusters are the time clusters, and the SNR clusters
    # (exponential in t) crowd towards the data end
    path = ip.paths.EDM()
    edges = cluster_edges(path, 4, "timestep", grid=400)
    step = 1 / 400  # ties let an edge move by a grid point or two
    torch.testing.assert_close(edges.diff(), torch.full((4,), 0.25, dtype=torch.float64),
                               atol=2.5 * step, rtol=0)
    torch.testing.assert_close(cluster_edges(path, 4, "log-snr", grid=400), edges,
                               atol=2.5 * step, rtol=0)
    snr = cluster_edges(path, 4, "snr", grid=400)
    assert float(snr[1]) < 0.1 and float(snr[3]) < 0.5


def test_ant_uw_weights_each_cluster_by_its_own_mean_loss():
    # with u_c = log(mean loss of the batch's samples in cluster c), the batch loss
    # sum (l_i e^{-u_c(i)} + u_c(i)) has exactly zero gradient in every u_c: the clusters the
    # objective assigns the samples to are the ones it weights
    path = ip.paths.VPCosine()
    objective = ant_uw(path, "v", k=4)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = MLP(2, hidden=16, depth=1)
    x0 = ip.oracle.GaussianMixture.preset("aniso2d").sample(512, g).float()
    noise, t = torch.randn(x0.shape, generator=g), objective.sample_time(512, g)
    with torch.no_grad():
        per = objective.inner.per_sample(net, x0, noise, t).double()
        cluster = objective.u.cluster_of(t)
        objective.u.u.copy_(torch.stack([per[cluster == c].mean().log() for c in range(4)]))
    assert sorted(set(cluster.tolist())) == [0, 1, 2, 3]
    (grad,) = torch.autograd.grad(objective(net, x0, noise, t), objective.u.u)
    torch.testing.assert_close(grad, torch.zeros(4, dtype=torch.float64), atol=1e-6, rtol=0)
    with torch.no_grad():
        objective.u.u.add_(0.1)
    (grad,) = torch.autograd.grad(objective(net, x0, noise, t), objective.u.u)
    assert bool((grad > 1e-3).all())  # control: above the optimum the gradient is positive


def test_bad_clustering_requests_are_refused():
    with pytest.raises(InterpolantError, match="positive int of clusters"):
        interval_clusters(torch.arange(5.0), 0)
    with pytest.raises(InterpolantError, match="cannot cut 3 times into 4 intervals"):
        interval_clusters(torch.arange(3.0), 4)
    with pytest.raises(InterpolantError, match="monotone in time"):
        interval_clusters(torch.tensor([0.0, 2.0, 1.0]), 2)
    with pytest.raises(InterpolantError, match="unknown ANT clustering feature 'gradient'"):
        cluster_edges(ip.paths.VPCosine(), 3, "gradient")
