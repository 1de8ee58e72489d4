"""Score calibration (Pan et al. 2023): zero for the exact score, removes a perturbation's mean."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.training.calibration import (CalibratedNet, estimate_calibration,
                                              load_calibration, save_calibration)

PATH = ip.paths.VPCosine()
N = 4000
BOUND = 4.5 / math.sqrt(N)  # 4.5 standard errors: Var(E[eps | x_t]) <= Var(eps) = 1


def _setup():
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    return gmm, gmm.sample(N, torch.Generator().manual_seed(0))


def _exact_eps(gmm):
    def eps(x, t):
        x0 = gmm.posterior_mean(x, PATH.alpha(t), PATH.sigma(t))
        return ip.convert(x0, "x0", "eps", x, t, PATH)

    return eps


def _shift(t):
    """A perturbation c(t) of the eps prediction, different in each coordinate."""
    return torch.stack([0.3 * torch.sin(3 * t), -0.2 + 0.4 * t], dim=-1)


def test_the_exact_score_needs_no_calibration():
    gmm, data = _setup()
    cal = estimate_calibration(_exact_eps(gmm), PATH, data, "eps", times=8,
                               generator=torch.Generator().manual_seed(1))
    assert cal.eta.shape == (8, 2)
    assert float(cal.eta.abs().max()) < BOUND


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_calibration_removes_the_mean_of_a_perturbation(prediction):
    # eps + c(t): eta_t must be c(t) up to the Monte Carlo error, and the calibrated network
    # must give back the exact prediction between the estimated times too (c is smooth: linear
    # interpolation over 16 times adds < 3e-3)
    gmm, data = _setup()
    exact = _exact_eps(gmm)

    def net(x, t):
        return ip.convert(exact(x, t) + _shift(t).to(x.dtype), "eps", prediction, x, t, PATH)

    times = torch.linspace(0.02, 0.98, 16, dtype=torch.float64)
    cal = estimate_calibration(net, PATH, data, prediction, times=times,
                               generator=torch.Generator().manual_seed(2))
    assert float((cal.eta - _shift(times)).abs().max()) < BOUND
    g = torch.Generator().manual_seed(3)
    t = 0.05 + 0.9 * torch.rand(N, generator=g, dtype=torch.float64)
    x = PATH.sample(data, t, torch.randn(N, 2, generator=g, dtype=torch.float64))
    fixed = CalibratedNet(net, PATH, prediction, cal)(x, t)
    want = ip.convert(exact(x, t), "eps", prediction, x, t, PATH)
    err = ip.convert(fixed - want, prediction, "eps", torch.zeros_like(x), t, PATH)
    assert float(err.abs().max()) < BOUND + 3e-3
    before = ip.convert(net(x, t) - want, prediction, "eps", torch.zeros_like(x), t, PATH)
    assert float(before.abs().max()) > 0.25  # the perturbation was really there


def test_bad_calibration_requests_are_refused(tmp_path):
    gmm, data = _setup()
    with pytest.raises(InterpolantError, match="unknown prediction target 'noise'"):
        estimate_calibration(_exact_eps(gmm), PATH, data, "noise")
    with pytest.raises(InterpolantError, match="at least 2 times"):
        estimate_calibration(_exact_eps(gmm), PATH, data, times=1)
    with pytest.raises(InterpolantError, match="one label per data row"):
        estimate_calibration(_exact_eps(gmm), PATH, data, labels=torch.zeros(3, dtype=torch.long))
    with pytest.raises(InterpolantError, match="holds no calibration.safetensors; train it "
                                               "with --recipe calibrate"):
        load_calibration(tmp_path)
    cal = estimate_calibration(_exact_eps(gmm), PATH, data[:64], times=2)
    torch.testing.assert_close(load_calibration(save_calibration(tmp_path, cal).parent).eta,
                               cal.eta)
    with pytest.raises(InterpolantError, match=r"estimated for data of shape \(2,\)"):
        CalibratedNet(_exact_eps(gmm), PATH, "eps", cal)(torch.zeros(4, 3), torch.rand(4))
