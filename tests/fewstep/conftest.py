"""The oracle of the few-step tests: the 2-D mixture ``aniso2d`` on ``VPLinear``, its exact
denoiser (the teacher) and the exact flow map from ``t = 1`` to ``t_min`` on fixed noise."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import interpolant as ip


@pytest.fixture(scope="package")
def oracle():
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    path = ip.paths.VPLinear()
    g = torch.Generator().manual_seed(14)
    data = gmm.sample(4000, generator=g)
    x1 = torch.randn(400, 2, dtype=torch.float64, generator=g)
    ref = gmm.flow(path, x1, 1.0, path.t_min)

    def error(x):
        """Root-mean-square distance to the exact flow map of ``x1``."""
        return float(((x - ref) ** 2).sum(1).mean().sqrt())

    return SimpleNamespace(gmm=gmm, path=path, teacher=gmm.denoiser(path), data=data, x1=x1,
                           ref=ref, error=error)


def small_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ip.models.MLP(2, hidden=64, depth=2).double()
