"""Categorical draws: float64 Gumbel-max follows the law; low-precision Gumbel-max cuts the
tail (Zheng et al. 2024), measured by sampling in float16 and computed exactly for float32."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interpolant.discrete import categorical, gumbel_noise
from interpolant.discrete.categorical import tail_factor
from interpolant.errors import InterpolantError


def test_float64_draws_follow_the_law(stats):
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(12, dtype=torch.float64, generator=g) * 2, 0)
    n = 50_000
    x = categorical(p.expand(n, -1), g)
    law = torch.bincount(x, minlength=12).double() / n
    assert stats.tv(law, p) < stats.tv_bound(p, n)


def test_float32_uniforms_sit_on_a_grid_that_caps_the_gumbel_noise():
    """The mechanism: float32 uniforms are multiples of 2^-24, so -log u >= ~2^-24 and the
    Gumbel noise never exceeds -log(-log(1 - 2^-24)) ~ 16.64."""
    g = torch.Generator().manual_seed(1)
    u = torch.rand(2_000_000, dtype=torch.float32, generator=g).double() * 2**24
    assert bool((u == u.round()).all())
    cap = -math.log(-math.log1p(-(2.0**-24)))
    assert float(gumbel_noise((2_000_000,), g, torch.float32).max()) <= cap + 1e-5


def test_tail_factor_matches_the_quantised_exponential_closed_form():
    """Enumerated float32 factor against an independent derivation: the category's exponential
    -log u takes values ~ k 2^-24, so P(win) ~ sum_k 2^-24 exp(-k 2^-24 / r) and the factor is
    x / (e^x - 1) with x = 2^-24 / r. It is ~0 below 1e-8, 0.32 at 3e-8, 0.73 at 1e-7."""
    r = torch.tensor([1e-9, 1e-8, 3e-8, 1e-7, 1e-6, 1e-5], dtype=torch.float64)
    x = 2.0**-24 / r
    torch.testing.assert_close(tail_factor(r), x / torch.expm1(x), rtol=2e-3, atol=1e-6)
    f = tail_factor(r)
    assert float(f[2]) < 0.35 and float(f[-1]) > 0.99 and bool((f.diff() > 0).all())


def test_low_precision_gumbel_draws_lose_the_tail():
    """Sampled demonstration at a precision where it is cheap to see: a leader of 0.9 and 1000
    tail tokens of 1e-4 each (tail mass 0.1). float16 uniforms (grid 2^-11) almost never draw the
    tail; float64 and float32 (ratio 1.1e-4, far above 2^-24) draw it at its probability."""
    p = torch.cat([torch.tensor([0.9]), torch.full((1000,), 1e-4)]).double()
    n = 4000
    se = math.sqrt(0.1 * 0.9 / n)
    for dtype, ok in ((torch.float64, True), (torch.float32, True), (torch.float16, False)):
        x = categorical(p.expand(n, -1), torch.Generator().manual_seed(2), dtype=dtype)
        tail = float((x > 0).double().mean())
        if ok:
            assert abs(tail - 0.1) < 4.5 * se
        else:
            assert tail < 0.1 - 10 * se


def test_float32_sampling_lowers_the_entropy_of_a_masked_step():
    """The claim at LM scale, computed exactly: an MDLM ancestral step at t = 0.5 with 1000
    linear steps unmasks with probability delta = 2e-3 and draws the token from a Zipf law over
    50257 tokens, each category at ratio delta q_j / (1 - delta) to the mask. Float32 Gumbel-max
    weights token j by tail_factor(ratio): the law drawn has an entropy lower by > 1 nat (the
    float64 factor 1 - O(2^-53 / r) leaves it unchanged)."""
    vocab, delta = 50257, 2e-3
    q = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float64)
    q = q / q.sum()
    ratios = delta * q / (1 - delta)
    knots = torch.logspace(math.log10(float(ratios.min())), math.log10(float(ratios.max())), 40,
                           dtype=torch.float64)
    factor = np.interp(np.log(ratios.numpy()), np.log(knots.numpy()), tail_factor(knots).numpy())
    drawn = q * torch.from_numpy(factor)
    drawn = drawn / drawn.sum()
    entropy = float(-(q * q.log()).sum())
    assert float(-(drawn * drawn.log()).sum()) < entropy - 1.0


def test_categorical_errors():
    with pytest.raises(InterpolantError, match="non-negative"):
        categorical(torch.tensor([0.5, -0.1]), None)
    with pytest.raises(InterpolantError, match="positive mass"):
        categorical(torch.zeros(2, 3), None)
    with pytest.raises(InterpolantError, match="tail_factor"):
        tail_factor(1e-3, torch.float64)
