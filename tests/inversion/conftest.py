"""Shared by the inversion tests: a small random network in float64."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip


def random_mlp(seed: int = 0, num_classes=None) -> torch.nn.Module:
    """A small MLP with every weight random (its output layer too, which starts at zero)."""
    torch.manual_seed(seed)
    net = ip.models.MLP(dim=2, hidden=32, depth=2, num_classes=num_classes).to(torch.float64)
    torch.nn.init.normal_(net.output.weight, std=0.3)
    return net.eval()


@pytest.fixture(scope="session")
def make_mlp():
    return random_mlp
