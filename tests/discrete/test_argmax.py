"""Multinomial diffusion's closed-form posterior and the Argmax Flow thresholding
dequantizer (Hoogeboom et al. 2021)."""

from __future__ import annotations

import math

import pytest
import torch

from interpolant import discrete as dd
from interpolant.discrete.argmax import (
    _threshold, argmax_dequantize, argmax_elbo, argmax_quantize, multinomial_posterior, thresholding_inverse,
)
from interpolant.errors import InterpolantError


@pytest.mark.parametrize("k", [2, 5])
def test_multinomial_posterior_is_the_uniform_processes_posterior(k):
    """Hoogeboom's eq. 9-10 against the uniform process's matrix formula with x_0 known."""
    process = dd.Uniform("cosine", k)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, k, (64, 3), generator=g)
    for s, t in [(0.2, 0.5), (0.0, 0.3), (0.6, 1.0), (0.4, 0.4)]:
        x_t = process.noise(x0, t, g)
        onehot = torch.nn.functional.one_hot(x0, k).to(torch.float64)
        want = process.reverse(x_t, onehot, s, t)
        a_s, a_t = (float(process.schedule.alpha(torch.tensor(v, dtype=torch.float64)))
                    for v in (s, t))
        got = multinomial_posterior(x_t, x0, a_s, a_t, k)
        assert float((got - want).abs().max()) < 1e-12


def test_thresholding_keeps_the_token_and_inverts():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 6, (200, 4), generator=g)
    v, _ = argmax_dequantize(tokens, 6, g)
    assert torch.equal(argmax_quantize(v), tokens)
    u = thresholding_inverse(v)
    assert float((_threshold(u, tokens)[0] - v).abs().max()) < 1e-10


def test_the_log_density_has_the_autograd_jacobian():
    """log q(v|x) = log N(u) - log|det dv/du|, with the determinant checked by autograd."""
    g = torch.Generator().manual_seed(2)
    token = torch.tensor([[2]])
    for _ in range(5):
        u = torch.randn(4, dtype=torch.float64, generator=g)
        jac = torch.autograd.functional.jacobian(
            lambda w: _threshold(w[None, None], token)[0][0, 0], u)
        _, log_det = _threshold(u[None, None], token)
        assert abs(float(log_det) - float(torch.linalg.slogdet(jac)[1])) < 1e-12


def test_the_elbo_bounds_the_exact_log_probability():
    """Under p(v) = N(0, I) on R^3, P(argmax v = k) = 1/3: the dequantized ELBO's mean lies
    below log 1/3 (it would exceed it with a wrong log q), and the importance-weighted
    estimate E_q[p/q] recovers 1/3."""
    g = torch.Generator().manual_seed(3)
    n, k = 200_000, 3
    tokens = torch.zeros(n, 1, dtype=torch.int64)
    v, log_q = argmax_dequantize(tokens, k, g)
    log_p = (-0.5 * (v ** 2).sum(-1) - 0.5 * k * math.log(2 * math.pi)).sum(-1)
    elbo = argmax_elbo(log_p, log_q)
    assert float(elbo.mean()) < math.log(1 / 3)
    weights = torch.exp(elbo)
    estimate, error = float(weights.mean()), float(weights.std()) / math.sqrt(n)
    assert abs(estimate - 1 / 3) < 4 * error and error < 0.01


def test_bad_input():
    with pytest.raises(InterpolantError, match="alpha_t <= alpha_s"):
        multinomial_posterior(torch.zeros(1, 1).long(), torch.zeros(1, 1).long(), 0.2, 0.5, 3)
    with pytest.raises(InterpolantError, match="must lie in"):
        argmax_dequantize(torch.full((1, 2), 3), 3)
    with pytest.raises(InterpolantError, match="shape \\(B, L, K\\)"):
        argmax_quantize(torch.zeros(3, 4))
