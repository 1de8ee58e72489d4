"""Objectives, loss weights, EDM preconditioning and time densities: their maths."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.training import EDMPrecond, Objective, densities, regression_target, weights

PATHS = [ip.paths.VPLinear(), ip.paths.Linear(), ip.paths.EDM(), ip.paths.VPCosine()]
TARGETS = ["eps", "x0", "v", "velocity", "score"]


def _batch(n: int, seed: int, path, lo: float = 0.05, hi: float = 0.95):
    g = torch.Generator().manual_seed(seed)
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    x0 = gmm.sample(n, g)
    noise = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
    return gmm, x0, noise, t


def _oracle_model(gmm, path, target, h_coef=None, shrink=1.0):
    """The exact E[T | x_t] (oracle x0 converted by predictions.convert) plus c_i * x_t."""

    def model(x, t, cond=None):
        d = shrink * gmm.posterior_mean(x, path.alpha(t), path.sigma(t))
        out = ip.convert(d, "x0", target, x, t, path)
        return out if h_coef is None else out + h_coef[:, None] * x

    return model


@pytest.mark.parametrize("path", [ip.paths.VPLinear(), ip.paths.Linear()], ids=repr)
@pytest.mark.parametrize("target", TARGETS)
def test_expected_loss_is_stationary_at_the_oracle(path, target):
    # L(c) = E[w ||E[T|x_t] + c x_t - T||^2] has dL/dc = 2 E[w <E[T|x_t] - T, x_t>] = 0 at c = 0
    # exactly, because T is affine in x0 given x_t. Per-sample gradients give a Monte Carlo
    # mean with its standard error; a wrong regression target or a wrong weight conversion
    # (min-snr varies with t) would bias it. The control, an oracle shrunk by 10%, must fail.
    n = 10_000
    gmm, x0, noise, t = _batch(n, 0, path)
    objective = Objective(path, target, weight="min-snr")
    for shrink, stationary in ((1.0, True), (0.9, False)):
        c = torch.zeros(n, dtype=torch.float64, requires_grad=True)
        model = _oracle_model(gmm, path, target, c, shrink)
        per_sample = objective.per_sample(model, x0, noise, t)
        (grad,) = torch.autograd.grad(per_sample.sum(), c)
        z = grad.mean() / (grad.std() / math.sqrt(n))
        if stationary:
            assert abs(float(z)) < 4.5, f"oracle is not a stationary point: z = {float(z):.2f}"
        else:
            assert abs(float(z)) > 10, f"control: wrong oracle not detected, z = {float(z):.2f}"


@pytest.mark.parametrize("path", PATHS, ids=repr)
@pytest.mark.parametrize("weight", ["min-snr", "min-snr-1", "edm", "snr", "snr+1",
                                    lambda a, s: 1.0 + (a / s).clamp(max=3.0)])
def test_weights_give_the_same_loss_in_every_target_space(path, weight):
    # A prediction f of x0 is the same prediction as convert(f, x0 -> T); with a weight stated
    # in x0-space the per-sample losses must then be identical whichever target is trained.
    gmm, x0, noise, t = _batch(256, 1, path)
    g = torch.Generator().manual_seed(2)
    w_mat = torch.randn(2, 2, generator=g, dtype=torch.float64)

    def f_x0(x, tt, cond=None):  # an arbitrary (wrong) x0 predictor
        return torch.tanh(x @ w_mat) + tt[:, None]

    ref = Objective(path, "x0", weight=weight).per_sample(f_x0, x0, noise, t)
    for target in TARGETS[:4] + (["score"] if path != ip.paths.Linear() else []):
        def model(x, tt, cond=None, target=target):
            return ip.convert(f_x0(x, tt), "x0", target, x, tt, path)

        got = Objective(path, target, weight=weight).per_sample(model, x0, noise, t)
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)


def test_min_snr_and_snr_plus_one_match_the_papers_formulas_on_vp():
    # Hang et al. 2023: eps-loss weight min(snr, g)/snr, v-loss weight min(snr, g)/(snr + 1);
    # Salimans & Ho 2022: the v-MSE is the x0-MSE weighted by snr + 1 (unit weight in v-space).
    path = ip.paths.VPCosine()
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    snr = (path.alpha(t) / path.sigma(t)) ** 2
    for gamma in (1.0, 5.0):
        w_eps = Objective(path, "eps", weight=f"min-snr-{gamma}").weight_of(t)
        w_v = Objective(path, "v", weight=f"min-snr-{gamma}").weight_of(t)
        torch.testing.assert_close(w_eps, snr.clamp(max=gamma) / snr)
        torch.testing.assert_close(w_v, snr.clamp(max=gamma) / (snr + 1))
    torch.testing.assert_close(Objective(path, "v", weight="snr+1").weight_of(t),
                               torch.ones_like(t))
    torch.testing.assert_close(Objective(path, "eps", weight="snr").weight_of(t),
                               torch.ones_like(t))


def test_regression_targets_are_the_definitions():
    path = ip.paths.Linear()  # alpha = 1 - t, sigma = t: velocity = eps - x0, v = (1-t) eps - t x0
    _, x0, noise, t = _batch(64, 3, path)
    tt = t[:, None]
    torch.testing.assert_close(regression_target("velocity", x0, noise, t, path), noise - x0)
    torch.testing.assert_close(regression_target("v", x0, noise, t, path),
                               (1 - tt) * noise - tt * x0)
    torch.testing.assert_close(regression_target("score", x0, noise, t, path), -noise / tt)


def test_training_targets_are_the_conversions_of_the_true_x0(path):
    # One table: the target a network is trained on is what convert() makes of the true x0 at
    # x_t, and the loss-weight factor c_T is (dx0/dT)^2 of that same conversion, measured here
    # as the change of convert(T -> x0) when T moves by one (the map is affine in T).
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(6, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(6, 3, generator=g, dtype=torch.float64)
    t = torch.linspace(0.05, 0.95, 6, dtype=torch.float64)  # one time per sample
    x_t = path.sample(x0, t, noise)
    coefs = [f(t) for f in (path.alpha, path.sigma, path.d_alpha, path.d_sigma)]
    for target in TARGETS:
        got = regression_target(target, x0, noise, t, path)
        torch.testing.assert_close(got, ip.convert(x0, "x0", target, x_t, t, path),
                                   rtol=1e-9, atol=1e-9)
        slope = ip.convert(got + 1.0, target, "x0", x_t, t, path) - ip.convert(
            got, target, "x0", x_t, t, path)
        torch.testing.assert_close(weights.conversion_factor(target, *coefs),
                                   slope[:, 0] ** 2, rtol=1e-6, atol=0.0)
        assert got.dtype == x0.dtype and got.shape == x0.shape


def test_networks_without_cond_train_and_refuse_a_condition():
    path = ip.paths.Linear()
    _, x0, noise, t = _batch(8, 6, path)
    objective = Objective(path, "velocity")
    two = objective.per_sample(lambda x, tt: x * tt[:, None], x0, noise, t)
    three = objective.per_sample(lambda x, tt, cond: x * tt[:, None], x0, noise, t)
    torch.testing.assert_close(two, three, rtol=0.0, atol=0.0)
    with pytest.raises(InterpolantError, match="takes only"):
        objective.per_sample(lambda x, tt: x, x0, noise, t, cond=torch.zeros(8))


@pytest.mark.parametrize("path", [ip.paths.EDM(), ip.paths.VPLinear()], ids=repr)
def test_edm_precond_loss_is_unit_weight_loss_of_the_raw_network(path):
    # Karras et al. 2022, eq. 8: lambda(sigma) c_out^2 = 1, so the edm-weighted x0 loss of
    # D = c_skip x + c_out F equals || F(c_in x, c_noise) - (x0 - c_skip x) / c_out ||^2,
    # with sigma the VE noise level sigma(t)/alpha(t) and x the VE-scaled input x_t/alpha(t).
    sd = 0.5
    _, x0, noise, t = _batch(512, 4, path, lo=0.0, hi=1.0)
    net = torch.nn.Linear(3, 2).double()
    raw = lambda x, c_noise, cond=None: net(torch.cat([x, c_noise[:, None]], 1))  # noqa: E731

    class F(torch.nn.Module):
        def forward(self, x, c_noise, cond=None):
            return raw(x, c_noise)

    loss = Objective(path, "x0", weight="edm").per_sample(EDMPrecond(F(), path, sd), x0, noise, t)
    a, s = path.alpha(t)[:, None], path.sigma(t)[:, None]
    sig = s / a
    x = x0 + sig * noise
    c_skip, c_out = sd**2 / (sig**2 + sd**2), sig * sd / (sig**2 + sd**2).sqrt()
    c_in, c_noise = 1 / (sig**2 + sd**2).sqrt(), sig[:, 0].log() / 4
    expected = (raw(c_in * x, c_noise) - (x0 - c_skip * x) / c_out).pow(2).mean(1)
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-8, atol=1e-10)


def _ks(sample, cdf):
    return stats.kstest(sample.numpy(), cdf).pvalue


def test_densities_match_their_distributions():
    n, g = 20_000, torch.Generator().manual_seed(5)
    norm = stats.norm
    vp, edm = ip.paths.VPLinear(), ip.paths.EDM()
    t = densities.get("uniform")(n, g, vp)  # the path's safe range [t_min, 1]
    assert _ks(t, stats.uniform(vp.t_min, 1 - vp.t_min).cdf) > 1e-3
    disc = ip.paths.VPDiscrete.from_betas("linear", 1000)
    t = densities.get("uniform")(n, g, disc)
    assert t.min() >= 1e-3 and _ks(t, stats.uniform(1e-3, 1 - 1e-3).cdf) > 1e-3
    t = densities.LogitNormal(0.5, 0.8)(n, g, vp)

    def logit_cdf(m, s):
        return lambda u: norm.cdf((torch.logit(torch.as_tensor(u)).numpy() - m) / s)

    assert _ks(t, logit_cdf(0.5, 0.8)) > 1e-3
    assert _ks(t, logit_cdf(0.5, 0.9)) < 1e-6  # the test has power
    # EDM: ln sigma ~ N(-1.2, 1.2^2) truncated to the path's range; on the EDM path
    # ln sigma = ln sigma_min + t ln(sigma_max / sigma_min); on VP, ln sigma_e = -lam(t).
    lo, hi = math.log(edm.sigma_min), math.log(edm.sigma_max)

    def edm_cdf(log_sigma, m=-1.2, s=1.2, a=lo, b=hi):
        za, zb = norm.cdf((a - m) / s), norm.cdf((b - m) / s)
        return (norm.cdf((log_sigma - m) / s) - za) / (zb - za)

    t = densities.get("edm")(n, g, edm)
    assert _ks(t, lambda u: edm_cdf(lo + u * (hi - lo))) > 1e-3
    assert _ks(t, lambda u: edm_cdf(lo + u * (hi - lo), m=-1.1)) < 1e-6
    t = densities.get("edm")(n, g, vp)
    lam0, lam1 = float(vp.lam(vp.t_min)), float(vp.lam(1.0))

    def vp_cdf(u):
        return edm_cdf(-vp.lam(torch.as_tensor(u, dtype=torch.float64)).numpy(), a=-lam0, b=-lam1)

    assert _ks(t, vp_cdf) > 1e-3


def test_unknown_names_and_bad_callables_are_refused():
    path = ip.paths.VPLinear()
    for kwargs, word in (({"target": "noise"}, "target"), ({"density": "cosine"}, "density"),
                         ({"weight": "p7"}, "weight")):
        with pytest.raises(InterpolantError, match=f"unknown.*{word}.*choose one of"):
            Objective(path, **kwargs)
    bad = Objective(path, density=lambda n, g, p: torch.full((n,), 1.5))
    with pytest.raises(InterpolantError, match="outside"):
        bad.sample_time(4)
    with pytest.raises(InterpolantError, match="Gaussian path"):
        Objective("vp-linear")

    class Broken(ip.paths.VPLinear):  # a path without finite coefficients below t = 1e-3
        def _sigma(self, t):
            return torch.where(t < 1e-3, torch.nan, super()._sigma(t))

    with pytest.raises(InterpolantError, match="no finite alpha, sigma at t = 0.0001"):
        z = torch.zeros(2, 2)
        Objective(Broken())(lambda x, t, c=None: x, z, z, torch.tensor([0.5, 1e-4]))
    with pytest.raises(InterpolantError, match="must return"):
        x = torch.zeros(3, 2)
        Objective(path)(lambda x, t, c=None: x[:, :1], x, x, torch.rand(3))
    assert isinstance(weights.get("min-snr-gamma-3"), weights.MinSNR)
    assert weights.get("min-snr-gamma-3").gamma == 3.0
