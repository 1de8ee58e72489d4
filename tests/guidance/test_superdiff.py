"""SuperDiff OR on two exact mixtures: the Itô estimate of each model's log-density follows the
oracle's exact log q_t along the sampled trajectory, and the samples are the exact mixture."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError

F64 = torch.float64
GMM = ip.oracle.GaussianMixture


def _halves():
    base = GMM.preset("aniso2d")
    p1 = GMM(base.means[:4], base.covs[:4], base.weights[:4])
    p2 = GMM(base.means[4:], base.covs[4:], base.weights[4:])
    return base, p1, p2


def _exact_log_q(models, path, t, x):
    return torch.stack([m.marginal(path, t).log_prob(x) for m in models], 1)


@pytest.mark.parametrize("path", [ip.paths.VPLinear(), ip.paths.EDM()], ids=["vp", "edm"])
def test_ito_estimate_follows_the_exact_log_density(path):
    """Mean error against log q_t(x_t) at the last evaluated state falls like sqrt(dt)."""
    _, p1, p2 = _halves()
    t0 = 0.99
    x1 = p1.marginal(path, t0).sample(200, torch.Generator().manual_seed(0))
    errors = []
    for steps in (50, 200):
        sd = ip.guidance.SuperDiffOR(p1.denoiser(path), p2.denoiser(path),
                                     initial=_exact_log_q((p1, p2), path, t0, x1))
        states = list(ip.trajectory(sd, x1, "euler-maruyama", steps, "uniform", t_start=t0,
                                    t_end=0.2, diffusion=1.0,
                                    generator=torch.Generator().manual_seed(1)))
        exact = _exact_log_q((p1, p2), path, states[-2].t, states[-2].x)
        errors.append(float((sd.log_q - exact).abs().mean()))
        assert sd.nfe == 2 * steps
    assert errors[1] < 0.6 * errors[0] and errors[1] < 1.0, errors


def test_or_samples_the_mixture_of_the_models():
    """OR of the two halves of aniso2d with weights = their masses is aniso2d itself: the
    share of samples in the first half matches its mass; averaging the two scores with fixed
    weights (no density tracking) does not."""
    base, p1, p2 = _halves()
    path = ip.paths.VPLinear()
    w1 = float(base.weights[:4].sum())
    x1 = torch.randn(2000, 2, dtype=F64, generator=torch.Generator().manual_seed(2))

    def share(den):
        x = ip.sample(den, x1, "euler-maruyama", 100, diffusion=1.0,
                      generator=torch.Generator().manual_seed(3))
        log_joint, _, _ = base._components(x, 1.0, 0.0)
        return float((log_joint.argmax(1) < 4).double().mean())

    sd = ip.guidance.SuperDiffOR(p1.denoiser(path), p2.denoiser(path), weights=[w1, 1 - w1])
    se = (w1 * (1 - w1) / 2000) ** 0.5
    assert abs(share(sd) - w1) < 3 * se + 0.005
    fixed = ip.guidance.AutoGuidance(p1.denoiser(path), p2.denoiser(path), w1)
    assert abs(share(fixed) - w1) > 10 * se


def test_superdiff_bad_input():
    _, p1, p2 = _halves()
    path = ip.paths.VPLinear()
    with pytest.raises(InterpolantError, match="at least two"):
        ip.guidance.SuperDiffOR(p1.denoiser(path))
    with pytest.raises(InterpolantError, match="positive"):
        ip.guidance.SuperDiffOR(p1.denoiser(path), p2.denoiser(path), weights=[1.0, -1.0])
    sd = ip.guidance.SuperDiffOR(p1.denoiser(path), p2.denoiser(path))
    with pytest.raises(InterpolantError, match="float"):
        sd(torch.zeros(3, 2, dtype=F64), torch.full((3,), 0.5, dtype=F64))
