"""Paths: closed forms, derivatives, log-SNR inverses, diffusers' beta schedules."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import interpolant as ip
from interpolant.errors import InterpolantError

from support.paths import all_paths

F64 = torch.float64


def _interior(path, n=101):
    lo = max(path.t_min, 1e-3)
    return torch.linspace(lo, 0.999, n, dtype=F64)


def test_derivatives_match_central_differences(path):
    t = _interior(path)
    h = 1e-6
    for f, df in ((path.alpha, path.d_alpha), (path.sigma, path.d_sigma)):
        fd = (f(t + h) - f(t - h)) / (2 * h)
        if isinstance(path, ip.paths.VPDiscrete):
            # piecewise linear log alpha: derivative is one-sided at the knots; avoid them
            k = t * path.num_train_timesteps
            keep = (k - k.round()).abs() > 1e-3
            fd, exact = fd[keep], df(t)[keep]
        else:
            exact = df(t)
        torch.testing.assert_close(exact, fd, rtol=1e-6, atol=1e-7)


def test_lam_is_log_snr_and_decreasing(path):
    t = _interior(path)
    torch.testing.assert_close(path.lam(t), torch.log(path.alpha(t) / path.sigma(t)))
    assert torch.all(path.lam(t)[1:] < path.lam(t)[:-1])


@pytest.mark.parametrize("index", range(8))
@settings(max_examples=40, deadline=None)
@given(u=st.floats(0.0, 1.0))
def test_t_of_lam_inverts_lam(index, u):
    path = all_paths()[index]
    t = path.t_min + (0.999 - path.t_min) * u
    assert path.t_of_lam(path.lam(t)) == pytest.approx(t, abs=1e-9)


def test_closed_forms():
    t = torch.linspace(0, 1, 11, dtype=F64)
    vp = ip.paths.VPLinear(beta_min=0.1, beta_max=20.0)
    log_a = -0.25 * t**2 * (20.0 - 0.1) - 0.5 * t * 0.1
    torch.testing.assert_close(vp.alpha(t), log_a.exp())
    torch.testing.assert_close(vp.sigma(t), (1 - (2 * log_a).exp()).sqrt())

    cos = ip.paths.VPCosine(s=0.008)
    f = lambda u: torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    torch.testing.assert_close(cos.alpha(t[:-1]) ** 2, f(t[:-1]) / f(torch.zeros(1, dtype=F64)))

    ve = ip.paths.VE(sigma_min=0.01, sigma_max=50.0)
    torch.testing.assert_close(ve.sigma(t), 0.01 * (50.0 / 0.01) ** t)
    assert ve.alpha(0.3) == 1.0

    edm = ip.paths.EDM()
    assert edm.sigma(1.0) == pytest.approx(80.0) and edm.sigma(0.0) == pytest.approx(0.002)

    lin = ip.paths.Linear()
    torch.testing.assert_close(lin.alpha(t), 1 - t)
    torch.testing.assert_close(lin.sigma(t), t)
    trig = ip.paths.Trig()
    torch.testing.assert_close(trig.alpha(t), torch.cos(math.pi / 2 * t))
    torch.testing.assert_close(trig.sigma(t), torch.sin(math.pi / 2 * t))


def test_sample_broadcasts_time_per_sample(path):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 3, 4, 4, generator=g, dtype=F64)
    noise = torch.randn(5, 3, 4, 4, generator=g, dtype=F64)
    t = torch.linspace(0.1, 0.9, 5, dtype=F64)
    xt = path.sample(x0, t, noise)
    for i in range(5):
        ti = float(t[i])
        torch.testing.assert_close(xt[i], path.alpha(ti) * x0[i] + path.sigma(ti) * noise[i])


@pytest.mark.parametrize(
    "schedule, start, end",
    [("linear", 1e-4, 0.02), ("scaled_linear", 0.00085, 0.012), ("squaredcos_cap_v2", 1e-4, 0.02)],
)
def test_vp_discrete_reproduces_diffusers_schedules(schedule, start, end):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(
        num_train_timesteps=1000, beta_schedule=schedule, beta_start=start, beta_end=end
    ).alphas_cumprod.to(F64)
    ours = ip.paths.VPDiscrete.from_betas(schedule, 1000, start, end)
    # diffusers accumulates its cumprod in float32; ours is float64: agree to float32 rounding
    torch.testing.assert_close(ours.alphas_cumprod, ref, rtol=2e-5, atol=0)
    # and index k sits at t = (k + 1) / N
    k = torch.tensor([0, 1, 499, 998, 999])
    torch.testing.assert_close(ours.alpha((k + 1).to(F64) / 1000) ** 2, ours.alphas_cumprod[k])


def test_vp_discrete_interpolates_log_alpha_linearly():
    path = ip.paths.VPDiscrete.from_betas("linear", 10)
    la = 0.5 * path.alphas_cumprod.log()
    # halfway between index 3 (t=0.4) and 4 (t=0.5)
    assert math.log(path.alpha(0.45)) == pytest.approx(float(la[3] + la[4]) / 2, rel=1e-12)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: ip.paths.VPLinear(beta_min=-1.0), "beta"),
        (lambda: ip.paths.VPLinear(beta_min=5.0, beta_max=1.0), "beta"),
        (lambda: ip.paths.VE(sigma_min=2.0, sigma_max=1.0), "sigma"),
        (lambda: ip.paths.VPCosine(s=-0.5), "s"),
        (lambda: ip.paths.VPDiscrete(torch.tensor([0.5, 0.9])), "decreasing"),
        (lambda: ip.paths.VPDiscrete.from_betas("cubic"), "linear"),
        (lambda: ip.paths.get("vp-lineer"), "vp-linear"),
    ],
)
def test_invalid_paths_are_refused_with_a_clear_message(make, words):
    with pytest.raises(InterpolantError, match=words):
        make()


def test_get_builds_every_named_path():
    for name in ip.paths.available():
        assert isinstance(ip.paths.get(name), ip.paths.GaussianPath)


def test_vp_discrete_below_its_first_index_reaches_clean_data_not_nan():
    path = ip.paths.VPDiscrete.from_betas("linear", 1000)
    t = torch.linspace(0.0, 1e-3, 21, dtype=F64)
    alpha, sigma = path.alpha(t), path.sigma(t)
    assert torch.all(torch.isfinite(sigma)) and torch.all(alpha <= 1.0)
    assert float(sigma[0]) == 0.0 and float(sigma[-1]) > 0.0
    assert torch.all(sigma[1:] >= sigma[:-1])


def test_sub_vp_variance_solves_its_sde():
    """Song et al. 2021, eq. 29: dx = -beta/2 x dt + sqrt(beta (1 - e^{-2B})) dW from a point
    gives the variance ODE dV/dt = -beta V + beta (1 - e^{-2B}), V(0) = 0."""
    sub, vp = ip.paths.SubVP(), ip.paths.VPLinear()
    t = torch.linspace(0.01, 0.99, 41, dtype=torch.float64)
    alpha, sigma, d_sigma = sub.alpha(t), sub.sigma(t), sub.d_sigma(t)
    beta = vp.beta_min + t * (vp.beta_max - vp.beta_min)
    big_b = -2.0 * torch.log(alpha)
    dv = 2.0 * sigma * d_sigma
    assert torch.allclose(dv, -beta * sigma**2 + beta * -torch.expm1(-2.0 * big_b), rtol=1e-10)
    assert torch.allclose(alpha, vp.alpha(t), rtol=1e-14)  # the drift, hence the mean, of VP
    assert torch.all(sigma < vp.sigma(t))
