"""MMD-DDM (Aiello et al. 2023): the differentiable MMD and a fine-tuned 2-step sampler."""

from __future__ import annotations

import math

import torch
from torch import nn

import interpolant as ip
from interpolant import fewstep as fs
from interpolant.metrics import mmd, sliced_wasserstein

from .conftest import small_mlp


def test_mmd2_is_the_unbiased_u_statistic():
    """Equal to the library's unbiased RBF MMD^2 for one bandwidth (an independent
    implementation), and with a sum of kernels the sum of the single-kernel values."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = torch.randn(40, 3, generator=g, dtype=torch.float64) + 0.3
    for h in (0.5, 2.0):
        assert math.isclose(float(fs.mmd2(x, y, (h,))), mmd(x, y, bandwidth=h), rel_tol=1e-10)
    both = float(fs.mmd2(x, y, (0.5, 2.0)))
    assert math.isclose(both, mmd(x, y, bandwidth=0.5) + mmd(x, y, bandwidth=2.0), rel_tol=1e-10)


class TeacherPlus(nn.Module):
    """The exact teacher's data prediction plus a learned correction (zero at start)."""

    def __init__(self, teacher: ip.Denoiser) -> None:
        super().__init__()
        self.teacher, self.net = teacher, small_mlp()

    def forward(self, x, t):
        return self.teacher(x, t) + self.net(x, t)


def test_mmd_finetuning_repairs_a_two_step_sampler(oracle):
    """Two DDIM steps of the exact teacher are far from the data law (SW2 ~ 0.75 against a
    floor of ~0.05); fine-tuning the sampler's network by MMD brings it most of the way."""
    g = torch.Generator().manual_seed(6)
    x1, fresh = oracle.x1, oracle.gmm.sample(400, generator=g)
    net = TeacherPlus(oracle.teacher)
    before = sliced_wasserstein(ip.sample(ip.Denoiser(net, oracle.path, "x0"), x1,
                                          solver="ddim", steps=2, grid="uniform"), fresh)
    student = fs.distill(oracle.teacher, "mmd", student=net, data=oracle.data, steps=120, nfe=2,
                         lr=3e-3, batch_size=128, generator=g)
    after = sliced_wasserstein(fs.sample(student, x1, nfe=2), fresh)
    floor = sliced_wasserstein(oracle.ref, fresh)
    assert after < 0.3 * before and after < 4 * floor, (before, after, floor)
