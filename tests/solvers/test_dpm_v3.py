"""DPM-Solver-v3: the reduction to DPM-Solver++, exactness with the exact statistics of a
Gaussian, and the library's statistics against their closed form."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.acceleration import model_statistics
from interpolant.errors import InterpolantError
from interpolant.oracle import GaussianMixture
from interpolant.solvers.dpm_v3 import Statistics

F64 = torch.float64
MU = torch.tensor([[0.5, -0.3]], dtype=F64)
VAR = torch.tensor([0.3**2, 1.0], dtype=F64)


def _gaussian() -> GaussianMixture:
    return GaussianMixture(MU, torch.diag(VAR)[None])


def exact_statistics(lams: torch.Tensor) -> Statistics:
    """Axis-aligned Gaussian: ``sigma eps = c (x - alpha mu)`` with ``c = 1 / (e^{2 lam} v + 1)``
    per axis, so ``l = c``, ``f = -c mu`` (no dependence on x: ``s = 0``) and
    ``b = f' = -c' mu``."""
    e = torch.exp(2 * lams)[:, None]
    c = 1 / (e * VAR + 1)
    dc = -2 * e * VAR / (e * VAR + 1) ** 2
    return Statistics(lams, c, torch.zeros_like(c), -dc * MU)


@pytest.mark.parametrize("path", [ip.paths.VPLinear(), ip.paths.EDM()], ids=["vp", "edm"])
@pytest.mark.parametrize("steps", [6, 11])
def test_dpmpp_statistics_reduce_to_dpm_solver_pp(path, steps):
    """l = 1, s = b = 0 (the paper's reduction, also the default): order 2 is DPM-Solver++(2M)
    with the phi_2 ("heun") weight, order 3 DPM-Solver++(3M) in its Taylor-consistent form."""
    den = GaussianMixture.preset("aniso2d").denoiser(path)
    g = torch.Generator().manual_seed(0)
    x = path.sigma(1.0) * torch.randn(32, 2, dtype=F64, generator=g)
    pairs = [
        ({"order": 2}, ("dpm++2m", {"solver_type": "heun"})),
        ({"order": 3, "statistics": Statistics.dpmpp()},
         ("dpm++3m", {"solver_type": "heun", "third_order": "consistent"})),
    ]
    for v3, (name, options) in pairs:
        a = ip.sample(den, x, "dpm-v3", steps=steps, use_corrector=False, **v3)
        b = ip.sample(den, x, name, steps=steps, **options)
        assert (a - b).abs().max().item() < 1e-12 * (1 + b.abs().max().item())


def test_exact_statistics_make_the_solver_exact_on_a_gaussian():
    """With the closed-form statistics g is constant: the only error left is the piecewise-linear
    interpolation of the statistics (shrinking with their grid), far below DPM-Solver++."""
    path = ip.paths.VPLinear()
    gmm = _gaussian()
    den = gmm.denoiser(path)
    x = torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    ref = gmm.flow(path, x)
    lo, hi = path.lam(1.0) - 0.1, path.lam(path.t_min) + 0.1
    errs = []
    for n in (200, 800):
        stats = exact_statistics(torch.linspace(lo, hi, n, dtype=F64))
        errs.append((ip.sample(den, x, "dpm-v3", steps=5, statistics=stats) - ref).abs().max())
    plain = (ip.sample(den, x, "dpm++2m", steps=5) - ref).abs().max()
    assert errs[1] < 2e-5 < 0.1 < plain
    assert errs[1] < errs[0] / 2  # shrinks with the statistics' spacing


def test_model_statistics_match_the_closed_form():
    """The library's estimator (Hutchinson diagonal, least-squares s and b) on the exact denoiser
    of an axis-aligned Gaussian: l exact up to finite differences, s = 0, b = -c' mu up to the
    second-order differences of l in lam."""
    path = ip.paths.VPLinear()
    gmm = _gaussian()
    x0 = gmm.sample(200, generator=torch.Generator().manual_seed(2))
    est = model_statistics(gmm.denoiser(path), x0, n_lams=48,
                           generator=torch.Generator().manual_seed(3))
    exact = exact_statistics(est.lams)
    assert (est.l - exact.l).abs().max() < 1e-8
    assert est.s.abs().max() < 0.05
    assert (est.b - exact.b).abs().max() < 0.02 * exact.b.abs().max()
    pooled = model_statistics(gmm.denoiser(path), x0, n_lams=8, per_dimension=False,
                              generator=torch.Generator().manual_seed(3))
    assert pooled.event_shape == ()
    assert (pooled.l - exact_statistics(pooled.lams).l.mean(1)).abs().max() < 1e-8


def test_statistics_that_do_not_fit_are_refused():
    den = _gaussian().denoiser(ip.paths.VPLinear())
    x = torch.randn(4, 2, dtype=F64)
    lams = torch.linspace(-5, 5, 3, dtype=F64)
    bad = Statistics(lams, torch.ones(3, 3), torch.zeros(3, 3), torch.zeros(3, 3))
    with pytest.raises(InterpolantError, match="do not fit samples"):
        ip.sample(den, x, "dpm-v3", steps=4, statistics=bad)
    with pytest.raises(InterpolantError, match="increasing"):
        Statistics(lams.flip(0), torch.ones(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(InterpolantError, match="one row per log-SNR"):
        Statistics(lams, torch.ones(2), torch.zeros(2), torch.zeros(2))
    with pytest.raises(InterpolantError, match="Statistics"):
        ip.solvers.get("dpm-v3", statistics={"l": 1})
