"""Samplers with the exact oracle denoiser: output laws against the true joint law (TV bounds
from the sample size), convergence of the exact ancestral chain, and NFE."""

from __future__ import annotations

import math

import pytest
import torch

from interpolant import discrete as dd
from interpolant.errors import InterpolantError

K, N = 4, 20_000


def draw(oracle, process, sampler, steps, seed=0, n=N):
    g = torch.Generator().manual_seed(seed)
    model = oracle.model(process)
    return dd.sample(model, process, n, 3, sampler=sampler, steps=steps, generator=g)


@pytest.mark.parametrize(
    "process",
    [dd.Masked("cosine", K), dd.Uniform("linear", K), dd.D3PM("gaussian", K, 64),
     dd.Blackout("linear", K)],
    ids=["masked", "uniform", "d3pm-gauss", "blackout"],
)
def test_exact_ancestral_chain_converges_at_first_order(oracle, stats, process):
    """The ancestral sampler's exact output law (enumerated) tends to the data law as steps
    grow, with TV ~ 1/steps: only simultaneous changes at several positions in one step are
    misplaced, with probability O(step^2) per step."""
    errs = [stats.tv(stats.chain_law(oracle, process, n), oracle.probs) for n in (4, 16, 64)]
    assert errs[0] > errs[1] > errs[2]
    slope = math.log(errs[2] / errs[0]) / math.log(16)
    assert -1.3 < slope < -0.7, errs


def test_one_step_sampler_is_the_product_of_marginals_and_fails(oracle, stats):
    """Control: one ancestral step draws positions independently from p(x_0^i | all masked), the
    product of the marginals, far from the correlated joint: the TV test must reject it."""
    out = draw(oracle, dd.Masked("linear", K), "ancestral", 1)
    law = stats.empirical_law(out.tokens, K)
    product = torch.ones(1, dtype=torch.float64)
    table = oracle.table
    for i in range(3):
        marg = table.sum(tuple(j for j in range(3) if j != i))
        product = (product[:, None] * marg[None]).reshape(-1)
    assert stats.tv(law, product) < stats.tv_bound(product, N)
    assert stats.tv(law, oracle.probs) > 5 * stats.tv_bound(oracle.probs, N)


@pytest.mark.parametrize(
    "process, sampler, steps",
    [(dd.Masked("linear", K), "ancestral", 8), (dd.Uniform("cosine", K), "ancestral", 8),
     (dd.D3PM("absorbing", K, 16), "ancestral", 8)],
    ids=["masked", "uniform", "d3pm-respaced"],
)
def test_ancestral_draws_follow_the_exact_chain_law(oracle, stats, process, sampler, steps):
    """The sampler's draws against its own exact output law (the enumerated chain): this checks
    the implementation (float64 categorical draws included), the chain test checks the maths."""
    out = draw(oracle, process, sampler, steps)
    assert out.nfe == steps
    want = stats.chain_law(oracle, process, steps)
    assert stats.tv(stats.empirical_law(out.tokens, K), want) < stats.tv_bound(want, N)


@pytest.mark.parametrize("sched", ["linear", "cosine", dd.Polynomial(0.5)], ids=str)
def test_first_hitting_sampler_is_exact_with_L_evaluations(oracle, stats, sched):
    """The first-hitting sampler with the exact denoiser draws from the data law exactly (TV at
    the sampling floor), with exactly L = 3 network evaluations for any schedule."""
    process = dd.Masked(sched, K)
    out = draw(oracle, process, "first-hitting", None, seed=1)
    assert out.nfe == 3
    law = stats.empirical_law(out.tokens, K)
    assert stats.tv(law, oracle.probs) < stats.tv_bound(oracle.probs, N)


def test_first_hitting_times_follow_the_order_statistics():
    """The unmasking times drawn by the sampler: each token is masked forward at a time T_i with
    alpha(T_i) ~ U(0, 1), so the first unmasking in reverse time is the last masking, at
    alpha(tau) = min of L uniforms: P(alpha(tau) <= a) = 1 - (1 - a)^L. A Kolmogorov-Smirnov
    check on the times the network is called with."""
    process, length, n = dd.Masked("cosine", K), 5, 4000
    seen = []

    def model(x, t, cond=None):
        seen.append((int((x == K).sum(1)[0]), t.clone()))
        return torch.zeros(*x.shape, K)

    x = torch.full((n, length), K, dtype=torch.long)
    dd.first_hitting(dd.TokenDenoiser(model, process), x, None, torch.Generator().manual_seed(2))
    masked, t = seen[0]
    assert masked == length and len(seen) == length
    a = process.schedule.alpha(t).sort().values
    cdf = 1 - (1 - a) ** length
    ks = float((cdf - torch.arange(1, n + 1, dtype=torch.float64) / n).abs().max())
    assert ks < 1.95 / math.sqrt(n)  # KS critical value at level 0.001


@pytest.mark.parametrize("process", [dd.Masked("cosine", K), dd.Uniform("linear", K)],
                         ids=["masked", "uniform"])
def test_tau_leaping_approaches_the_data_law(oracle, stats, process):
    """Tau-leaping: TV to the data law falls as steps grow and, at 32 steps, is within the
    sampling floor plus (a multiple of) the first-order step error of the exact ancestral chain."""
    coarse = draw(oracle, process, "tau-leaping", 4, n=N // 2)
    fine = draw(oracle, process, "tau-leaping", 32, n=N // 2)
    tv_coarse = stats.tv(stats.empirical_law(coarse.tokens, K), oracle.probs)
    tv_fine = stats.tv(stats.empirical_law(fine.tokens, K), oracle.probs)
    floor = stats.tv_bound(oracle.probs, N // 2)
    assert fine.nfe == 32 and tv_fine < tv_coarse - floor
    assert tv_fine < floor + 4 * stats.tv(stats.chain_law(oracle, process, 32), oracle.probs)


def test_sampler_errors():
    process = dd.Uniform("linear", K)
    model = lambda x, t, cond=None: torch.zeros(*x.shape, K)  # noqa: E731
    with pytest.raises(InterpolantError, match="unknown discrete sampler"):
        dd.sample(model, process, 2, 3, sampler="euler")
    with pytest.raises(InterpolantError, match="first-hitting sampler needs"):
        dd.sample(model, process, 2, 3, sampler="first-hitting")
    with pytest.raises(InterpolantError, match="logits"):
        dd.sample(lambda x, t, cond=None: torch.zeros(*x.shape, K + 1), process, 2, 3)
    from interpolant.paths import VPLinear

    with pytest.raises(InterpolantError, match="discrete process"):
        dd.sample(model, VPLinear(), 2, 3)
    with pytest.raises(InterpolantError, match="discrete process"):
        dd.train_tokens(torch.nn.Linear(1, 1), VPLinear(), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(InterpolantError, match="x_start"):
        dd.sample(model, process, 2, 3, x_start=torch.full((2, 3), K))


def test_sampler_table_rows(oracle):
    """The benchmark table: one first-hitting row at L NFE and at the floor; ancestral rows
    with NFE = steps whose TV falls with steps."""
    rows = dd.sampler_table(oracle, dd.Masked("linear", K), ("ancestral", "first-hitting"),
                            steps=(2, 16), n=8000)
    assert [(r["sampler"], r["nfe"]) for r in rows] == [
        ("ancestral", 2), ("ancestral", 16), ("first-hitting", 3)
    ]
    assert rows[0]["tv"] > rows[1]["tv"] and rows[2]["tv"] < rows[2]["floor"]
