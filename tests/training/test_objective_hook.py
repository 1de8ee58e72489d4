"""Trainer(objective=...): a custom loss, its time density, its trained and checkpointed state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.models import MLP
from interpolant.training import Objective, TrainConfig, Trainer, load_checkpoint, train


class _LearnedScale(nn.Module):
    """``L = E[l] / e^u + u`` with one learned scalar ``u``: its optimum is ``u = log E[l]``."""

    def __init__(self, path):
        super().__init__()
        self.inner = Objective(path, "v", "logit-normal")
        self.u = nn.Parameter(torch.full((), -1.0))

    def forward(self, net, x0, noise, t, cond=None):
        per = self.inner.per_sample(net, x0, noise, t, cond)
        return (per / self.u.exp() + self.u).mean()


class _FixedTime:
    """A plain callable objective that draws every t at 0.3 and records the times it sees."""

    def __init__(self, path):
        self.inner, self.seen = Objective(path, "eps"), []

    def sample_time(self, n, generator=None):
        return torch.full((n,), 0.3, dtype=torch.float64)

    def __call__(self, net, x0, noise, t, cond=None):
        self.seen.append(t.clone())
        return self.inner(net, x0, noise, t, cond)


def _setup(n=256):
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    data = gmm.sample(n, torch.Generator().manual_seed(0)).float()
    return ip.paths.VPLinear(), data


def _net(seed=0):
    torch.manual_seed(seed)
    return MLP(2, hidden=16, depth=1)


_OPTS = dict(steps=8, batch_size=64, lr=5e-2, progress=False, log_every=1, ema_halflife=300)


def test_a_module_objective_is_trained_and_reaches_its_optimum():
    # with the network frozen, AdamW drives u to the log of the mean per-sample loss, measured
    # independently on 20k fresh draws; from u = -1 the gap starts at 1.13
    path, data = _setup(1024)
    net = _net()
    for p in net.parameters():
        p.requires_grad_(False)
    obj = _LearnedScale(path)
    train(net, path, data, objective=obj, **{**_OPTS, "steps": 300, "batch_size": 256,
                                             "lr": 5e-2, "ema_halflife": None})
    g = torch.Generator().manual_seed(5)
    t = obj.inner.sample_time(20000, g)
    x0 = data[torch.randint(0, 1024, (20000,), generator=g)]
    noise = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        mean_loss = float(obj.inner.per_sample(net, x0, noise, t).mean())
    # Adam's steady-state jitter at lr 5e-2 and batch 256 is about 0.01-0.02 in u
    assert abs(float(obj.u.detach()) - math.log(mean_loss)) < 0.05


def test_the_objectives_own_time_density_is_used():
    path, data = _setup()
    obj = _FixedTime(path)
    train(_net(), path, data, objective=obj, **_OPTS)
    assert len(obj.seen) == 8
    assert all(torch.equal(t, torch.full((64,), 0.3, dtype=t.dtype)) for t in obj.seen)


def test_resume_with_a_module_objective_is_bitwise_exact(tmp_path):
    path, data = _setup()
    straight_obj = _LearnedScale(path)
    straight = train(_net(), path, data, objective=straight_obj, **{**_OPTS, "steps": 12})
    train(_net(), path, data, objective=_LearnedScale(path), run_dir=tmp_path,
          **{**_OPTS, "steps": 6})
    assert "objective" in load_checkpoint(tmp_path / "checkpoints").tensors
    resumed_obj = _LearnedScale(path)
    resumed = train(_net(7), path, data, objective=resumed_obj, run_dir=tmp_path, resume=True,
                    **{**_OPTS, "steps": 12})
    assert float(straight_obj.u.detach()) != -1.0
    assert torch.equal(straight_obj.u, resumed_obj.u)
    for (k, va), vb in zip(straight.model.state_dict().items(),
                           resumed.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert [h["loss"] for h in straight.history[6:]] == [h["loss"] for h in resumed.history]


def test_bad_objectives_are_refused(tmp_path):
    path, data = _setup()
    with pytest.raises(InterpolantError, match="objective must be a callable"):
        Trainer(_net(), path, data, config=TrainConfig(**_OPTS), objective=3.0)
    train(_net(), path, data, objective=_LearnedScale(path), run_dir=tmp_path,
          **{**_OPTS, "steps": 2})
    with pytest.raises(InterpolantError, match="cannot resume: .* holds the state of a trained"):
        Trainer(_net(), path, data, config=TrainConfig(**_OPTS), run_dir=tmp_path, resume=True)
