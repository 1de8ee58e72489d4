"""The report's scale sweep: every scale from one noise, each equal to its own guided run."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.app.sweeps import guidance_sweep
from interpolant.errors import InterpolantError

F64 = torch.float64


def test_sweep_points_are_the_guided_samples(gmm, labels):
    path = ip.paths.VPCosine()
    den = gmm.denoiser(path)
    x1 = torch.randn(8, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    points = guidance_sweep(den, labels, [1.0, 3.0], x_start=x1, steps=10, interval=(0.1, 0.9))
    assert [p.scale for p in points] == [1.0, 3.0]
    torch.testing.assert_close(points[0].samples,
                               ip.sample(den, x1, "dpm++2m", 10, cond=labels), rtol=0, atol=0)
    cfg = ip.guidance.CFG(den, 3.0, interval=(0.1, 0.9))
    torch.testing.assert_close(points[1].samples, ip.sample(cfg, x1, "dpm++2m", 10, cond=labels))
    assert points[1].nfe == cfg.nfe > 10


def test_sweep_draws_its_noise_and_refuses_unknown_methods(gmm, labels):
    den = gmm.denoiser(ip.paths.VPLinear())
    g = torch.Generator().manual_seed(1)
    points = guidance_sweep(den, labels, [0.0, 2.0], solver="ddpm", steps=5, shape=(2,),
                            dtype=F64, generator=g)
    assert points[0].samples.shape == (8, 2) and torch.isfinite(points[1].samples).all()
    with pytest.raises(InterpolantError, match="guidance method"):
        guidance_sweep(den, labels, [2.0], method="magic", shape=(2,))
    with pytest.raises(InterpolantError, match="weak="):
        guidance_sweep(den, labels, [2.0], method="auto", shape=(2,))
