"""Forward processes: closed forms against matrix products, the posterior against Bayes by
enumeration, the oracle's q(x_t) against forward draws, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from interpolant import discrete as dd
from interpolant.errors import InterpolantError

K = 4


def processes() -> list[dd.Process]:
    return [
        dd.Masked("linear", K), dd.Masked("cosine", K), dd.Uniform("linear", K),
        dd.Uniform("cosine", K), dd.D3PM("gaussian", K, 20), dd.D3PM("uniform", K, 20),
        dd.D3PM("absorbing", K, 20), dd.Blackout("cosine", K),
    ]


IDS = ["masked-lin", "masked-cos", "uniform-lin", "uniform-cos", "d3pm-gauss", "d3pm-unif",
       "d3pm-abs", "blackout"]


def column(v: float, n: int = 1) -> torch.Tensor:
    return torch.full((n,), v, dtype=torch.float64)


@pytest.mark.parametrize("process", processes(), ids=IDS)
def test_chapman_kolmogorov_and_stochastic(process):
    """bar(s) transition(s, t) = bar(t); rows are laws; bar(0) = I; bar(1) ends in the prior
    (exactly for the continuous processes and D3PM uniform/absorbing)."""
    for s, t in [(0.0, 0.25), (0.25, 0.5), (0.5, 1.0), (0.1, 0.9)]:
        bar_t = process.bar(column(t))[0]
        composed = process.bar(column(s))[0] @ process.transition(column(s), column(t))[0]
        torch.testing.assert_close(composed, bar_t, rtol=0, atol=1e-12)
        ones = torch.ones(process.num_states, dtype=torch.float64)
        torch.testing.assert_close(bar_t.sum(1), ones)
        assert bool((bar_t >= 0).all())
    torch.testing.assert_close(process.bar(column(0.0))[0], torch.eye(process.num_states).double())
    if process.name != "d3pm-gaussian":
        last = process.bar(column(1.0))[0][: process.num_tokens]
        torch.testing.assert_close(last, process.prior().expand_as(last), rtol=0, atol=1e-12)


def test_closed_forms_equal_d3pm_matrix_products():
    """Masked(linear) is D3PM absorbing with b_k = 1/(T - k + 1); Uniform(cosine) is D3PM
    uniform with the cosine keep-probabilities: the closed forms equal products of Q_k."""
    t = torch.linspace(0, 1, 21, dtype=torch.float64)
    pairs = [(dd.Masked("linear", K), dd.D3PM("absorbing", K, 20)),
             (dd.Uniform("cosine", K), dd.D3PM("uniform", K, 20))]
    for closed, d3pm in pairs:
        torch.testing.assert_close(closed.bar(t), d3pm.bar(t), rtol=0, atol=1e-12)
    absorbing = dd.D3PM("absorbing", K, 20)
    k = torch.arange(1, 21, dtype=torch.float64)
    torch.testing.assert_close(absorbing.betas, 1.0 / (20 - k + 1))


def test_gaussian_matrices_are_d3pm_formula():
    """Each discretised-Gaussian Q_k is symmetric, doubly stochastic, and its off-diagonal
    entries follow exp(-4 (i-j)^2 / ((K-1)^2 b)) normalised over -(K-1)..(K-1)."""
    process = dd.D3PM("gaussian", 5, 10)
    for beta, q in zip(process.betas.tolist(), process.matrices):
        torch.testing.assert_close(q, q.T)
        torch.testing.assert_close(q.sum(0), torch.ones(5, dtype=torch.float64))
        z = sum(math.exp(-4.0 * n**2 / (16 * beta)) for n in range(-4, 5))
        assert abs(float(q[0, 2]) - math.exp(-16.0 / (16 * beta)) / z) < 1e-12


CONTINUOUS = [0, 1, 2, 3, 7]


@pytest.mark.parametrize("process", [processes()[i] for i in CONTINUOUS],
                         ids=[IDS[i] for i in CONTINUOUS])
def test_rates_generate_the_marginals(process):
    """d bar(t)/dt = bar(t) rate(t) (forward Kolmogorov), checked by central differences."""
    for t in (0.2, 0.5, 0.8):
        h = 1e-6
        d = (process.bar(column(t + h))[0] - process.bar(column(t - h))[0]) / (2 * h)
        generated = process.bar(column(t))[0] @ process.rate(column(t))[0]
        torch.testing.assert_close(d, generated, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("process", processes(), ids=IDS)
def test_reverse_is_the_exact_posterior_marginal(process, oracle):
    """With the exact denoiser, reverse() is the per-position marginal of q(x_s | x_t), here
    computed by Bayes over all (x_0, x_s): q(x_0) prod_i bar_s[x_0^i, x_s^i] T[x_s^i, x_t^i]."""
    s, t = 0.35, 0.7
    states = dd.all_sequences(process.num_states, 3)
    x_t_all, q_t = oracle.marginal_xt(process, t)
    x_t = x_t_all[q_t > 1e-12][:40]
    n = len(x_t)
    probs0 = oracle.marginals(process, x_t, column(t, n))
    got = process.reverse(x_t, probs0, column(s, n), column(t, n))
    bar_s = process.bar(column(s))[0]
    trans = process.transition(column(s), column(t))[0]
    # joint[x0, xs] = P(x0) prod_i bar_s[x0^i, xs^i], then times prod_i T[xs^i, xt^i]
    joint = oracle.probs[:, None] * torch.stack(
        [bar_s[oracle.support[:, i]][:, states[:, i]] for i in range(3)]
    ).prod(0)
    for b in range(n):
        w = joint.sum(0) * torch.stack([trans[states[:, i], x_t[b, i]] for i in range(3)]).prod(0)
        w = w / w.sum()
        for i in range(3):
            want = torch.zeros(process.num_states, dtype=torch.float64)
            want.index_add_(0, states[:, i], w)
            torch.testing.assert_close(got[b, i], want, rtol=0, atol=1e-10)


def test_oracle_marginal_of_noisy_sequences_matches_forward_draws(oracle, stats):
    """q(x_t) enumerated over all 5^3 masked sequences against 40k forward draws (TV bound
    from the sample size); and q(x_t) sums to 1 for every process."""
    g = torch.Generator().manual_seed(1)
    process = dd.Masked("cosine", K)
    n = 40_000
    x0 = oracle.support[torch.multinomial(oracle.probs, n, True, generator=g)]
    x_t = process.noise(x0, 0.6, g)
    _, q = oracle.marginal_xt(process, 0.6)
    assert stats.tv(stats.empirical_law(x_t, K + 1), q) < stats.tv_bound(q, n)
    for proc in processes():
        assert abs(float(oracle.marginal_xt(proc, 0.45)[1].sum()) - 1) < 1e-12


def test_bad_input_raises():
    process = dd.Masked("linear", K)
    x_bad = torch.tensor([[0, 1, 4]])
    with pytest.raises(InterpolantError, match=r"\[0, 4\)"):
        process.marginal(x_bad, 0.5)
    with pytest.raises(InterpolantError, match="int64"):
        process.marginal(torch.zeros(2, 3), 0.5)
    with pytest.raises(InterpolantError, match="int64"):
        process.marginal(torch.zeros(3, dtype=torch.long), 0.5)
    with pytest.raises(InterpolantError, match="unknown discrete schedule"):
        dd.Masked("quadratic", K)
    with pytest.raises(InterpolantError, match="unknown D3PM matrix kind"):
        dd.D3PM("blur", K)
    with pytest.raises(InterpolantError, match="monotone"):
        dd.Tabulated(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 1.2, 0.0]))
    with pytest.raises(InterpolantError, match="only has times"):
        dd.D3PM("uniform", K, 10).bar(column(0.05))
    with pytest.raises(InterpolantError, match="must divide"):
        dd.D3PM("uniform", K, 10).grid(3)


def test_blackout_is_binomial_thinning():
    """Blackout's bar(t) is Binomial(m; n, alpha(t)): mean n alpha, variance n alpha (1 - alpha);
    and a sequence of counts decays to all zeros at t = 1."""
    process = dd.Blackout("linear", 17)
    bar = process.bar(torch.tensor([0.3], dtype=torch.float64))[0]
    m = torch.arange(17, dtype=torch.float64)
    n = torch.arange(17, dtype=torch.float64)
    torch.testing.assert_close(bar @ m, 0.7 * n)
    torch.testing.assert_close(bar @ m**2 - (bar @ m) ** 2, 0.7 * 0.3 * n)
    x0 = torch.randint(0, 17, (4, 64))
    assert bool((process.noise(x0, 1.0, torch.Generator().manual_seed(0)) == 0).all())


def test_tabulated_schedule_interpolates_and_inverts():
    sched = dd.Tabulated(torch.tensor([0.0, 0.3, 1.0]), torch.tensor([1.0, 0.4, 0.0]))
    t = torch.tensor([0.0, 0.15, 0.3, 0.65, 1.0], dtype=torch.float64)
    want = torch.tensor([1.0, 0.7, 0.4, 0.2, 0.0], dtype=torch.float64)
    torch.testing.assert_close(sched.alpha(t), want)
    torch.testing.assert_close(sched.t_of_alpha(want), t)
    for s in (dd.Linear(), dd.Cosine(), dd.Polynomial(3.0), sched):
        grid = torch.linspace(0.01, 0.99, 7, dtype=torch.float64)
        torch.testing.assert_close(s.t_of_alpha(s.alpha(grid)), grid)
