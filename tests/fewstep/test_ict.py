"""Improved consistency training (Song & Dhariwal 2023): its schedules and a tiny run."""

from __future__ import annotations

import math

import torch

import interpolant as ip
from interpolant import fewstep as fs

from .conftest import small_mlp


def test_curriculum_doubles_per_stage_as_in_the_paper():
    """K = 400k, s0 = 10, s1 = 1280: K' = floor(400k / 8) = 50k; N = 11, 21, ..., 1281."""
    assert fs.curriculum(0, 400_000) == 11
    assert fs.curriculum(49_999, 400_000) == 11
    assert fs.curriculum(50_000, 400_000) == 21
    assert fs.curriculum(300_000, 400_000) == 641
    assert fs.curriculum(399_999, 400_000) == 1281


def test_grid_is_karras_in_noise_to_signal_ratio():
    """s_i = (s_min^(1/7) + i/N (s_max^(1/7) - s_min^(1/7)))^7 with s = sigma / alpha."""
    path, n = ip.paths.VPLinear(), 10
    ts = fs.consistency_grid(path, n)
    s = path.sigma(ts) / path.alpha(ts)
    lo, hi = s[0] ** (1 / 7), s[-1] ** (1 / 7)
    want = (lo + torch.arange(n + 1, dtype=torch.float64) / n * (hi - lo)) ** 7
    assert torch.allclose(s, want, rtol=1e-9)


def test_interval_probabilities_match_lognormal_draws():
    """p(i) is the mass of log s ~ N(-1.1, 2^2) in [log s_i, log s_{i+1}], renormalised to the
    grid: the histogram of truncated draws agrees within 5 binomial standard deviations."""
    path = ip.paths.VPLinear()
    ts = fs.consistency_grid(path, 20)
    p = fs.interval_probabilities(path, ts)
    log_s = torch.log(path.sigma(ts) / path.alpha(ts))
    draws = -1.1 + 2.0 * torch.randn(400_000, generator=torch.Generator().manual_seed(0),
                                      dtype=torch.float64)
    draws = draws[(draws >= log_s[0]) & (draws <= log_s[-1])]
    freq = torch.bucketize(draws, log_s[1:-1]).bincount(minlength=20).double() / len(draws)
    sd = torch.sqrt(p * (1 - p) / len(draws))
    assert torch.all((freq - p).abs() <= 5 * sd + 1e-12), (freq - p) / sd
    s = torch.exp(log_s)
    assert torch.allclose(fs.interval_weights(path, ts), 1.0 / (s[1:] - s[:-1]), rtol=1e-9)


def test_ict_student_learns_a_one_step_map(oracle):
    """A tiny iCT run (no teacher) gives a one-step map far closer to the exact flow map than
    the teacher's one DDIM step (the mixture mean) and its two DDIM steps."""
    g = torch.Generator().manual_seed(5)
    student = fs.distill(None, "ct", path=oracle.path, student=small_mlp(), data=oracle.data,
                         steps=300, s0=10, s1=80, sigma_data=1.0, batch_size=128, generator=g)
    one = oracle.error(fs.sample(student, oracle.x1, nfe=1))
    ddim1 = oracle.error(ip.sample(oracle.teacher, oracle.x1, solver="ddim", steps=1))
    ddim2 = oracle.error(ip.sample(oracle.teacher, oracle.x1, solver="ddim", steps=2))
    assert one < 0.35 * ddim1 and one < 0.7 * ddim2, (one, ddim1, ddim2)
    assert math.isfinite(one)
