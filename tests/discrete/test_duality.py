"""Duo's duality: argmax of a Gaussian-diffused one-hot vector is the uniform-state process."""

from __future__ import annotations

import pytest
import torch

from interpolant import discrete as dd


@pytest.mark.parametrize("num_tokens", [2, 5, 17])
def test_argmax_of_gaussian_path_has_the_uniform_marginal(num_tokens):
    """For nu = a/s in {0.4, 1.2, 2.5} the argmax draws follow Cat(alpha e_x0 + (1 - alpha)/K)
    with alpha = duo_alpha(nu): every token's frequency within 4.5 binomial standard errors."""
    n = 40_000
    g = torch.Generator().manual_seed(num_tokens)
    x0 = torch.randint(0, num_tokens, (n, 1), generator=g)
    for nu in (0.4, 1.2, 2.5):
        x = dd.argmax_tokens(x0, a=nu * 0.7, s=0.7, num_tokens=num_tokens, generator=g)
        alpha = float(dd.duo_alpha(nu, num_tokens))
        uniform = dd.Uniform("linear", num_tokens)
        t = float(uniform.schedule.t_of_alpha(alpha))
        law = uniform.marginal(x0, t)[:, 0]  # (n, K): q(x_t | x0) of the matching uniform process
        hit = torch.nn.functional.one_hot(x[:, 0], num_tokens).double()
        p = law.mean(0)
        se = torch.sqrt(p * (1 - p) / n)
        assert bool(((hit.mean(0) - p).abs() < 4.5 * se).all())
        same = float((x == x0).double().mean())
        want = alpha + (1 - alpha) / num_tokens
        assert abs(same - want) < 4.5 * (want * (1 - want) / n) ** 0.5


def test_duo_alpha_limits_and_two_token_closed_form():
    """alpha(0) = 0, alpha increases to 1; for K = 2, P = Phi(nu / sqrt 2) in closed form."""
    nu = torch.tensor([0.0, 0.3, 1.0, 3.0, 9.0], dtype=torch.float64)
    for k in (2, 4, 50):
        a = dd.duo_alpha(nu, k)
        assert abs(float(a[0])) < 1e-10 and float(a[-1]) > 1 - 1e-8
        assert bool((a.diff() > 0).all())
    p = 0.5 * torch.special.erfc(-nu / 2)  # Phi(nu / sqrt(2)) = erfc(-nu / 2) / 2
    torch.testing.assert_close(dd.duo_alpha(nu, 2), 2 * p - 1, rtol=0, atol=1e-9)
