"""Velocity solvers on a discrete schedule: the linear interpolation of log alpha stalls them at
an error of about 1/N_train, the cubic one (same knots) lets them converge (issue 17.14)."""

from __future__ import annotations

import pytest
import torch
from support.orders import fit_order

import interpolant as ip

STEPS = [16, 32, 64, 128]


@pytest.fixture(scope="module")
def setting():
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    x1 = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    paths = {kind: ip.paths.VPDiscrete.from_betas("linear", 1000, interpolation=kind)
             for kind in ("linear", "cubic")}
    # the exact flow depends on the path only through lam at its ends, which are knots: one
    # reference serves both interpolations
    assert paths["linear"].lam(1e-3) == paths["cubic"].lam(1e-3)
    ref = gmm.flow(paths["linear"], x1, 1.0, 1e-3)
    return gmm, x1, paths, ref


def _sample(setting, kind, solver, steps):
    gmm, x1, paths, _ = setting
    return ip.sample(gmm.denoiser(paths[kind]), x1, solver=solver, steps=steps, grid="logsnr")


def _errors(setting, kind, solver):
    ref = setting[-1]
    return [float((_sample(setting, kind, solver, n) - ref).abs().max()) for n in STEPS]


def test_heun_is_second_order_on_the_cubic_schedule_and_stalls_on_the_linear(setting):
    # measured: linear 1.1e-2, 2.6e-3, 7.8e-4, 5.3e-4 (last slope 0.6, floor ~ 1/(2N));
    #           cubic  1.1e-2, 2.3e-3, 5.4e-4, 1.4e-4 (order 2.1)
    linear = _errors(setting, "linear", "heun")
    cubic = _errors(setting, "cubic", "heun")
    assert 1.8 < fit_order(STEPS, cubic) < 2.5, cubic
    assert 1.8 < fit_order(STEPS[-2:], cubic[-2:]), cubic
    assert fit_order(STEPS[-2:], linear[-2:]) < 1.0, linear
    assert linear[-1] > 3 * cubic[-1] and 2e-4 < linear[-1] < 2e-3, (linear, cubic)


def test_exponential_integrators_do_not_see_the_interpolation(setting):
    """On a log-SNR grid DPM-Solver++ sees the path only through lam at the grid points, which
    t_of_lam maps back to the same alpha, sigma whichever the interpolation: same samples."""
    for solver in ("dpm++2m", "dpm++2s"):
        torch.testing.assert_close(_sample(setting, "cubic", solver, 10),
                                   _sample(setting, "linear", solver, 10), rtol=1e-9, atol=1e-9)
