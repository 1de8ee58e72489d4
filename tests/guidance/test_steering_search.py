"""Noise search against the order statistics of the model's reward distribution."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.guidance import LinearReward, best_of_n, path_search, zero_order

F64 = torch.float64
GMM = ip.oracle.GaussianMixture.preset("aniso2d")
DEN = GMM.denoiser(ip.paths.VPLinear())
REWARD = LinearReward([1.0, 0.5])
STEPS = 20  # dpm++2m, deterministic: a sample is a function of its noise


@pytest.fixture(scope="module")
def reference() -> torch.Tensor:
    """Sorted rewards of 100k samples of the same deterministic sampler."""
    z = torch.randn(100_000, 2, generator=torch.Generator().manual_seed(99), dtype=F64)
    return REWARD(ip.sample(DEN, z, solver="dpm++2m", steps=STEPS)).sort().values


def expected_max(sorted_r: torch.Tensor, n: int) -> tuple[float, float]:
    """``E[max of n]`` under the empirical law of ``sorted_r``, ``sum_j r_(j) ((j/M)^n -
    ((j-1)/M)^n)``, and its standard error (the L-statistic's weights times the spread)."""
    m = sorted_r.numel()
    j = torch.arange(1, m + 1, dtype=F64)
    wts = (j / m) ** n - ((j - 1) / m) ** n
    est = float(wts @ sorted_r)
    se = math.sqrt(float((wts**2 * m) @ (sorted_r - est) ** 2) / m)
    return est, se


def _check(rewards: torch.Tensor, ref: torch.Tensor, n: int) -> None:
    exact, se_ref = expected_max(ref, n)
    se = float(rewards.std()) / math.sqrt(rewards.numel())
    assert abs(float(rewards.mean()) - exact) < 4 * math.hypot(se, se_ref), (n, exact)


@pytest.mark.parametrize("n", [1, 4, 16])
def test_best_of_n_follows_order_statistics(reference, n):
    """The mean reward of best-of-N equals ``E[max of N rewards]`` of the model's reward law
    within 4 standard errors, for N = 1, 4, 16 (and the count of evaluations is N * steps)."""
    z = torch.randn(1000, n, 2, generator=torch.Generator().manual_seed(n), dtype=F64)
    res = best_of_n(DEN, z, REWARD, solver="dpm++2m", steps=STEPS)
    _check(res.reward, reference, n)
    assert res.nfe == n * STEPS
    assert torch.equal(res.reward, res.history.max(1).values)
    assert torch.allclose(REWARD(ip.sample(DEN, res.noise, solver="dpm++2m", steps=STEPS)),
                          res.reward)


def test_zero_order_at_radius_one_is_random_search(reference):
    """With ``radius = 1`` every candidate is a fresh noise, so 5 rounds of 3 neighbours are
    best-of-16: the same order statistic. At a smaller radius the best reward never falls."""
    z = torch.randn(1000, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    g = torch.Generator().manual_seed(6)
    res = zero_order(DEN, z, REWARD, neighbours=3, rounds=5, radius=1.0, steps=STEPS, generator=g)
    _check(res.reward, reference, 16)
    assert res.nfe == 16 * STEPS
    local = zero_order(DEN, z[:200], REWARD, neighbours=3, rounds=3, radius=0.3, steps=STEPS,
                       generator=g)
    assert bool((local.history.diff(dim=1) >= 0).all())
    assert float(local.reward.mean()) > float(local.history[:, 0].mean())


def test_path_search_beats_best_of_n_at_similar_compute():
    """Branching 4 beams 4 ways at three checkpoints (scored by the reward of x0-hat) reaches
    a higher mean reward than best-of-4 of the same stochastic sampler, by over 5 standard
    errors. Evaluations per output: 4 candidates over the first 10 steps, 16 over the other 30,
    plus one x0-hat per candidate at each checkpoint."""
    g = torch.Generator().manual_seed(7)
    z = torch.randn(300, 4, 2, generator=g, dtype=F64)
    paths = path_search(DEN, z, REWARD, branches=4, steps=40, grid="uniform", generator=g)
    plain = best_of_n(DEN, z, REWARD, solver="ddpm", steps=40, grid="uniform", generator=g)
    se = math.hypot(float(paths.reward.std()), float(plain.reward.std())) / math.sqrt(300)
    assert float(paths.reward.mean() - plain.reward.mean()) > 5 * se
    assert paths.history.shape == (300, 4)
    assert paths.nfe == 4 * 10 + 4 + 16 * 30 + 16 * 2  # checkpoints at steps 10, 20, 30


def test_bad_input():
    z = torch.randn(3, 2, 2, dtype=F64)
    with pytest.raises(ip.InterpolantError, match="candidates must be a positive integer"):
        best_of_n(DEN, z[:, :0], REWARD)
    with pytest.raises(ip.InterpolantError, match="shape \\(n, candidates"):
        best_of_n(DEN, z[0], REWARD)
    with pytest.raises(ip.InterpolantError, match="one score per sample"):
        best_of_n(DEN, z, lambda x: x[:1, 0], steps=2)
    with pytest.raises(ip.InterpolantError, match="radius"):
        zero_order(DEN, z[:, 0], REWARD, radius=0.0)
