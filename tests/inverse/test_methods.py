"""Restoration methods against the exact posterior of a Gaussian(-mixture) prior.

Theory used: for an isotropic Gaussian prior ``N(m, c I)`` the posterior covariance of ``x0``
given ``x_t`` is ``r_t^2 I`` exactly, so PiGDM's corrected data prediction (and the noisy
DDNM's, which then coincides with it) is the exact posterior denoiser ``E[x0 | x_t, y]`` of
``prior.posterior(op, y, sigma_y)`` on every path; sampling with it is then exact up to the
solver's error. DDNM with ``sigma_y = 0`` ends exactly on ``A x = y``. DPS is not exact, but
its likelihood ``N(y; A x0^, sigma_y^2)`` becomes exact as ``t -> 0``.
"""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.inverse import (DDNM, DPS, Blur, Downsample, Inpaint, Linear, PiGDM, Reshaped,
                                 mixture_moments, restore)
from interpolant.oracle import GaussianMixture
from support.moments import matches

F64 = torch.float64
C = 0.6  # prior variance of the isotropic Gaussian


def _iso(d: int, seed: int = 0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(1, d, generator=g, dtype=F64)
    return GaussianMixture(mean, C * torch.eye(d, dtype=F64)[None])


def _noisy(prior: GaussianMixture, path, t: float, n: int) -> torch.Tensor:
    """``x_t = alpha x0 + sigma eps`` for ``n`` prior samples ``x0``."""
    eps = torch.randn(n, prior.dim, generator=_gen(3), dtype=F64)
    return path.alpha(t) * prior.sample(n, _gen(2)) + path.sigma(t) * eps


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


_matches = matches


OPS = [("linear", Linear(torch.randn(3, 8, generator=_gen(4))), 0.2),
       ("blur", Blur(3, 0.8), 0.1),
       ("downsample-noiseless", Downsample(2), 0.0),
       ("inpaint-noiseless", Inpaint(torch.tensor([1, 0, 0, 1, 1, 0, 1, 0])), 0.0),
       ("blur-image", Reshaped(Blur(3, 0.7), (2, 2, 2)), 0.05)]


@pytest.mark.parametrize("case", OPS, ids=[c[0] for c in OPS])
def test_pigdm_and_ddnm_are_the_exact_posterior_denoiser(path, case):
    """On an isotropic Gaussian prior, every path, four noise levels and two targets: PiGDM's
    and DDNM's corrected predictions equal the exact posterior denoiser of the mixture posterior
    (1e-12 for sigma_y > 0; sigma_y = 0 is limited by the 1e-12 variance floor of the reference)."""
    _, op, sy = case
    prior = _iso(8)
    y = op(prior.sample(1, _gen(1)))[0]
    ref = prior.posterior(op, y, sy).denoiser(path)
    den = prior.denoiser(path)
    for t in (0.9, 0.5, 0.1, 0.02):
        x = _noisy(prior, path, t, 6)
        for method in (PiGDM(den, op, y, sy, data_var=C), DDNM(den, op, y, sy, data_var=C)):
            for target in ("x0", "eps"):
                want = ref(x, t, None, target)
                tol = (1e-12 if sy > 0 else 1e-6) * (1 + want.abs().max())
                assert (method(x, t, None, target) - want).abs().max() < tol, (method, t, target)


def test_dps_is_exact_only_as_noise_vanishes():
    """DPS's p(y | x_t) ~ N(y; A x0^, sigma_y^2) misses the covariance A r_t^2 A^T: its error
    against the exact posterior denoiser shrinks as t -> 0 and is large early."""
    prior, path = _iso(8), ip.paths.VPLinear()
    op, sy = Linear(torch.randn(3, 8, generator=_gen(4))), 0.2
    y = op(prior.sample(1, _gen(1)))[0]
    ref = prior.posterior(op, y, sy).denoiser(path)
    dps = DPS(prior.denoiser(path), op, y, sy, gaussian_likelihood=True)
    errs = []
    for t in (0.1, 0.03, 0.01, 0.003):
        x = _noisy(prior, path, t, 20)
        errs.append(float((dps(x, t) - ref(x, t)).norm(dim=1).mean()))
    assert all(b < 0.7 * a for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.05 < 1.0 < errs[0]


SAMPLE_CASES = [("linear-0.2", Linear(torch.randn(2, 4, generator=_gen(1))), 0.2),
                ("blur-0.05", Blur(3, 1.0), 0.05),
                ("downsample-0.5", Downsample(2), 0.5)]


@pytest.mark.parametrize("case", SAMPLE_CASES, ids=[c[0] for c in SAMPLE_CASES])
def test_pigdm_samples_match_the_exact_posterior(case):
    """restore(method="pigdm") with 30 DPM-Solver++(2M) steps on three operators and noise
    levels: mean and covariance of 4000 samples within Monte Carlo bounds of the exact
    posterior; the same bounds reject prior samples and samples of a PiGDM whose guidance has
    the wrong sign."""
    _, op, sy = case
    prior, path = _iso(4), ip.paths.VPLinear()
    y = op(prior.sample(1, _gen(5)))[0] + sy * torch.randn(op.output_shape((4,)), dtype=F64,
                                                           generator=_gen(6))
    mean, cov = mixture_moments(prior.posterior(op, y, sy))
    den = prior.denoiser(path)
    x = restore(den, op, y, sy, method="pigdm", n=4000, steps=30, solver="dpm++2m",
                generator=_gen(0), data_var=C)
    assert _matches(x, mean, cov)
    assert not _matches(prior.sample(4000, _gen(1)), mean, cov)

    class WrongSign(PiGDM):
        def corrected_x0(self, x, t, cond):
            return 2 * self._eval(self.den, x, t, cond, "x0") - super().corrected_x0(x, t, cond)

    x1 = torch.randn(4000, 4, generator=_gen(2), dtype=F64)
    wrong = ip.sample(WrongSign(den, op, y, sy, data_var=C), x1, solver="dpm++2m", steps=30,
                      denoise_to_zero=True)
    assert not _matches(wrong, mean, cov)


@pytest.mark.parametrize("op", [Inpaint(torch.tensor([1, 0, 1, 1, 0, 0, 1, 0])), Downsample(2),
                                Linear(torch.randn(3, 8, generator=_gen(7)))],
                         ids=["inpaint", "downsample", "linear"])
@pytest.mark.parametrize("method", ["ddnm", "repaint"])
def test_noiseless_measurement_consistency(op, method):
    """sigma_y = 0 on the 4-component 8-D mixture: every DDNM / RePaint sample satisfies
    A x = y to 1e-10, while the null-space part still varies from sample to sample."""
    prior = GaussianMixture.preset("mix8d")
    y = op(prior.sample(1, _gen(1)))[0]
    x = restore(prior.denoiser(ip.paths.VPLinear()), op, y, 0.0, method=method, n=200, steps=20,
                generator=_gen(0))
    assert (op(x) - y).norm(dim=1).max() < 1e-10
    assert (x - op.project(x)).std(0).max() > 0.05


@pytest.mark.parametrize("method, options", [
    ("ddnm", {"solver": "dpm++2m"}),
    ("repaint", {"solver": "ddim", "jump": 5, "resample": 2}),
])
def test_exact_on_a_diagonal_prior_with_inpainting(method, options):
    """With a diagonal (anisotropic) Gaussian prior, inpainting leaves the hidden coordinates
    independent of the seen ones, so DDNM and RePaint sample the exact posterior: the hidden
    coordinates against the exact posterior's moments (and not the wrong ones: shifted mean)."""
    var = torch.tensor([0.5, 0.1, 1.2, 0.3, 0.8], dtype=F64)
    prior = GaussianMixture(torch.tensor([[0.3, -0.5, 1.0, 0.0, 0.4]]), torch.diag(var)[None])
    mask = torch.tensor([1, 0, 1, 0, 0])
    op, y = Inpaint(mask), torch.tensor([1.1, -0.4], dtype=F64)
    mean, cov = mixture_moments(prior.posterior(op, y, 0.0))
    hidden = mask == 0
    x = restore(prior.denoiser(ip.paths.VPLinear()), op, y, 0.0, method=method, n=3000,
                steps=60, generator=_gen(0), **options)
    assert torch.allclose(x[:, ~hidden], y.expand(3000, 2), atol=1e-12)
    sub_mean, sub_cov = mean[hidden], cov[hidden][:, hidden]
    assert _matches(x[:, hidden], sub_mean, sub_cov)
    assert not _matches(x[:, hidden], sub_mean + 0.1, sub_cov)


def test_repaint_resampling_reduces_the_bias():
    """On a correlated 2-D Gaussian, replacing the known coordinate alone biases the hidden one
    (it sees y only through x_t); RePaint's resampling lets it catch up: the bias of the hidden
    coordinate's mean falls with the resampling count (the paper's claim, at toy scale)."""
    prior = GaussianMixture.preset("gauss2d")
    op, y = Inpaint(torch.tensor([1, 0])), torch.tensor([0.9], dtype=F64)
    mean, cov = mixture_moments(prior.posterior(op, y, 0.0))
    n, se = 2000, float(cov[1, 1].sqrt()) / math.sqrt(2000)
    bias = []
    for r in (1, 8):
        x = restore(prior.denoiser(ip.paths.VPLinear()), op, y, 0.0, method="repaint", n=n,
                    steps=40, jump=5, resample=r, generator=_gen(0))
        bias.append(abs(float(x[:, 1].mean() - mean[1])))
    assert bias[0] > 6 * se and bias[1] < 0.4 * bias[0]


@pytest.mark.parametrize("options", [{}, {"zeta": 3.0}], ids=["default", "zeta"])
def test_dps_moves_samples_to_the_measurement(options):
    """DPS (not exact) must still pull samples toward A x = y: their residual is far below the
    prior's, and their mean is closer to the posterior mean than the prior mean is."""
    prior, path = GaussianMixture.preset("mix8d"), ip.paths.VPLinear()
    op, sy = Linear(torch.randn(3, 8, generator=_gen(3))), 0.1
    y = op(prior.sample(1, _gen(4)))[0]
    x = restore(prior.denoiser(path), op, y, sy, method="dps", n=400, steps=50,
                generator=_gen(0), **options)
    resid = (op(x) - y).norm(dim=1).mean()
    resid_prior = (op(prior.sample(400, _gen(1))) - y).norm(dim=1).mean()
    assert resid < 0.2 * resid_prior
    post_mean = mixture_moments(prior.posterior(op, y, sy))[0]
    prior_mean = mixture_moments(prior)[0]
    assert (x.mean(0) - post_mean).norm() < 0.5 * (prior_mean - post_mean).norm()


def test_red_diff_finds_the_posterior_mean():
    """RED-diff on an isotropic Gaussian prior with a noiseless measurement: the regulariser
    w_t E[eps^ - eps] = sigma^2 / (alpha^2 c + sigma^2) (mu - m) pulls the null space to the prior
    mean and the data term fixes the row space, so mu -> A^+ y + (I - P) m, the posterior mean.
    Its outputs are estimates (spread far below the posterior's), not samples."""
    prior, path = _iso(8), ip.paths.VPLinear()
    op = Linear(torch.randn(3, 8, generator=_gen(4)))
    y = op(prior.sample(1, _gen(1)))[0]
    mean, _ = mixture_moments(prior.posterior(op, y, 0.0))
    den = prior.denoiser(path)
    x = restore(den, op, y, 0.0, method="red-diff", n=200, steps=300, generator=_gen(0), lr=0.02)
    assert den.nfe == 300
    assert (x.mean(0) - mean).norm() < 0.05 * (prior.means[0] - mean).norm()
    assert (op(x) - y).norm(dim=1).mean() < 0.01
    assert x.std(0).max() < 0.3 * math.sqrt(C)


def test_per_sample_times_and_float32():
    """Per-sample times give row by row the single-time answer; float32 runs stay float32."""
    prior, path = _iso(8), ip.paths.EDM()
    op, y = Blur(3, 0.8), torch.linspace(-1, 1, 8, dtype=F64)
    guided = PiGDM(prior.denoiser(path), op, y, 0.1, data_var=C)
    x = torch.randn(4, 8, generator=_gen(0), dtype=F64)
    t = torch.tensor([0.2, 0.7, 0.2, 0.5], dtype=F64)
    rows = torch.cat([guided(x[i:i + 1], float(t[i]), None, "velocity") for i in range(4)])
    assert torch.allclose(guided(x, t, None, "velocity"), rows, atol=1e-12)
    x32 = restore(prior.denoiser(path), op, y.float(), 0.1, method="pigdm", n=3, steps=5)
    assert x32.dtype == torch.float32 and torch.isfinite(x32).all()


def test_guided_denoiser_checks_the_measurement_shape():
    guided = DDNM(_iso(8).denoiser(ip.paths.VPLinear()), Downsample(2), torch.zeros(3), 0.1)
    with pytest.raises(InterpolantError, match=r"y has shape \(3,\) but the operator gives \(4,\)"):
        guided(torch.zeros(2, 8, dtype=F64), 0.5)


def test_a_sample_does_not_depend_on_its_batch():
    """With one generator per sample, sample i is the same drawn alone or in a batch."""
    den = _iso(8).denoiser(ip.paths.VPLinear())
    op, y = Downsample(2), torch.tensor([0.1, -0.2, 0.3, 0.0], dtype=F64)
    batch = restore(den, op, y, 0.1, method="ddnm", n=3, steps=8,
                    generator=[_gen(10 + i) for i in range(3)])
    alone = restore(den, op, y, 0.1, method="ddnm", n=1, steps=8, generator=[_gen(11)])
    assert torch.allclose(batch[1:2], alone, atol=1e-12)
    assert not torch.allclose(batch[0], batch[1])


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "dpss"}, "unknown restoration method 'dpss'; choose one of: ddnm, dps, gdp, "
                         "pigdm, red-diff, repaint"),
    ({"method": "red-diff", "lr": 0.0}, "lr must be a positive number"),
    ({"sigma_y": -0.1}, "sigma_y must be a finite number >= 0"),
    ({"op": Linear(torch.ones(4, 8)), "y": torch.zeros(3, dtype=F64)}, r"y must have shape \(4,\)"),
    ({"y": torch.tensor([0.0, math.nan, 0.0, 0.0])}, "NaN"),
    ({"n": 0}, "n must be a positive integer"),
    ({"generator": [torch.Generator()]}, "one per sample"),
    ({"sigma_y": 0.0}, "DPS with sigma_y = 0 needs a step size"),
    ({"method": "dps", "zeta": -1.0}, "zeta must be a positive number"),
    ({"den": lambda x, t: x}, "needs a denoiser on a Gaussian path"),
    ({"op": torch.eye(4)}, "must be an interpolant.inverse operator"),
    ({"method": "repaint", "jump": 0}, "jump must be a positive integer"),
    ({"method": "pigdm", "data_var": -1.0}, "data_var must be a positive number"),
])
def test_bad_input(kwargs, match):
    prior = _iso(8)
    args = {"den": prior.denoiser(ip.paths.VPLinear()), "op": Downsample(2),
            "y": torch.zeros(4, dtype=F64), "sigma_y": 0.1, "method": "dps", "n": 2, "steps": 3}
    with pytest.raises(InterpolantError, match=match):
        restore(**{**args, **kwargs})
