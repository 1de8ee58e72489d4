"""GDP-x0: exact where its Kalman step is exact, and the blind fit of a degradation parameter."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.inverse import Inpaint, gdp, mixture_moments, restore
from interpolant.inverse.gdp import gaussian_blur
from interpolant.oracle import GaussianMixture
from interpolant.solvers.sampling import make_grid
from support.moments import matches

F64 = torch.float64
PATH = ip.paths.VPCosine()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _iso(d: int, c: float, seed: int = 0) -> GaussianMixture:
    return GaussianMixture(torch.randn(1, d, generator=_gen(seed), dtype=F64),
                           c * torch.eye(d, dtype=F64)[None])


def test_gdp_samples_the_exact_posterior_of_an_isotropic_prior_under_inpainting():
    """Isotropic prior N(m, c I), noisy inpainting: x0^ - r^2 / (r^2 + sigma_y^2) grad L is the
    exact posterior denoiser, so 4000 GDP samples (100 DDPM steps) match the exact posterior's
    mean and covariance; half the guidance scale does not."""
    c, sy = 0.6, 0.2
    prior = _iso(6, c)
    op = Inpaint(torch.tensor([1, 0, 1, 1, 0, 1]))
    y = op(prior.sample(1, _gen(1)))[0] + sy * torch.randn(4, generator=_gen(2), dtype=F64)
    mean, cov = mixture_moments(prior.posterior(op, y, sy))
    for scale, match in ((1.0, True), (0.5, False)):
        x = restore(prior.denoiser(PATH), op, y, sy, method="gdp", n=4000, steps=100,
                    generator=_gen(0), data_var=c, scale=scale)
        assert matches(x, mean, cov) == match, scale


@pytest.mark.parametrize("seed, gain", [(0, 0.6), (1, 1.5)])
def test_gdp_recovers_an_unknown_light_factor(seed, gain):
    """y = f x + 0.05 n with f unknown (GDP's low-light factor), 64-D prior N(m, 0.05 I): from
    f = 1, GDP's f (40 steps, 8 samples) is within 2.5% of the exact maximum-likelihood f of
    p(y | f) = N(f m, (0.05 f^2 + sigma_y^2) I) (a grid search), which is within 5% of f."""
    c, sy, d = 0.05, 0.05, 64
    prior = _iso(d, c, seed)
    x_true = prior.sample(1, _gen(seed + 10))[0]
    y = gain * x_true + sy * torch.randn(d, generator=_gen(seed + 20), dtype=F64)
    fs = torch.linspace(0.3, 2.5, 22001, dtype=F64)[:, None]
    var = fs**2 * c + sy**2
    log_lik = (-0.5 * (y - fs * prior.means[0]) ** 2 / var - 0.5 * var.log()).sum(1)
    f_mle = float(fs[log_lik.argmax(), 0])
    assert abs(f_mle / gain - 1) < 0.05
    x1 = torch.randn(8, d, generator=_gen(3), dtype=F64)
    x0, f = gdp(prior.denoiser(PATH), lambda x, f: f * x, y, x1, make_grid(None, PATH, 40),
                _gen(4), phi=torch.tensor([1.0]), lr=0.5, sigma_y=sy, data_var=c)
    assert abs(float(f) / f_mle - 1) < 0.025, (float(f), f_mle)
    assert float((x0.mean(0) * float(f) - y).pow(2).mean().sqrt()) < 3 * math.sqrt(c) * gain


def test_gdp_recovers_an_unknown_blur_width():
    """y = blur_s(x) + 0.02 n (circular Gaussian, s = 1.5) of a 64-D N(m, 0.3 I) sample: from
    s = 0.8, GDP's width (40 steps, lr 2) is within 3% of the exact maximum-likelihood width of
    p(y | s) = N(H_s m, 0.3 H_s H_s^T + sigma_y^2 I) (a grid search), itself within 5% of 1.5."""
    c, sy, d, s_true = 0.3, 0.02, 64, 1.5
    prior = _iso(d, c, 1)
    y = gaussian_blur(prior.sample(1, _gen(11)), s_true)[0]
    y = y + sy * torch.randn(d, generator=_gen(21), dtype=F64)
    widths = torch.linspace(0.8, 2.5, 341, dtype=F64)
    eye = torch.eye(d, dtype=F64)
    log_lik = []
    for s in widths:
        h = gaussian_blur(eye, s).T  # rows: the blur of each basis vector, transposed
        law = torch.distributions.MultivariateNormal(h @ prior.means[0], c * h @ h.T + sy**2 * eye)
        log_lik.append(float(law.log_prob(y)))
    s_mle = float(widths[int(torch.tensor(log_lik).argmax())])
    assert abs(s_mle / s_true - 1) < 0.05
    x1 = torch.randn(8, d, generator=_gen(3), dtype=F64)
    _, s_gdp = gdp(prior.denoiser(PATH), gaussian_blur, y, x1, make_grid(None, PATH, 40), _gen(4),
                   phi=torch.tensor(0.8, dtype=F64), lr=2.0, sigma_y=sy, data_var=c)
    assert abs(float(s_gdp) / s_mle - 1) < 0.03, (float(s_gdp), s_mle)


@pytest.mark.parametrize("kwargs, match", [
    ({"degrade": "blur"}, "degrade must be a function"),
    ({"phi": torch.tensor([math.nan])}, "phi .* must be finite"),
    ({"degrade": lambda x, f: x[:, :3]}, r"the degradation gave \(3,\) per sample but y has "
                                         r"shape \(4,\)"),
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"sigma_y": -1.0}, "sigma_y must be a finite number >= 0"),
])
def test_bad_input(kwargs, match):
    prior = _iso(4, 0.5)
    args = {"den": prior.denoiser(PATH), "degrade": lambda x, f: f * x,
            "y": torch.zeros(4, dtype=F64), "x": torch.zeros(2, 4, dtype=F64),
            "ts": make_grid(None, PATH, 3), "phi": torch.tensor([1.0])}
    with pytest.raises(InterpolantError, match=match):
        gdp(**{**args, **kwargs})
