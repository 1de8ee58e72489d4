"""Binary Diffusion (Kinakh et al. 2024): XOR flips, the flip BCE, the paper's sampler, and the
lossless tabular bit map; checked on an enumerable law of 4-bit vectors."""

from __future__ import annotations

import math

import pytest
import torch

from interpolant import discrete as dd
from interpolant.discrete.binary import (
    TabularBits, flip_logits_to_x0, flip_loss, flip_probability, threshold_sample,
)
from interpolant.errors import InterpolantError

BITS = 4


@pytest.fixture(scope="module")
def bits_oracle() -> dd.TokenOracle:
    return dd.TokenOracle.random(num_tokens=2, length=BITS, seed=3, sharpness=2.5)


def exact_flips(oracle: dd.TokenOracle, process: dd.Uniform):
    """``f*_i = logit p(z_i = 1 | x_t) = logit p(x_0^i != x_t^i | x_t)`` from the oracle."""
    def flips(x_t, t, cond=None):
        p1 = oracle.marginals(process, x_t, t)[..., 1]
        p_flip = torch.where(x_t == 1, 1 - p1, p1).clamp(1e-15, 1 - 1e-15)
        return torch.log(p_flip) - torch.log1p(-p_flip)
    return flips


def test_the_xor_flips_are_the_two_token_uniform_process():
    process = dd.Uniform("cosine", 2)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    p = flip_probability(process, t)
    bar = process.bar(t)
    assert torch.allclose(bar[:, 0, 1], p, atol=1e-15) and torch.allclose(bar[:, 1, 1], 1 - p)
    assert abs(float(p[0])) < 1e-15 and abs(float(p[-1]) - 0.5) < 1e-15


def test_the_flip_network_is_the_exact_denoiser_through_the_conversion(bits_oracle, stats):
    """x0 logits made from the exact flip logits give the oracle's chain law to 1e-12."""
    process = dd.Uniform("linear", 2)
    converted = flip_logits_to_x0(exact_flips(bits_oracle, process))

    class Converted(dd.TokenOracle):
        def model(self, proc):
            return converted

    twin = Converted(bits_oracle.table)
    want = stats.chain_law(bits_oracle, process, 8)
    assert float((stats.chain_law(twin, process, 8) - want).abs().max()) < 1e-12


def test_the_flip_bce_is_stationary_at_the_exact_flip_posterior(bits_oracle):
    """With common random numbers, the loss's derivative along f* + d is ~0 at d = 0 and
    clearly positive at d = 0.5: the BCE's target is the flips z (x_t = x_0 xor z)."""
    process = dd.Uniform("linear", 2)
    exact = exact_flips(bits_oracle, process)
    g = torch.Generator().manual_seed(0)
    x0 = bits_oracle.support[torch.multinomial(bits_oracle.probs, 40_000, True, generator=g)]

    def slope(d: float) -> tuple[float, float]:
        delta = torch.tensor(d, dtype=torch.float64, requires_grad=True)
        loss = flip_loss(lambda x, t, c: exact(x, t) + delta, process, x0,
                         torch.Generator().manual_seed(1))
        (grad,) = torch.autograd.grad(loss.sum(), delta)
        # per-sample derivative sum_i (sigmoid(f_i + d) - z_i): its standard error
        return float(grad) / len(x0), BITS * 0.5 / math.sqrt(len(x0))

    at_zero, se = slope(0.0)
    assert abs(at_zero) < 4 * se
    assert slope(0.5)[0] > 20 * se and slope(-0.5)[0] < -20 * se


def test_the_papers_threshold_sampler_is_biased_where_ancestral_is_exact(bits_oracle, stats):
    """With the exact flips, ancestral sampling reaches the data law (TV at the sampling floor
    after 64 steps), while the paper's sampler, which re-noises its thresholded estimate
    independently of x_t, lands far from it: the bias the module docstring states."""
    process = dd.Uniform("linear", 2)
    flips = exact_flips(bits_oracle, process)
    n = 20_000
    out = dd.sample(flip_logits_to_x0(flips), process, n, BITS, steps=64,
                    generator=torch.Generator().manual_seed(0))
    floor = stats.tv_bound(bits_oracle.probs, n)
    exact_chain = stats.chain_law(bits_oracle, process, 64)
    assert stats.tv(exact_chain, bits_oracle.probs) < floor / 2
    assert stats.tv(stats.empirical_law(out.tokens, 2), bits_oracle.probs) < floor
    thresholded = threshold_sample(flips, process, n, BITS, 64, torch.Generator().manual_seed(0))
    assert stats.tv(stats.empirical_law(thresholded, 2), bits_oracle.probs) > 5 * floor


def test_tabular_bits_are_lossless():
    g = torch.Generator().manual_seed(0)
    ints = torch.randint(0, 17, (500, 2), generator=g)
    floats = torch.randn(500, generator=g) * 1e3
    floats[:4] = torch.tensor([0.0, -0.0, float("inf"), -1.5e-30])
    rows = torch.stack([ints[:, 0].double(), floats.float().double(), ints[:, 1].double()], 1)
    table = TabularBits([5, "float32", 5])
    bits = table.encode(rows)
    assert bits.shape == (500, 42) and set(bits.unique().tolist()) <= {0, 1}
    back = table.decode(bits)
    assert torch.equal(back, rows) and torch.equal(torch.signbit(back[:, 1]),
                                                   torch.signbit(rows[:, 1]))
    assert bits[0, :5].tolist() == [int(c) for c in format(int(ints[0, 0]), "05b")]


def test_bad_input_is_refused():
    with pytest.raises(InterpolantError, match="integer codes in \\[0, 32\\)"):
        TabularBits([5]).encode(torch.tensor([[32.0]]))
    with pytest.raises(InterpolantError, match="integer codes"):
        TabularBits([5]).encode(torch.tensor([[1.5]]))
    with pytest.raises(InterpolantError, match="bit count"):
        TabularBits([0])
    with pytest.raises(InterpolantError, match="works on bits"):
        flip_loss(lambda x, t, c: x.double(), dd.Uniform("linear", 3), torch.zeros(2, 3).long())
    with pytest.raises(InterpolantError, match="one logit per bit"):
        flip_loss(lambda x, t, c: x.double()[:, :1], dd.Uniform("linear", 2),
                  torch.zeros(2, 3).long())
