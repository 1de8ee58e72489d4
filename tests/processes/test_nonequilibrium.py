"""Sohl-Dickstein et al. 2015: bound training of a learned mean-and-variance reverse kernel."""

from __future__ import annotations

import math

import torch

import interpolant as ip
from interpolant.processes.nonequilibrium import KernelMLP, mlp_kernel, train_bound
from interpolant.training import vlb

MU, VAR = torch.tensor([0.4, -0.3]), torch.tensor([0.5, 0.05])
PATH = ip.paths.VPDiscrete.from_betas("linear", 20, beta_start=5e-3, beta_end=0.5)


def _gauss(n, g):
    return MU + VAR.sqrt() * torch.randn(n, 2, generator=g)


def _bound(net, x, seed=9):
    with torch.no_grad():
        b = vlb.nll_bound(PATH, mlp_kernel(net), x, generator=torch.Generator().manual_seed(seed))
    return b.mean().item(), b.std().item() / math.sqrt(x.shape[0])


def test_bound_training_on_a_gaussian_stays_above_the_exact_nll_and_approaches_it():
    """On N(MU, diag(VAR)) the expected NLL of any model is >= the entropy H (exact); the
    bound of the trained kernel must lie above H (within its Monte Carlo error) and close
    most of the gap it started with."""
    torch.manual_seed(0)
    entropy = float(0.5 * torch.log(2 * math.pi * math.e * VAR).sum())
    net = KernelMLP(2)
    x = _gauss(2000, torch.Generator().manual_seed(1))
    start, _ = _bound(net, x)
    train_bound(net, _gauss, PATH, steps=200, lr=3e-3)
    end, se = _bound(net, x)
    assert end > entropy - 4 * se
    assert end - entropy < 0.15 * (start - entropy)


def test_bound_training_on_the_swiss_roll_improves_the_bound():
    torch.manual_seed(0)
    net = KernelMLP(2)

    def roll(n, g):
        return ip.data.toy("swissroll", n, seed=int(torch.randint(0, 2**31, (1,), generator=g)))

    x = ip.data.toy("swissroll", 2000, seed=12)
    start, _ = _bound(net, x)
    curve = train_bound(net, roll, PATH, steps=200)
    end, se = _bound(net, x)
    assert end < start - 1.0 and all(math.isfinite(c) for c in curve)
