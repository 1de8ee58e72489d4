"""Loss guidance on the predicted x0: a quadratic measurement loss on one Gaussian gives a
closed-form guided prediction through the denoiser's (affine) Jacobian."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.predictions import TARGETS

F64 = torch.float64


def _setup():
    gmm = ip.oracle.GaussianMixture.preset("gauss2d")
    A = torch.tensor([[1.0, 0.5]], dtype=F64)
    y = torch.tensor([0.7], dtype=F64)
    return gmm, A, y, lambda x0, cond: 0.5 * ((x0 @ A.T - y) ** 2).sum(1) / 0.1**2


@pytest.mark.parametrize("through", [True, False])
@pytest.mark.parametrize("t", [0.2, 0.7])
def test_quadratic_loss_on_a_gaussian_is_the_closed_form(path, points, through, t):
    """D(x) = mu + J (x - alpha mu), J = alpha S (alpha^2 S + sigma^2 I)^-1, so
    grad_x l(D(x)) = J^T A^T (A D - y) / s_y^2 and the guided x0 is
    D - s (sigma^2 / alpha) J^T A^T (A D - y) / s_y^2 (J -> I when skipping the Jacobian)."""
    gmm, A, y, loss = _setup()
    scale = 0.3
    a, s = path.alpha(t), path.sigma(t)
    S = gmm.covs[0]
    J = a * S @ torch.linalg.inv(a * a * S + s * s * torch.eye(2, dtype=F64))
    d = gmm.posterior_mean(points, a, s)
    grad = (d @ A.T - y) @ A / 0.1**2
    if through:
        grad = grad @ J  # J^T g for each row g
    expect = d - scale * (s * s / a) * grad
    g = ip.guidance.LossGuidance(gmm.denoiser(path), loss, scale, through_denoiser=through)
    for target in TARGETS:
        torch.testing.assert_close(g(points, t, None, target),
                                   ip.convert(expect, "x0", target, points, t, path),
                                   rtol=1e-9, atol=1e-9)
    assert g.nfe == len(TARGETS)


def test_guided_samples_move_towards_the_measurement():
    """Sampling with the loss pulls A x0 from the prior's A mu towards y (and further with a
    larger scale); a sign error would push it away."""
    gmm, A, y, loss = _setup()
    path = ip.paths.VPLinear()
    x1 = torch.randn(256, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    plain = ip.sample(gmm.denoiser(path), x1, "dpm++2m", 20)
    gaps = [float((plain @ A.T - y).abs().mean())]
    for scale in (0.02, 0.1):
        g = ip.guidance.LossGuidance(gmm.denoiser(path), loss, scale)
        gaps.append(float((ip.sample(g, x1, "dpm++2m", 20) @ A.T - y).abs().mean()))
    assert gaps[0] > gaps[1] > gaps[2]


def test_bad_loss_is_a_clear_error(points):
    gmm = ip.oracle.GaussianMixture.preset("gauss2d")
    den = gmm.denoiser(ip.paths.VPLinear())
    with pytest.raises(InterpolantError, match="per-sample"):
        ip.guidance.LossGuidance(den, lambda x0, c: x0, 1.0)(points, 0.5)
    with pytest.raises(InterpolantError, match="callable"):
        ip.guidance.LossGuidance(den, None, 1.0)


def test_loss_guidance_samples_inside_inference_mode(points):
    """Autograd through the denoiser still runs when the caller samples under
    torch.inference_mode (as the command line does)."""
    gmm, A, y, loss = _setup()
    path = ip.paths.VPLinear()
    g = ip.guidance.LossGuidance(gmm.denoiser(path), loss, 0.05)
    want = ip.sample(g, points, "dpm++2m", 5)
    with torch.inference_mode():
        got = ip.sample(g, points.clone(), "dpm++2m", 5)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
