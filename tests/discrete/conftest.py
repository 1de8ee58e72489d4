"""Shared pieces of the discrete tests: an exact oracle and sample-size-derived bounds."""

from __future__ import annotations

import math

import pytest
import torch

from interpolant import discrete as dd


@pytest.fixture(scope="package")
def oracle() -> dd.TokenOracle:
    """A correlated law over the 64 sequences of length 3 on 4 tokens (seeded, exact)."""
    return dd.TokenOracle.random(num_tokens=4, length=3, seed=0)


def empirical_law(x: torch.Tensor, states: int) -> torch.Tensor:
    """Frequencies of the ``states^L`` sequences (row-major index) in ``x (N, L)``."""
    powers = states ** torch.arange(x.shape[1] - 1, -1, -1)
    counts = torch.bincount((x * powers).sum(1), minlength=states ** x.shape[1])
    return counts.to(torch.float64) / len(x)


def tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def tv_bound(p: torch.Tensor, n: int, delta: float = 1e-6) -> float:
    """A level beyond which TV(empirical of n draws from p, p) lies with probability < delta:
    E TV <= 1/2 sum sqrt(p (1 - p) / n) (Jensen), plus McDiarmid's sqrt(log(1/delta) / (2n))
    (TV moves by at most 1/n when one draw changes)."""
    mean = 0.5 * float(torch.sqrt(p * (1 - p) / n).sum())
    return mean + math.sqrt(math.log(1 / delta) / (2 * n))


def chain_law(oracle: dd.TokenOracle, process: dd.Process, steps: int) -> torch.Tensor:
    """The exact output law over the ``K^L`` data sequences of the ancestral sampler with the
    exact denoiser: the prior pushed through ``prod_i p(x_s^i | x_t)`` kernels, enumerated."""
    states = dd.all_sequences(process.num_states, oracle.length)
    law = torch.ones(len(states), dtype=torch.float64)
    for i in range(oracle.length):
        law = law * process.prior()[states[:, i]]
    grid = process.grid(steps)
    model = oracle.model(process)
    for t, s in zip(grid[:-1].tolist(), grid[1:].tolist()):
        keep = law > 0
        x_t = states[keep]
        t_b = torch.full((len(x_t),), t, dtype=torch.float64)
        reverse = process.reverse(x_t, torch.softmax(model(x_t, t_b), -1), s, t_b)
        kernel = torch.ones(len(x_t), len(states), dtype=torch.float64)
        for i in range(oracle.length):
            kernel = kernel * reverse[:, i, :][:, states[:, i]]
        law = law[keep] @ kernel
    assert abs(float(law.sum()) - 1) < 1e-9
    return law[(states < oracle.num_tokens).all(1)]


@pytest.fixture(scope="package")
def stats():
    """The helpers above, as a fixture (test modules do not import conftest)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        empirical_law=empirical_law, tv=tv, tv_bound=tv_bound, chain_law=chain_law
    )
