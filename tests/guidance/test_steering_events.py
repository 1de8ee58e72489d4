"""Rare-event probabilities by tilted importance sampling against the exact half-space
probability of a Gaussian mixture."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.guidance import (LinearReward, event_probability, exact_twist,
                                  halfspace_probability, tilted)

F64 = torch.float64
GMM = ip.oracle.GaussianMixture(
    torch.tensor([[-1.0, 0.0], [1.0, 0.5]]),
    torch.tensor([[[0.25, 0.0], [0.0, 0.25]], [[0.3, 0.1], [0.1, 0.2]]]),
    torch.tensor([0.6, 0.4]),
)
PATH = ip.paths.VPLinear()
EVENT, C = LinearReward([1.0, 0.0]), 2.5


def test_halfspace_probability_matches_monte_carlo():
    """The closed form against 400k exact samples (within 4 binomial standard errors)."""
    x = GMM.sample(400_000, torch.Generator().manual_seed(0))
    p_mc = float((x[:, 0] > 2.0).double().mean())
    p = halfspace_probability(GMM, [1.0, 0.0], 2.0)
    assert abs(p_mc - p) < 4 * math.sqrt(p * (1 - p) / 400_000)


@pytest.mark.parametrize("twisted", [False, True])
def test_event_probability_within_its_standard_error(twisted):
    """``P(x_1 > 2.5) = 1.2e-3`` from 8 runs of 128 FK-steered particles (tilt ``exp(4 x_1)``):
    the estimate lies within 4 of its own standard errors of the exact value, and its standard
    error is below half that of plain Monte Carlo with the same 1024 samples. With the exact
    twist and tilted proposal the standard error is below 15 % of ``P``."""
    p = halfspace_probability(GMM, [1.0, 0.0], C)
    extra = ({"potential": exact_twist(GMM, EVENT, PATH, 4.0),
              "proposal": tilted(GMM, EVENT, 4.0).denoiser(PATH)} if twisted else {})
    est = event_probability(GMM.denoiser(PATH), (2,), EVENT, C, scale=4.0, particles=128,
                            replicates=8, grid="quadratic",
                            generator=torch.Generator().manual_seed(0), **extra)
    assert abs(est.probability - p) < 4 * est.stderr, (est.probability, est.stderr, p)
    assert est.stderr < 0.5 * math.sqrt(p * (1 - p) / 1024)
    if twisted:
        assert est.stderr < 0.15 * p


def test_pilot_scale_centres_the_tilt():
    """Without ``scale`` a pilot run picks ``lam = (c - m) / v``; for this mixture ``m`` and
    ``v`` of ``x_1`` are known (m = -0.2, v = 1.23), so ``lam`` is near 2.2."""
    est = event_probability(GMM.denoiser(PATH), (2,), EVENT, C, particles=512, replicates=2,
                            steps=20, generator=torch.Generator().manual_seed(1))
    m = float(GMM.weights @ GMM.means[:, 0])
    v = float(GMM.weights @ (GMM.covs[:, 0, 0] + GMM.means[:, 0] ** 2)) - m * m
    assert est.scale == pytest.approx((C - m) / v, rel=0.2)


def test_bad_input():
    den = GMM.denoiser(PATH)
    with pytest.raises(ip.InterpolantError, match="particles must be a positive integer"):
        event_probability(den, (2,), EVENT, C, particles=0)
    with pytest.raises(ip.InterpolantError, match="threshold must be finite"):
        event_probability(den, (2,), EVENT, math.nan)
    with pytest.raises(ip.InterpolantError, match="direction must have shape"):
        halfspace_probability(GMM, [1.0, 0.0, 0.0], 1.0)
