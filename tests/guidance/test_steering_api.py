"""``ip.guidance.steer``: every method raises the reward over plain sampling; bad input."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.guidance import LinearReward, steer

F64 = torch.float64
GMM = ip.oracle.GaussianMixture.preset("aniso2d")
DEN = GMM.denoiser(ip.paths.VPLinear())
REWARD = LinearReward([1.0, 0.5])


@pytest.mark.parametrize("method, options", [
    ("fk", {"scale": 3.0, "steps": 20}), ("smc", {"scale": 3.0, "steps": 20}),
    ("best-of-n", {}), ("zero-order", {"rounds": 2}), ("paths", {"steps": 20}),
])
def test_every_method_raises_the_reward(method, options):
    """64 outputs of 8 particles each: the mean reward exceeds that of the model's own samples
    (exact mean ``b . E[x]``) by more than 4 standard errors."""
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(64, 2, generator=g, dtype=F64)
    x = steer(DEN, x1, REWARD, method, particles=8, generator=g, **options)
    assert x.shape == (64, 2)
    r = REWARD(x)
    base = float(GMM.weights @ REWARD(GMM.means))
    assert float(r.mean()) - base > 4 * float(r.std()) / math.sqrt(64)


def test_bad_input():
    x1 = torch.randn(2, 2, dtype=F64)
    with pytest.raises(ip.InterpolantError, match="particles must be a positive integer"):
        steer(DEN, x1, REWARD, particles=0)
    with pytest.raises(ip.InterpolantError, match="unknown steering method"):
        steer(DEN, x1, REWARD, method="beam")
    with pytest.raises(ip.InterpolantError, match="reward must be callable"):
        steer(DEN, x1, 3.0, method="best-of-n")
    with pytest.raises(ip.InterpolantError, match="x1 must be starting noise"):
        steer(DEN, x1[0], REWARD)
