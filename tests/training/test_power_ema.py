"""EDM2's power-function EMA and post-hoc EMA reconstruction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.models import MLP
from interpolant.training import train
from interpolant.training.power_ema import (PowerEMA, gamma_to_sigma_rel, posthoc_ema,
                                            save_snapshot, sigma_rel_to_gamma)


class _OneHot(nn.Module):
    """theta at step k is the k-th unit vector, so an average of the run IS its weight profile."""

    def __init__(self, n):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n, dtype=torch.float64))


def _run(n, every, folder, direct=(0.07,)):
    m = _OneHot(n)
    tracked, other = PowerEMA(m, (0.05, 0.10)), PowerEMA(m, direct)
    history = {}
    for k in range(1, n + 1):
        with torch.no_grad():
            m.w.zero_()
            m.w[k - 1] = 1.0
        tracked.update(m, 4, 4 * k)  # 4 samples per step
        other.update(m, 4, 4 * k)
        if k % every == 0:
            save_snapshot(folder, 4 * k, tracked)
        history[k] = other.models[0].w.detach().clone()
    return m, tracked, history


def _rel_std(w):
    tau = torch.arange(1, w.numel() + 1, dtype=torch.float64)
    mean = (w * tau).sum()
    return float((w * (tau - mean) ** 2).sum().sqrt() / w.numel())


def test_the_power_ema_has_the_requested_relative_width():
    # the EMA's weights over the run are measured directly; their relative std must be the
    # sigma_rel whose gamma set beta = (1 - 1/t)^(gamma + 1) (discretisation error ~ 1/N)
    assert sigma_rel_to_gamma(0.05) == pytest.approx(16.97, abs=0.01)  # EDM2's values
    assert sigma_rel_to_gamma(0.10) == pytest.approx(6.94, abs=0.01)
    assert gamma_to_sigma_rel(sigma_rel_to_gamma(0.123)) == pytest.approx(0.123, rel=1e-12)
    m = _OneHot(400)
    ema = PowerEMA(m, (0.05, 0.10, 0.2))
    for k in range(1, 401):
        with torch.no_grad():
            m.w.zero_()
            m.w[k - 1] = 1.0
        ema.update(m, 1, k)
    for want, avg in zip((0.05, 0.10, 0.2), ema.models):
        assert float(avg.w.sum()) == pytest.approx(1.0, abs=1e-12)
        assert _rel_std(avg.w.detach()) == pytest.approx(want, abs=2e-4)


def test_posthoc_reconstruction_matches_a_directly_tracked_profile(tmp_path):
    # Reconstructing sigma_rel = 0.07 from snapshots of 0.05 and 0.10 against a 0.07 EMA
    # tracked directly. The profiles' L1 distance bounds the weights' error for any run
    # (|theta_rec - theta| <= L1 * max |theta_tau|). Its error falls as S^-2 in the number of
    # snapshots: measured 8.8e-3 (S = 10), 2.3e-3 (20), 5.8e-4 (40).
    errors = []
    for every in (40, 20, 10):
        folder = tmp_path / str(every)
        m, _, history = _run(400, every, folder)
        rec = posthoc_ema(m, folder, 0.07).w.detach()
        errors.append(float((rec - history[400]).abs().sum()))
        if every == 10:  # also at an earlier time than the end: step 200
            early = posthoc_ema(m, folder, 0.07, samples=800).w.detach()
            assert float((early - history[200]).abs().sum()) < 3e-3
    assert errors[2] < 1e-3 and errors[1] < 4e-3
    assert errors[0] / errors[1] > 3 and errors[1] / errors[2] > 3  # second order in 1/S


def test_the_trainer_saves_snapshots_and_resumes_the_power_ema_exactly(tmp_path):
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    data = gmm.sample(256, torch.Generator().manual_seed(0)).float()
    path = ip.paths.VPLinear()
    opts = dict(target="v", batch_size=64, lr=1e-2, progress=False, log_every=1,
                ema_sigma_rels=(0.05, 0.10), ema_snapshot_every=2)

    def net():
        torch.manual_seed(0)
        return MLP(2, hidden=16, depth=1)

    straight = train(net(), path, data, run_dir=tmp_path / "a", steps=8, **opts)
    train(net(), path, data, run_dir=tmp_path / "b", steps=4, **opts)
    resumed = train(net(), path, data, run_dir=tmp_path / "b", steps=8, resume=True, **opts)
    for a, b in zip(straight.ema_model.parameters(), resumed.ema_model.parameters()):
        assert torch.equal(a, b)
    names = sorted(p.name for p in (tmp_path / "b" / "ema_snapshots").iterdir())
    assert names == [f"snapshot_{64 * k:012d}.safetensors" for k in (2, 4, 6, 8)]
    # the 0.05 profile at the end is itself a snapshot: the reconstruction must find it
    rec = posthoc_ema(net(), tmp_path / "b", 0.05)
    for a, b in zip(rec.parameters(), straight.ema_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_bad_requests_are_refused(tmp_path):
    with pytest.raises(InterpolantError, match="no post-hoc EMA snapshots in .*ema_sigma_rels"):
        posthoc_ema(_OneHot(3), tmp_path, 0.07)
    with pytest.raises(InterpolantError, match=r"sigma_rel must lie in \(0, 0.2887\]"):
        sigma_rel_to_gamma(0.4)
    with pytest.raises(InterpolantError, match="ema_snapshot_every .* needs ema_sigma_rels"):
        train(_OneHot(3), ip.paths.VPLinear(), torch.zeros(8, 3), ema_snapshot_every=5)
    with pytest.raises(InterpolantError, match="give run_dir"):
        train(_OneHot(3), ip.paths.VPLinear(), torch.zeros(8, 3), batch_size=4,
              ema_sigma_rels=(0.05,), ema_snapshot_every=5)
