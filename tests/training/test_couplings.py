"""Couplings (immiscible, minibatch OT) and the EMA."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy import stats

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.training import EMA, OT, Immiscible, couplings


def _brute_force(x0, noise, squared):
    d = torch.cdist(x0.double(), noise.double())
    d = d**2 if squared else d
    rows = torch.arange(len(x0))
    return min(float(d[rows, list(p)].sum()) for p in itertools.permutations(range(len(x0))))


def _cost(x0, paired, squared):
    d = (x0.double() - paired.double()).norm(dim=1)
    return float((d**2 if squared else d).sum())


@pytest.mark.parametrize("squared", [False, True], ids=["immiscible", "ot"])
def test_assignment_is_an_optimal_permutation(squared):
    # Exact assignment = exact OT plan without replacement; check against all 7! pairings.
    coupling = OT() if squared else Immiscible()
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x0 = torch.randn(7, 3, generator=g) + 1.0
        noise = torch.randn(7, 3, generator=g)
        paired = coupling(x0, noise)
        # every noise sample used exactly once: a permutation of the rows
        assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, noise.tolist()))
        assert _cost(x0, paired, squared) == pytest.approx(_brute_force(x0, noise, squared),
                                                           rel=1e-12)


def test_immiscible_keeps_noise_standard_normal_and_brings_it_closer():
    # Reordering keeps the multiset of noise vectors; by exchangeability of the data the
    # noise paired with a fixed slot (here slot 0) is still N(0, I), while the mean distance
    # to its datum drops. Data: the aniso2d mixture (mean radius 1.5, far from N(0, I)).
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    g = torch.Generator().manual_seed(1)
    coupling = Immiscible()
    first, nearest, dist_ind, dist_imm = [], [], [], []
    for _ in range(1500):
        x0 = gmm.sample(32, g).float()
        noise = torch.randn(32, 2, generator=g)
        paired = coupling(x0, noise)
        first.append(paired[0])
        nearest.append(noise[(x0[0] - noise).norm(dim=1).argmin()])  # greedy, with replacement
        dist_ind.append((x0 - noise).norm(dim=1).mean())
        dist_imm.append((x0 - paired).norm(dim=1).mean())
    first = torch.stack(first)
    for j in range(2):
        assert stats.kstest(first[:, j].numpy(), stats.norm.cdf).pvalue > 1e-3
    # second moments of the pairs' noise: identity covariance within ~4 standard errors
    cov = first.T @ first / len(first)
    assert torch.allclose(cov, torch.eye(2), atol=4 * math.sqrt(2 / len(first)))
    ind, imm = torch.stack(dist_ind), torch.stack(dist_imm)
    assert imm.mean() < 0.9 * ind.mean()
    # control: greedy nearest-noise pairing (not a permutation) distorts the marginal, and the
    # same test sees it
    nearest = torch.stack(nearest)
    assert min(stats.kstest(nearest[:, j].numpy(), stats.norm.cdf).pvalue for j in range(2)) < 1e-6


def test_fast_immiscible_is_exact_within_chunks_and_near_optimal_in_fp16():
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.randn(96, 8, generator=g) + 0.5, torch.randn(96, 8, generator=g)
    chunked = Immiscible(chunk=32)(x0, noise)
    for lo in range(0, 96, 32):
        assert torch.equal(chunked[lo:lo + 32], Immiscible()(x0[lo:lo + 32], noise[lo:lo + 32]))
    exact = _cost(x0, Immiscible()(x0, noise), False)
    half = _cost(x0, Immiscible(half=True)(x0, noise), False)
    independent = _cost(x0, noise, False)
    assert exact <= half <= exact * 1.01 < independent
    assert exact <= _cost(x0, chunked, False) < independent


def test_coupling_registry_and_shape_errors():
    x = torch.zeros(4, 2)
    assert couplings.get("independent")(x, x + 1).equal(x + 1)
    with pytest.raises(InterpolantError, match="unknown coupling"):
        couplings.get("sinkhorn")
    with pytest.raises(InterpolantError, match="shape"):
        couplings.get("ot")(x, torch.zeros(4, 3))


def test_ema_matches_closed_form_and_half_life():
    # ema_n = b^n p_0 + sum_k (1 - b) b^(n-k) p_k for parameters p_1..p_n after each step.
    model = torch.nn.Linear(1, 1, bias=False).double()
    model.weight.data.fill_(1.0)
    ema = EMA(model, decay=0.9)
    values = [2.0, -1.0, 0.5, 3.0]
    for v in values:
        model.weight.data.fill_(v)
        ema.update(model, batch_samples=8, samples_seen=0)
    expected = 0.9**4 * 1.0 + sum(0.1 * 0.9 ** (4 - k) * v for k, v in enumerate(values, 1))
    assert float(ema.model.weight) == pytest.approx(expected, rel=1e-12)
    # half-life in samples: after halflife samples, whatever the batch size, the initial
    # weights keep exactly half their weight
    for batch in (4, 16, 50):
        model.weight.data.fill_(1.0)
        ema = EMA(model, halflife=200)
        model.weight.data.fill_(0.0)
        for _ in range(200 // batch):
            ema.update(model, batch_samples=batch, samples_seen=0)
        assert float(ema.model.weight) == pytest.approx(0.5 ** (batch * (200 // batch) / 200))
    with pytest.raises(InterpolantError, match="either decay or halflife"):
        EMA(model)
