"""interpolant.fewstep.distill / sample: bad input and divergence."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interpolant as ip
from interpolant import fewstep as fs
from interpolant.errors import InterpolantError

from .conftest import small_mlp


class NaNAfter(nn.Module):
    """A student whose output turns NaN from its ``k``-th training call on."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.net, self.k, self.calls = small_mlp(), k, 0

    def forward(self, x, t, cond=None):
        out = self.net(x, t)
        if self.training:
            self.calls += 1
            if self.calls > self.k:
                return out * float("nan")
        return out


@pytest.mark.parametrize("method", ["ct", "pd", "reflow"])
def test_divergence_names_the_step_and_keeps_finite_weights(oracle, method):
    student = NaNAfter(3)
    with pytest.raises(InterpolantError, match=r"diverged at step \d+ of 20"):
        fs.distill(oracle.teacher, method, student=student, data=oracle.data[:64], steps=20,
                   pairs=64, pair_steps=2, batch_size=8)
    assert all(torch.isfinite(p).all() for p in student.parameters())


def test_bad_input_is_refused(oracle):
    data = oracle.data[:32]
    with pytest.raises(InterpolantError, match="unknown distillation method"):
        fs.distill(oracle.teacher, "gan", student=small_mlp(), data=data)
    with pytest.raises(InterpolantError, match="teacher must be an interpolant.Denoiser"):
        fs.distill(lambda x, t: x, "cd", student=small_mlp(), data=data)
    with pytest.raises(InterpolantError, match="needs a teacher"):
        fs.distill(None, "pd", student=small_mlp(), data=data)
    wrong = ip.models.MLP(3, hidden=8, depth=1).double()
    with pytest.raises(InterpolantError, match="cannot take data of shape|data's shape"):
        fs.distill(oracle.teacher, "cd", student=wrong, data=data, steps=1)
    with pytest.raises(InterpolantError, match="predicts 'v' or 'x0'"):
        fs.distill(oracle.teacher, "pd", student=small_mlp(), data=data, prediction="eps")
    with pytest.raises(InterpolantError, match="divisible"):
        fs.distill(oracle.teacher, "pd", student=small_mlp(), data=data, teacher_steps=6,
                   rounds=2)
    with pytest.raises(InterpolantError, match="floating tensor"):
        fs.distill(oracle.teacher, "ct", student=small_mlp(), data=[1.0, 2.0])


def test_sample_checks_its_arguments(oracle):
    student = fs.distill(oracle.teacher, "ct", student=small_mlp(), data=oracle.data, steps=2)
    assert fs.sample(student, oracle.x1[:5], nfe=4).shape == (5, 2)
    with pytest.raises(InterpolantError, match="nfe must be a positive integer"):
        fs.sample(student, oracle.x1[:5], nfe=0)
    with pytest.raises(InterpolantError, match="student from interpolant.fewstep"):
        fs.sample(small_mlp(), oracle.x1[:5])
