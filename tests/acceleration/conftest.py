"""Small random networks for the acceleration tests (output layers not zero, so that the
networks' outputs, and any error in them, are not all zero)."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.models import DiT, UNet


def randomised(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return net.eval()


@pytest.fixture
def unet_denoiser() -> ip.Denoiser:
    return ip.Denoiser(randomised(UNet(base_channels=16)), ip.paths.VPLinear(), prediction="v")


@pytest.fixture
def dit_denoiser() -> ip.Denoiser:
    net = randomised(DiT(hidden=32, depth=3, heads=2))
    return ip.Denoiser(net, ip.paths.VPLinear(), prediction="v")


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
