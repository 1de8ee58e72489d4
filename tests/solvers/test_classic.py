"""PNDM / PLMS / iPNDM, EDM, Euler ancestral and Euler-Maruyama: convergence against the exact
flow, exactness on polynomial noise predictions, identities, parity with diffusers. The
stochastic checks are in ``test_solvers_cls_stochastic.py``."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip

F64 = torch.float64
GMM = ip.oracle.GaussianMixture
N_POINTS = 200


# -- Adams-Bashforth weights: exact for polynomial eps(sigma~) on grids uniform in sigma~ -----
def _polynomial_eps_denoiser(path, coeffs):
    """A network predicting the noise ``p(sigma)`` whatever ``x`` (EDM path: sigma~ = sigma)."""

    def net(x, t, cond):
        s = path.sigma(t.to(F64))[:, None]
        return sum(c * s**k for k, c in enumerate(coeffs)).to(x.dtype).expand_as(x).clone()

    return ip.Denoiser(net, path, prediction="eps")


def _uniform_sigma_grid(path, n, s_hi=3.0, s_lo=0.5):
    sig = torch.linspace(s_hi, s_lo, n + 1, dtype=F64)
    return path.t_of_lam(-torch.log(sig))


EXACT_CASES = [  # solver, options, polynomial degree made exact, steps of warm-up
    ("plms", {}, 3, 3),
    ("pndm", {}, 3, 3),
    ("pndm", {"variant": "s"}, 1, 0),
    ("ipndm", {}, 3, 3),
    ("ipndm", {"order": 3}, 2, 2),
    ("ipndm", {"order": 2}, 1, 1),
]


@pytest.mark.parametrize("solver,options,degree,warmup", EXACT_CASES)
def test_multistep_weights_integrate_polynomials_exactly(solver, options, degree, warmup):
    # dx/dsigma = p(sigma) has the solution x(s) = x(s0) + P(s) - P(s0). With eps independent of
    # x an error made in a step is carried unchanged, so after the warm-up every Adams-Bashforth
    # step of order > degree must leave the error exactly as it was.
    path = ip.paths.EDM()
    coeffs = [0.3, -0.7, 0.45, -0.11][: degree + 1]
    den = _polynomial_eps_denoiser(path, coeffs)
    ts = _uniform_sigma_grid(path, 12)
    x = torch.zeros(3, 2, dtype=F64)
    states = list(ip.trajectory(den, x, solver, grid=ts, **options))

    def exact(t):
        s0, s = path.sigma(float(ts[0])), path.sigma(t)
        return sum(c * (s ** (k + 1) - s0 ** (k + 1)) / (k + 1) for k, c in enumerate(coeffs))

    errors = [float(st.x[0, 0]) - exact(st.t) for st in states]
    for e in errors[warmup:]:
        assert e == pytest.approx(errors[warmup - 1] if warmup else 0.0, abs=1e-12)
    if solver == "ipndm" and options.get("order") == 3:  # the check has teeth: AB3 on a cubic
        den = _polynomial_eps_denoiser(path, [0.3, -0.7, 0.45, -0.11])
        cubic = [0.3, -0.7, 0.45, -0.11]
        s0 = path.sigma(float(ts[0]))
        errs = [float(st.x[0, 0]) - sum(c * (path.sigma(st.t) ** (k + 1) - s0 ** (k + 1)) / (k + 1)
                                        for k, c in enumerate(cubic))
                for st in ip.trajectory(den, x, solver, grid=ts, **options)]
        assert abs(errs[-1] - errs[warmup - 1]) > 1e-6


def test_nfe_of_the_warm_ups():
    gmm, path = GMM.preset("gauss2d"), ip.paths.VPLinear()
    x1 = torch.randn(4, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    for solver, options, nfe in [("plms", {}, 11), ("pndm", {}, 19), ("pndm", {"variant": "s"}, 11),
                                 ("ipndm", {}, 10), ("edm", {}, 20)]:
        *_, last = ip.trajectory(gmm.denoiser(path), x1, solver, 10, **options)
        assert last.nfe == nfe, solver
    # rectified flow from t = 1 to 0: the step from pure noise and the last step to sigma = 0
    # are Euler steps (1 NFE each), the 8 others Heun: 18
    lin = ip.paths.Linear()
    *_, last = ip.trajectory(gmm.denoiser(lin), x1, "edm", 10, "uniform", t_end=0.0)
    assert last.nfe == 18


# -- identities -----------------------------------------------------------------------------
IDENTITY_PATHS = ["vp-linear", "vp-cosine", "ve", "edm", "linear", "trig"]


@pytest.mark.parametrize("path_name", IDENTITY_PATHS)
def test_euler_maruyama_without_diffusion_is_euler(path_name):
    gmm, path = GMM.preset("mix8d"), ip.paths.get(path_name)
    x1 = gmm.marginal(path, 1.0).sample(50, torch.Generator().manual_seed(1))
    a = ip.sample(gmm.denoiser(path), x1, "euler-maruyama", 15, diffusion=0.0)
    b = ip.sample(gmm.denoiser(path), x1, "euler", 15)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("path_name", IDENTITY_PATHS)
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_euler_ancestral_is_ddim_with_the_same_eta(path_name, eta):
    # alpha_t sigma~_up = eta sigma_t sqrt(1 - exp(-2h)) is DDIM's sigma_eta, and the Euler step
    # to sigma~_down is DDIM's deterministic part: the same draws give the same samples.
    gmm, path = GMM.preset("aniso2d"), ip.paths.get(path_name)
    x1 = gmm.marginal(path, 1.0).sample(50, torch.Generator().manual_seed(2))
    runs = [
        ip.sample(gmm.denoiser(path), x1, s, 12, eta=eta,
                  generator=torch.Generator().manual_seed(3))
        for s in ("euler-ancestral", "ddim")
    ]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=1e-12)


def test_euler_ancestral_caps_the_noise_at_sigma_t():
    # eta = 3 asks for more noise than the target level holds: the step is then pure noise
    # around the data prediction, x_t = alpha_t D + sigma_t z.
    gmm, path = GMM.preset("gauss2d"), ip.paths.VPLinear()
    x1 = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    ts = torch.tensor([1.0, 0.5], dtype=F64)
    out = ip.sample(gmm.denoiser(path), x1, "euler-ancestral", grid=ts, eta=3.0,
                    generator=torch.Generator().manual_seed(4))
    z = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(4))
    expect = path.alpha(0.5) * gmm.denoiser(path)(x1, 1.0) + path.sigma(0.5) * z
    torch.testing.assert_close(out, expect, rtol=0, atol=1e-12)


def test_edm_without_churn_is_heun_in_sigma():
    # Karras et al. 2022 Algorithm 1 (deterministic), transcribed on the EDM path (alpha = 1).
    gmm, path = GMM.preset("mix8d"), ip.paths.EDM()
    x1 = gmm.marginal(path, 1.0).sample(40, torch.Generator().manual_seed(5))
    ts = ip.grids.make("karras", path, 12)
    den = gmm.denoiser(path)
    sig = path.sigma(ts).tolist()
    x = x1.clone()
    for i in range(12):
        d = (x - den(x, float(ts[i]))) / sig[i]
        x_e = x + (sig[i + 1] - sig[i]) * d
        d2 = (x_e - den(x_e, float(ts[i + 1]))) / sig[i + 1]
        x = x + (sig[i + 1] - sig[i]) * 0.5 * (d + d2)
    torch.testing.assert_close(ip.sample(den, x1, "edm", grid=ts), x, rtol=0, atol=1e-12)


def test_edm_churn_adds_the_stated_noise_level():
    # One step with churn on the EDM path: x^ = x + sqrt(s^2 - s_i^2) s_noise z with
    # s^ = s_i (1 + gamma), gamma = min(s_churn / N, sqrt 2 - 1); then Heun from s^.
    gmm, path = GMM.preset("gauss2d"), ip.paths.EDM()
    x1 = torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(1)) * 0.5
    ts = torch.tensor([0.5, 0.3], dtype=F64)
    den = gmm.denoiser(path)
    s_i, s_n = path.sigma(0.5), path.sigma(0.3)
    for s_churn, gamma in [(0.2, 0.2), (5.0, math.sqrt(2) - 1)]:
        out = ip.sample(den, x1, "edm", grid=ts, s_churn=s_churn, s_noise=1.1,
                        generator=torch.Generator().manual_seed(7))
        s_hat = s_i * (1 + gamma)
        z = torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(7))
        x_hat = x1 + math.sqrt(s_hat**2 - s_i**2) * 1.1 * z
        d = (x_hat - den(x_hat, path.t_of_lam(-math.log(s_hat)))) / s_hat
        x_e = x_hat + (s_n - s_hat) * d
        d2 = (x_e - den(x_e, 0.3)) / s_n
        torch.testing.assert_close(out, x_hat + (s_n - s_hat) * 0.5 * (d + d2), rtol=0, atol=1e-12)


# -- parity with diffusers on Stable Diffusion's discrete schedule ---------------------------
N_TRAIN = 1000


def _sd_path():
    return ip.paths.VPDiscrete.from_betas("scaled_linear", N_TRAIN, 0.00085, 0.012)


def _eps_model(den):
    """The exact eps as a diffusers model of the integer timestep k (t = (k + 1) / N)."""

    def model(x, k):
        return den(x, (float(k) + 1.0) / N_TRAIN, None, "eps")

    return model


def _setup(scheduler_cls, steps, **config):
    sched = scheduler_cls(num_train_timesteps=N_TRAIN, beta_start=0.00085, beta_end=0.012,
                          beta_schedule="scaled_linear", **config)
    return sched


@pytest.mark.parametrize("skip_prk", [True, False])
def test_pndm_and_plms_match_diffusers_pndm_scheduler(skip_prk):
    diffusers = pytest.importorskip("diffusers")
    gmm, path = GMM.preset("aniso2d"), _sd_path()
    steps = 10
    sched = _setup(diffusers.PNDMScheduler, steps, skip_prk_steps=skip_prk, set_alpha_to_one=False,
                   steps_offset=1, timestep_spacing="leading")
    sched.alphas_cumprod = path.alphas_cumprod.clone()  # float64, for parity to rounding
    sched.final_alpha_cumprod = path.alphas_cumprod[0].clone()
    sched.set_timesteps(steps)
    den = gmm.denoiser(path)
    eps = _eps_model(den)
    x1 = gmm.marginal(path, 1.0).sample(30, torch.Generator().manual_seed(0))
    x = x1.clone()
    for k in sched.timesteps:
        x = sched.step(eps(x, int(k)), int(k), x).prev_sample
    # the same grid: t = (k + 1) / N over diffusers' steps, ending at alphas_cumprod[0] (t = 1/N)
    # diffusers' main steps (the PRK steps also visit midpoints k + 50, which are not grid points)
    ks = sorted({int(k) for k in sched.timesteps if (int(k) - 1) % (N_TRAIN // steps) == 0})[::-1]
    ts = torch.tensor([(k + 1) / N_TRAIN for k in ks] + [1 / N_TRAIN], dtype=F64)
    ours = ip.sample(gmm.denoiser(path), x1, "plms" if skip_prk else "pndm", grid=ts)
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-11)


def _sigma_run(sched, den, x1, generator=None):
    """Run a diffusers sigma scheduler (state x~ = x / alpha) from our x1 at its first time."""
    eps = _eps_model(den)
    x = x1 / den.path.alpha((float(sched.timesteps[0]) + 1) / N_TRAIN)
    for k in sched.timesteps:
        x_in = sched.scale_model_input(x, k)
        out = eps(x_in.to(F64), int(k))
        extra = {"generator": generator} if generator is not None else {}
        x = sched.step(out, k, x, **extra).prev_sample.to(F64)
    return x


@pytest.mark.parametrize("kind", ["heun", "euler", "euler-ancestral"])
def test_sigma_schedulers_match_diffusers(kind):
    # Diffusers computes these schedulers in float32 by design (sigmas and the sample are cast
    # to float32 in step()), so parity holds to float32 rounding: 1e-5 on values of size ~3.
    # Diffusers' sigma grids end with a step to sigma = 0, which is the data prediction at the
    # last sigma (Euler to 0): our run on t = (k + 1) / N plus denoise_to_zero.
    diffusers = pytest.importorskip("diffusers")
    cls = {"heun": diffusers.HeunDiscreteScheduler, "euler": diffusers.EulerDiscreteScheduler,
           "euler-ancestral": diffusers.EulerAncestralDiscreteScheduler}[kind]
    gmm, path = GMM.preset("aniso2d"), _sd_path()
    sched = _setup(cls, 10, timestep_spacing="leading")
    sched.set_timesteps(10)
    x1 = gmm.marginal(path, 1.0).sample(30, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(11) if kind == "euler-ancestral" else None
    theirs = _sigma_run(sched, gmm.denoiser(path), x1, gen)
    ks = sorted({int(k) for k in sched.timesteps}, reverse=True)
    ts = torch.tensor([(k + 1) / N_TRAIN for k in ks], dtype=F64)
    solver, options = {"heun": ("edm", {}), "euler": ("euler-ancestral", {"eta": 0.0}),
                       "euler-ancestral": ("euler-ancestral", {})}[kind]
    states = list(ip.trajectory(gmm.denoiser(path), x1, solver, grid=ts, denoise_to_zero=True,
                                generator=torch.Generator().manual_seed(11), **options))
    torch.testing.assert_close(states[-1].x, theirs, rtol=0, atol=1e-5)
    expected_nfe = {"heun": 2 * len(ks) - 1, "euler": len(ks), "euler-ancestral": len(ks)}[kind]
    assert states[-1].nfe == expected_nfe
