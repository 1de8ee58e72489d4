"""Time grids: ends, monotonicity, and the spacing each name promises."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant import grids
from interpolant.errors import InterpolantError


@pytest.mark.parametrize("name", grids.NAMES)
@pytest.mark.parametrize("steps", [1, 2, 3, 10, 50])
def test_grids_have_the_asked_ends_and_decrease(path, name, steps):
    ts = grids.make(name, path, steps)
    assert ts.dtype == torch.float64 and ts.numel() == steps + 1
    assert float(ts[0]) == 1.0 and float(ts[-1]) == pytest.approx(path.t_min)
    assert torch.all(ts[1:] < ts[:-1])


def test_logsnr_grid_is_uniform_in_lam():
    path = ip.paths.VPLinear()
    ts = grids.make("logsnr", path, 12)
    lam = path.lam(ts)
    steps = lam[1:] - lam[:-1]
    torch.testing.assert_close(steps, torch.full_like(steps, float(steps.mean())), rtol=1e-9, atol=0)


def test_karras_grid_follows_the_rho_formula_on_edm():
    path = ip.paths.EDM()
    n, rho = 18, 7.0
    ts = grids.make("karras", path, n, t_end=0.0)
    # EDM eq. 5, written out independently; the last point is sigma_min (t = 0) here
    i = torch.arange(n + 1, dtype=torch.float64)
    smax, smin = 80.0 ** (1 / rho), 0.002 ** (1 / rho)
    sigma = (smax + i / n * (smin - smax)) ** rho
    torch.testing.assert_close(path.sigma(ts), sigma, rtol=1e-10, atol=0)


def test_quadratic_grid_is_uniform_in_sqrt_t():
    ts = grids.make("quadratic", ip.paths.VPLinear(), 8, t_end=0.01)
    d = ts.sqrt()[:-1] - ts.sqrt()[1:]
    torch.testing.assert_close(d, torch.full_like(d, (1.0 - 0.1) / 8), rtol=1e-9, atol=0)


def test_lam_grids_clip_the_noise_end_with_one_jump():
    path = ip.paths.Linear()  # alpha(1) = 0: lam(1) = -inf
    ts = grids.make("logsnr", path, 10)
    lam = path.lam(ts[1:])
    assert float(lam[0]) == pytest.approx(grids.LAM_MIN)
    d = lam[1:] - lam[:-1]
    torch.testing.assert_close(d, torch.full_like(d, float(d.mean())), rtol=1e-9, atol=0)


def test_lam_grids_end_at_zero_noise_with_one_jump():
    ts = grids.make("karras", ip.paths.EDM(), 10, t_end=None)
    assert float(ts[-1]) == 0.0
    assert ip.paths.EDM().sigma(float(ts[-1])) == pytest.approx(0.002)
    ts = grids.make("logsnr", ip.paths.Linear(), 10, t_end=0.0)
    assert float(ts[-1]) == 0.0 and math.isfinite(float(ip.paths.Linear().lam(float(ts[-2]))))


@pytest.mark.parametrize(
    "bad, words",
    [
        (torch.tensor([1.0, 0.5, 0.5]), "strictly decreasing"),
        (torch.tensor([0.2, 0.5]), "strictly decreasing"),
        (torch.tensor([1.0, float("nan")]), "finite"),
        (torch.tensor([1.5, 0.5]), r"\[0, 1\]"),
        (torch.tensor([[1.0, 0.5]]), "1-D"),
        (torch.tensor([1.0]), "2"),
    ],
)
def test_check_refuses_bad_grids(bad, words):
    with pytest.raises(InterpolantError, match=words):
        grids.check(bad)


def test_make_refuses_bad_arguments():
    path = ip.paths.VPLinear()
    with pytest.raises(InterpolantError, match="unknown grid"):
        grids.make("cosine", path, 10)
    with pytest.raises(InterpolantError, match="positive integer"):
        grids.make("uniform", path, 0)
    with pytest.raises(InterpolantError, match="t_end < t_start"):
        grids.make("uniform", path, 5, t_start=0.1, t_end=0.5)


_ENDS = (1.0, 0.99999, 0.9995, 0.999, 0.99, 0.9, 0.5, 0.1, 0.01, 1e-3, 5e-4, 1e-4, 1e-6, 0.0)


@pytest.mark.parametrize("name", grids.NAMES)
def test_grids_decrease_between_any_valid_ends(path, name):
    """Every t_start > t_end gives a strictly decreasing grid with exactly those ends: both ends
    below the head clip (issue 17.8: VPCosine from 1 to 0.999), both in the clean region of a
    discrete schedule (sigma = 0 below its first training step), and everything between."""
    pairs = [(a, b) for a in _ENDS for b in _ENDS if a > b]
    for t_start, t_end in pairs:
        for steps in (1, 2, 3, 7, 25):
            ts = grids.make(name, path, steps, t_start=t_start, t_end=t_end)
            where = f"{name} {t_start} -> {t_end}, {steps} steps"
            assert ts.numel() == steps + 1, where
            assert float(ts[0]) == t_start and float(ts[-1]) == t_end, where
            assert bool(torch.all(ts[1:] < ts[:-1])), f"{where}: {ts.tolist()}"


@pytest.mark.parametrize("path", [ip.paths.VPCosine(), ip.paths.Linear(), ip.paths.Trig()],
                         ids=repr)
def test_both_ends_below_the_head_clip(path):
    """Issue 17.8: from t = 1 to 0.999 (lam -6.5 < LAM_MIN) the head jump lands one unit of lam
    below t_end, the rest is uniform in lam, and DDIM on it follows the exact flow."""
    ts = grids.make("logsnr", path, 5, t_end=0.999)
    lam = path.lam(ts[1:])
    assert float(lam[0]) == pytest.approx(path.lam(0.999) - 1.0, abs=1e-9)
    d = lam[1:] - lam[:-1]
    torch.testing.assert_close(d, torch.full_like(d, 0.25), rtol=1e-9, atol=0)
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    x = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = ip.sample(gmm.denoiser(path), x, solver="ddim", steps=5, grid="logsnr", t_end=0.999)
    torch.testing.assert_close(out, gmm.flow(path, x, 1.0, 0.999), rtol=0, atol=1e-5)
