"""VPDiscrete: the default schedule, and the cubic interpolation of log alpha (issue 17.12, 14)."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError

F64 = torch.float64


def test_default_is_ddpm_linear_betas():
    """No argument: diffusers' DDPMScheduler() default, 1000 linear betas from 1e-4 to 0.02
    (``from_betas`` is checked against diffusers in test_paths.py)."""
    path = ip.paths.VPDiscrete()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    torch.testing.assert_close(path.alphas_cumprod, torch.cumprod(1 - betas, 0), rtol=1e-14, atol=0)
    assert path.num_train_timesteps == 1000 and path.interpolation == "linear"
    ref = ip.paths.VPDiscrete.from_betas("linear", 1000)
    t = torch.linspace(0.0, 1.0, 37, dtype=F64)
    assert torch.equal(path.alpha(t), ref.alpha(t)) and torch.equal(path.lam(t), ref.lam(t))


def test_schedule_given_positionally_still_works():
    ac = torch.tensor([0.9, 0.5, 0.1])
    assert torch.equal(ip.paths.VPDiscrete(ac).alphas_cumprod, ac.to(F64))
    with pytest.raises(InterpolantError, match="cubic, linear"):
        ip.paths.VPDiscrete(ac, interpolation="spline")


@pytest.fixture(scope="module", params=["linear", "scaled_linear", "squaredcos_cap_v2"])
def pair(request):
    make = ip.paths.VPDiscrete.from_betas
    return make(request.param, 1000), make(request.param, 1000, interpolation="cubic")


def test_cubic_keeps_the_knots_exact(pair):
    """alphas_cumprod[k] at t = (k + 1) / N, as the linear interpolation (diffusers parity)."""
    linear, cubic = pair
    t = torch.arange(1, 1001, dtype=F64) / 1000
    for path in pair:
        torch.testing.assert_close(path.alpha(t) ** 2, path.alphas_cumprod, rtol=1e-14, atol=0)
    assert torch.equal(cubic.lam(t), linear.lam(t))


def test_cubic_is_monotone_and_continuously_differentiable(pair):
    linear, cubic = pair
    t = torch.linspace(1e-3, 1.0, 200_001, dtype=F64)
    lam = cubic.lam(t)
    assert bool(torch.all(lam[1:] < lam[:-1]))
    # the slope of log alpha just left and right of each knot: equal for the cubic, while the
    # linear interpolation jumps by the change of the secant (1/N of the curvature)
    knots = torch.arange(2, 1000, dtype=F64) / 1000
    for path, continuous in ((cubic, True), (linear, False)):
        def slope(tt, p=path):
            return p.d_alpha(tt) / p.alpha(tt)

        def across(d, s=slope):
            return s(knots + d) - s(knots - d)

        jump = (2 * across(1e-8) - across(2e-8)).abs()  # the curvature's share cancelled
        scale = slope(knots).abs() / 1000
        assert bool(torch.all(jump < 1e-3 * scale)) == continuous
    # and the derivative is that of alpha (central differences inside the segments)
    tt = (torch.arange(1, 999, dtype=F64) + 0.37) / 1000
    fd = (cubic.alpha(tt + 1e-6) - cubic.alpha(tt - 1e-6)) / 2e-6
    torch.testing.assert_close(cubic.d_alpha(tt), fd, rtol=1e-6, atol=1e-8)


def test_cubic_t_of_lam_inverts_lam(pair):
    _, cubic = pair
    t = torch.cat([torch.linspace(1e-3, 1.0, 4001, dtype=F64), torch.rand(500, dtype=F64)])
    t = t[t >= 1e-3]
    torch.testing.assert_close(cubic.t_of_lam(cubic.lam(t)), t, rtol=0, atol=1e-12)
    lam = torch.linspace(float(cubic.lam(1.0)), float(cubic.lam(1e-3)), 3001, dtype=F64)
    torch.testing.assert_close(cubic.lam(cubic.t_of_lam(lam)), lam, rtol=1e-12, atol=1e-12)
    assert cubic.t_of_lam(float(lam[7])) == pytest.approx(float(cubic.t_of_lam(lam)[7]), abs=1e-15)


def test_get_passes_the_interpolation():
    path = ip.paths.get("vp-discrete-scaled_linear", interpolation="cubic")
    assert path.interpolation == "cubic" and path.num_train_timesteps == 1000
