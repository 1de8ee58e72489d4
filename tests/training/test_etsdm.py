"""E-TSDM: the shared time condition and the target it makes (the oracle's interval average)."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.training import Objective
from interpolant.training.densities import Uniform
from interpolant.training.etsdm import SharedTimeNet, shared_time

PATH = ip.paths.VPLinear()
LO = PATH.t_min  # the density's lower end: the first interval starts there


def test_shared_time_is_the_left_end_below_t_tilde_and_the_identity_above():
    t = torch.tensor([0.0, 0.005, 0.0199, 0.02, 0.05, 0.0999, 0.1, 0.37, 1.0])
    want = torch.tensor([0.0, 0.0, 0.0, 0.02, 0.04, 0.08, 0.1, 0.37, 1.0])
    torch.testing.assert_close(shared_time(t, 0.1, 5), want)
    seen = []
    SharedTimeNet(lambda x, tt: seen.append(tt) or x, 0.1, 5)(torch.zeros(9, 1), t)
    torch.testing.assert_close(seen[0], want)


def _interval_eps(gmm, x, left, width, weighted=True, nodes=32):
    """E[eps | x_t = x, t in [left, left + width)] for t ~ uniform (p(t | x) ~ q_t(x)), by the
    midpoint rule; weighted=False: the plain average of eps*(x, t) over the interval."""
    a = max(left, LO)
    ts = a + (torch.arange(nodes, dtype=torch.float64) + 0.5) * (left + width - a) / nodes
    logq, eps = [], []
    for t in ts.tolist():
        tt = torch.full((x.shape[0],), t, dtype=torch.float64)
        logq.append(gmm.marginal(PATH, t).log_prob(x))
        x0 = gmm.posterior_mean(x, PATH.alpha(tt), PATH.sigma(tt))
        eps.append(ip.convert(x0, "x0", "eps", x, tt, PATH))
    w = torch.softmax(torch.stack(logq), 0) if weighted else torch.full(
        (nodes, x.shape[0]), 1.0 / nodes, dtype=torch.float64)
    return (w[..., None] * torch.stack(eps)).sum(0)


def test_the_optimum_in_each_interval_is_the_oracles_posterior_interval_average():
    # The eps-loss through SharedTimeNet with t ~ U[t_min, t~): the per-sample gradient of a
    # perturbation c_i h(x_t, f(t)) of the output vanishes in expectation, for every direction
    # h, exactly when the inner net answers E[eps | x_t, t in I_i]. Two wide intervals
    # (t~ = 0.5), where the change of target is large enough to measure (0.3 rms; with E-TSDM's
    # 5 intervals of 0.02 it is 0.013, below the Monte Carlo noise): the plain average of the
    # exact eps over the interval and the exact eps at the interval's midpoint must be
    # detected (|z| > 8 in some direction), the posterior average passes in all (|z| < 4.5).
    n, t_tilde, k = 5000, 0.5, 2
    width = t_tilde / k
    g = torch.Generator().manual_seed(0)
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    objective = Objective(PATH, "eps", Uniform(LO, t_tilde), "uniform")
    t = objective.sample_time(n, g)
    x0, noise = gmm.sample(n, g), torch.randn(n, 2, generator=g, dtype=torch.float64)
    s, x = shared_time(t, t_tilde, k), PATH.sample(x0, t, noise)
    answers = {"posterior": torch.empty_like(x), "plain": torch.empty_like(x)}
    for i in range(k):
        rows = s == i * width
        answers["posterior"][rows] = _interval_eps(gmm, x[rows], i * width, width)
        answers["plain"][rows] = _interval_eps(gmm, x[rows], i * width, width, weighted=False)
    tm = s + width / 2
    answers["midpoint"] = ip.convert(gmm.posterior_mean(x, PATH.alpha(tm), PATH.sigma(tm)),
                                     "x0", "eps", x, tm, PATH)
    best = answers["posterior"]
    directions = [x, answers["plain"] - best, answers["midpoint"] - best]

    def max_z(answer):
        c = torch.zeros(len(directions), n, dtype=torch.float64, requires_grad=True)

        def inner(xx, ss):  # answers for the inputs it must be given: x_t and f(t)
            assert torch.equal(xx, x) and torch.equal(ss, s)
            return answer + sum(c[j][:, None] * h for j, h in enumerate(directions))

        per = objective.per_sample(SharedTimeNet(inner, t_tilde, k), x0, noise, t)
        (grad,) = torch.autograd.grad(per.sum(), c)
        return float((grad.mean(1) / (grad.std(1) / math.sqrt(n))).abs().max())

    assert max_z(best) < 4.5
    assert max_z(answers["plain"]) > 8
    assert max_z(answers["midpoint"]) > 8


def test_bad_etsdm_options_are_refused():
    with pytest.raises(InterpolantError, match="0 < t_tilde <= 1"):
        SharedTimeNet(torch.nn.Identity(), t_tilde=0.0)
    with pytest.raises(InterpolantError, match="positive int of intervals"):
        SharedTimeNet(torch.nn.Identity(), intervals=0)
