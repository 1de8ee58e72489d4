"""Objectives against the exact oracle: the bounds at the exact denoiser against -log p(x_0)
(equal in continuous time, above it in discrete time), and their minimum at the exact denoiser."""

from __future__ import annotations

import pytest
import torch

from interpolant import discrete as dd
from interpolant.errors import InterpolantError

K = 4


def draws(oracle, n, seed):
    g = torch.Generator().manual_seed(seed)
    return oracle.support[torch.multinomial(oracle.probs, n, True, generator=g)], g


def assert_zero_mean(diff: torch.Tensor, z: float = 4.5) -> None:
    """The mean of ``diff`` is 0 within ``z`` standard errors (estimated from the draws)."""
    se = float(diff.std()) / len(diff) ** 0.5
    assert abs(float(diff.mean())) < z * se + 1e-12, (float(diff.mean()), se)


def perturbed(model, scale: float, seed: int):
    """The exact model with a fixed random logit perturbation per (position, token)."""
    g = torch.Generator().manual_seed(seed)
    noise = scale * torch.randn(3, K, dtype=torch.float64, generator=g)
    return lambda x, t, cond=None: model(x, t, cond) + noise


def test_md4_bound_in_closed_form_is_the_exact_nll(oracle):
    """MD4's bound integrated exactly (Beta weights over mask sets) at the exact denoiser equals
    -log p(x_0) for every sequence: each unmasking order is an exact autoregressive
    factorisation."""
    process = dd.Masked("cosine", K)
    bound = oracle.masked_bound(oracle.model(process), process)
    torch.testing.assert_close(bound, oracle.nll(oracle.support), rtol=0, atol=1e-10)


@pytest.mark.parametrize("sched", ["linear", "cosine", dd.Polynomial(3.0)], ids=str)
def test_md4_monte_carlo_matches_nll_for_any_schedule(oracle, sched):
    """The Monte Carlo MD4 loss at the exact denoiser has mean -log p(x_0), whatever the
    schedule."""
    process = dd.Masked(sched, K)
    x0, g = draws(oracle, 20_000, 1)
    loss = dd.masked_elbo(oracle.model(process), process, x0, g)
    assert_zero_mean(loss - oracle.nll(x0))


def test_ctmc_bound_is_md4_term_by_term_for_the_masked_process(oracle):
    """SEDD's score-entropy bound reduces to MD4's weighted cross-entropy on the masked process,
    sample by sample (same t, same x_t), for any model."""
    process = dd.Masked("linear", K)
    x0, _ = draws(oracle, 512, 2)
    t = torch.rand(512, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    model = perturbed(oracle.model(process), 1.0, 0)
    a = dd.masked_elbo(model, process, x0, torch.Generator().manual_seed(4), t=t)
    b = dd.ctmc_elbo(model, process, x0, torch.Generator().manual_seed(4), t=t)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "process", [dd.Uniform("linear", K), dd.Uniform("cosine", K), dd.Blackout("cosine", K)],
    ids=["uniform-lin", "uniform-cos", "blackout"],
)
def test_ctmc_bound_matches_nll(oracle, process):
    """UDLM's continuous-time bound (and Blackout's, the same formula) at the exact denoiser has
    mean -log p(x_0): exact reverse rates need only per-position marginals, so it is tight."""
    x0, g = draws(oracle, 20_000, 5)
    loss = dd.ctmc_elbo(oracle.model(process), process, x0, g)
    assert_zero_mean(loss - oracle.nll(x0))


def test_exact_denoiser_minimises_the_bounds(oracle):
    """Perturbing the exact denoiser raises the expected bound: exactly (closed form) for MD4,
    and for the uniform bound by common random numbers beyond 4 standard errors."""
    process = dd.Masked("linear", K)
    exact = oracle.model(process)
    base = float(oracle.probs @ oracle.masked_bound(exact, process))
    for seed in range(3):
        for scale in (0.05, 0.5):
            bound = oracle.masked_bound(perturbed(exact, scale, seed), process)
            worse = float(oracle.probs @ bound)
            assert worse > base + 1e-6
    uniform = dd.Uniform("linear", K)
    x0, _ = draws(oracle, 20_000, 6)
    exact = oracle.model(uniform)
    a = dd.ctmc_elbo(exact, uniform, x0, torch.Generator().manual_seed(7))
    b = dd.ctmc_elbo(perturbed(exact, 0.3, 1), uniform, x0, torch.Generator().manual_seed(7))
    diff = b - a
    assert float(diff.mean()) > 4 * float(diff.std()) / len(diff) ** 0.5


def exact_vlb(oracle, process) -> torch.Tensor:
    """D3PM's L_vb of every support sequence by enumeration: sum_k E_{x_k | x_0} KL_k + prior."""
    model = oracle.model(process)
    n, steps = len(oracle.probs), process.steps
    total = dd.objectives.prior_kl(process, oracle.support)
    for k in range(1, steps + 1):
        t = torch.full((1,), k / steps, dtype=torch.float64)
        states, q = oracle.marginal_xt(process, float(t))
        states = states[q > 0]
        weights = oracle.likelihood(process, states, t.expand(len(states))).T  # (N, states)
        x0 = oracle.support.repeat_interleave(len(states), 0)
        x_k = states.repeat(n, 1)
        tb = t.expand(len(x0))
        kl, _ = dd.d3pm_step_kl(model, process, x0, x_k, tb - 1 / steps, tb)
        total = total + (weights * torch.nan_to_num(kl.reshape(n, -1))).sum(1)
    return total


def test_d3pm_vlb_bounds_nll_and_tightens_with_steps(oracle, stats):
    """Discrete-time L_vb at the exact denoiser bounds -log p_model(x_0) for every sequence,
    where p_model is the ancestral sampler's exact output law (enumerated), so on average it lies
    above the entropy of the data (the factorised reverse step is not the exact joint); the gap
    shrinks as T grows, toward the tight continuous-time bound."""
    nll = oracle.nll(oracle.support)
    gaps = []
    for steps in (2, 8, 32):
        process = dd.D3PM("absorbing", K, steps)
        vlb = exact_vlb(oracle, process)
        model_nll = -torch.log(stats.chain_law(oracle, process, steps))
        assert bool((vlb >= model_nll - 1e-10).all())
        gaps.append(float(oracle.probs @ (vlb - nll)))
    assert gaps[0] > gaps[1] > gaps[2] > 0
    assert gaps[2] < 0.1 * gaps[0]


def test_d3pm_monte_carlo_loss_matches_enumerated_vlb(oracle):
    """The MC hybrid loss with lambda = 0 is unbiased for the enumerated L_vb."""
    process = dd.D3PM("uniform", K, 8)
    vlb = exact_vlb(oracle, process)
    x0, g = draws(oracle, 20_000, 8)
    loss = dd.d3pm_loss(oracle.model(process), process, x0, g, hybrid=0.0)
    index = (x0 * torch.tensor([16, 4, 1])).sum(1)
    assert_zero_mean(loss - vlb[index])


def test_objective_names_and_mismatches():
    with pytest.raises(InterpolantError, match="unknown discrete objective"):
        dd.loss_for(dd.Masked("linear", K), "mse")
    with pytest.raises(InterpolantError, match="md4 objective needs the Masked"):
        dd.loss_for(dd.Uniform("linear", K), "md4")
    assert dd.loss_for(dd.Uniform("linear", K)) is dd.ctmc_elbo
    assert dd.loss_for(dd.D3PM("gaussian", K, 4)) is dd.d3pm_loss
