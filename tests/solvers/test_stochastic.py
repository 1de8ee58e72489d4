"""Stochastic samplers (ddpm, euler-ancestral, euler-maruyama, edm with churn, the Langevin
corrector) against the exact marginals; batch independence; ``denoise_to_zero``; bad options."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.solvers.base import Model, Noise
from interpolant.solvers.corrector import langevin, with_corrector
from interpolant.solvers.stochastic import natural_diffusion

F64 = torch.float64
GMM = ip.oracle.GaussianMixture


# -- stochastic samplers reach the exact marginal --------------------------------------------
N_SAMPLES = 4000


def _moments(gmm):
    mean = (gmm.weights[:, None] * gmm.means).sum(0)
    centred = gmm.means - mean
    cov = (gmm.weights[:, None, None] * (gmm.covs + centred[:, :, None] * centred[:, None, :]))
    return mean, cov.sum(0)


def _assert_marginal(x, target):
    """Mean, covariance and component masses against the exact law, within 4.5 Monte Carlo
    standard errors (mean: sqrt(var / n); covariance: sqrt((S_ii S_jj + S_ij^2) / n), its
    Gaussian-case value, times 1.5 for the mixture's heavier tails; masses: the binomial
    sqrt(p (1 - p) / n) of the exact assignment probabilities, computed from 100k exact draws)."""
    n = x.shape[0]
    mean, cov = _moments(target)
    var = torch.diagonal(cov)
    assert torch.all((x.mean(0) - mean).abs() < 4.5 * (var / n).sqrt()), (x.mean(0), mean)
    se_cov = 1.5 * ((var[:, None] * var[None, :] + cov**2) / n).sqrt()
    assert torch.all((torch.cov(x.T) - cov).abs() < 4.5 * se_cov), (torch.cov(x.T), cov)
    ref = target.sample(100_000, torch.Generator().manual_seed(99))
    k = target.n_components

    def masses(y):
        log_joint, _, _ = target._components(y, 1.0, 0.0)
        return torch.bincount(log_joint.argmax(1), minlength=k).to(F64) / y.shape[0]

    p = masses(ref)
    assert torch.all((masses(x) - p).abs() < 4.5 * (p * (1 - p) / n).sqrt() + 1e-3)


STOCHASTIC_CASES = [  # solver, options, steps
    ("ddpm", {}, 200),
    ("euler-ancestral", {}, 200),
    ("euler-maruyama", {"diffusion": 1.0}, 200),
    ("euler-maruyama", {"diffusion": 0.5}, 200),
    ("euler-maruyama", {"langevin_steps": 1, "snr": 0.1}, 200),
    ("edm", {"s_churn": 20.0}, 100),
]


@pytest.mark.parametrize("solver,options,steps", STOCHASTIC_CASES)
def test_stochastic_samplers_reach_the_exact_marginal(solver, options, steps):
    gmm, path = GMM.preset("aniso2d"), ip.paths.VPLinear()
    x1 = gmm.marginal(path, 1.0).sample(N_SAMPLES, torch.Generator().manual_seed(0))
    x = ip.sample(gmm.denoiser(path), x1, solver, steps, generator=torch.Generator().manual_seed(1),
                  **options)
    _assert_marginal(x, gmm.marginal(path, path.t_min))


def test_langevin_corrector_relaxes_to_the_marginal_at_fixed_time():
    # Started from the law at t = 0.6, Langevin steps at t = 0.3 must reach p_0.3 (mix8d).
    gmm, path = GMM.preset("mix8d"), ip.paths.VPLinear()
    x = gmm.marginal(path, 0.6).sample(N_SAMPLES, torch.Generator().manual_seed(0))
    den = gmm.denoiser(path)
    model = Model(lambda y, t, target: den(y, t, None, target))
    x = langevin(model, x, 0.3, path, Noise(torch.Generator().manual_seed(1)), 300, 0.1)
    assert model.nfe == 300
    _assert_marginal(x, gmm.marginal(path, 0.3))


def test_with_corrector_equals_the_sampling_option():
    gmm, path = GMM.preset("gauss2d"), ip.paths.VPLinear()
    x1 = torch.randn(8, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    a = ip.sample(gmm.denoiser(path), x1, with_corrector("ddpm", 2, 0.2), 5,
                  generator=torch.Generator().manual_seed(1))
    states = list(ip.trajectory(gmm.denoiser(path), x1, "ddpm", 5, langevin_steps=2, snr=0.2,
                                generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(a, states[-1].x, rtol=0, atol=0)
    assert states[-1].nfe == 5 * 3


@pytest.mark.parametrize("solver,options", [
    ("euler-ancestral", {}), ("euler-maruyama", {}), ("edm", {"s_churn": 10.0}),
    ("euler-maruyama", {"langevin_steps": 1}),
])
def test_a_sample_does_not_depend_on_its_batch(solver, options):
    gmm, path = GMM.preset("aniso2d"), ip.paths.VPLinear()
    x1 = gmm.marginal(path, 1.0).sample(5, torch.Generator().manual_seed(0))
    gens = lambda: [torch.Generator().manual_seed(100 + i) for i in range(5)]  # noqa: E731
    batch = ip.sample(gmm.denoiser(path), x1, solver, 8, generator=gens(), **options)
    alone = ip.sample(gmm.denoiser(path), x1[2:3], solver, 8, generator=gens()[2:3], **options)
    torch.testing.assert_close(batch[2:3], alone, rtol=0, atol=1e-13)


# -- denoise_to_zero ---------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["plms", "edm", "euler-maruyama", "ipndm"])
def test_denoise_to_zero_costs_one_evaluation_and_returns_the_data_prediction(solver):
    gmm, path = GMM.preset("mix8d"), ip.paths.VPCosine()
    x1 = gmm.marginal(path, 1.0).sample(20, torch.Generator().manual_seed(0))
    plain, denoised = (
        list(ip.trajectory(gmm.denoiser(path), x1, solver, 8, denoise_to_zero=dz,
                           generator=torch.Generator().manual_seed(1)))
        for dz in (False, True)
    )
    assert len(denoised) == len(plain) + 1 and denoised[-1].nfe == plain[-1].nfe + 1
    last = plain[-1]
    exact = gmm.denoiser(path)(last.x, last.t)
    torch.testing.assert_close(denoised[-1].x, exact, rtol=0, atol=1e-13)
    assert denoised[-1].t == 0.0 and denoised[-1].step == last.step + 1


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("solver,options,steps,words", [
    ("ipndm", {"order": 5}, 10, "order must be 1, 2, 3 or 4"),
    ("ipndm", {"order": 0}, 10, "order must be"),
    ("pndm", {"variant": "x"}, 10, "variant must be"),
    ("pndm", {}, 3, "at least 4 steps"),
    ("pndm", {"variant": "s"}, 1, "at least 2 steps"),
    ("plms", {}, 1, "at least 2 steps"),
    ("edm", {"s_churn": -1.0}, 10, "s_churn must be"),
    ("edm", {"s_tmin": 2.0, "s_tmax": 1.0}, 10, "s_tmin <= s_tmax"),
    ("edm", {"s_noise": float("nan")}, 10, "s_noise must be"),
    ("euler-ancestral", {"eta": -0.5}, 10, "eta must be"),
    ("euler-maruyama", {"diffusion": -1.0}, 10, "diffusion must be"),
    ("euler-maruyama", {"diffusion": float("inf")}, 10, "diffusion must be"),
    ("euler-maruyama", {"diffusion": lambda t: -1.0}, 10, "g(t)^2 >= 0"),
    ("plms", {"langevin_steps": 1}, 10, "one-step predictor"),
    ("ddpm", {"langevin_steps": -1}, 10, "langevin_steps must be"),
    ("ddpm", {"langevin_steps": 1, "snr": 0.0}, 10, "snr must be"),
])
def test_bad_options_get_clear_errors(solver, options, steps, words):
    gmm, path = GMM.preset("gauss2d"), ip.paths.VPLinear()
    x1 = torch.randn(3, 2, dtype=F64)
    with pytest.raises(InterpolantError, match=words.replace("(", r"\(").replace(")", r"\)")
                       .replace("^", r"\^")):
        ip.sample(gmm.denoiser(path), x1, solver, steps, **options)


def test_euler_maruyama_diffusion_callable_gives_g_squared():
    # A callable returning c g_nat(t)^2 is the float option c, draw for draw.
    gmm, path = GMM.preset("gauss2d"), ip.paths.VPLinear()
    x1 = torch.randn(7, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    runs = [
        ip.sample(gmm.denoiser(path), x1, "euler-maruyama", 6, diffusion=d,
                  generator=torch.Generator().manual_seed(1))
        for d in (0.5, lambda t: 0.5 * natural_diffusion(path, t))
    ]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=1e-13)
    # and g_nat^2 = 2 sigma^2 |d lam / dt| (VP linear: beta(t))
    assert natural_diffusion(path, 0.4) == pytest.approx(0.1 + 0.4 * 19.9, rel=1e-12)
