"""Exponential-integrator solvers (DPM-Solver, DPM-Solver++, UniPC, DEIS) against exact answers.

The reference is the exact probability-flow map of a Gaussian mixture (``GaussianMixture.flow``),
so every number below is an error against the truth, not against our own earlier output.
"""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.oracle import GaussianMixture

from support.orders import reference, rms_error
from support.paths import PATH_IDS, all_paths

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sample(den, x, solver, steps=12, grid="logsnr", t_start=1.0, t_end=None, **opts):
    return ip.sample(den, x, solver=solver, steps=steps, grid=grid, t_start=t_start,
                     t_end=t_end, **opts)


@pytest.mark.parametrize("path", all_paths(), ids=PATH_IDS)
def test_dpm1_is_ddim_on_every_path(path):
    """DPM-Solver-1 = DDIM in both forms, including a first step from pure noise."""
    den = GaussianMixture.preset("aniso2d").denoiser(path)
    x = path.sigma(1.0) * torch.randn(32, 2, generator=_gen(1), dtype=F64)
    ddim = _sample(den, x, "ddim")
    for form in ("noise", "data"):
        out = _sample(den, x, "dpm1", form=form)
        assert torch.allclose(out, ddim, rtol=0, atol=1e-12 * (1 + ddim.abs().max().item()))
    for name, opts in [("deis", {"order": 1}), ("unipc", {"order": 1, "corrector": False}),
                       ("dpm++2m", {"lower_order_final": False}), ("dpm++3m", {})]:
        if name.startswith("dpm++"):
            out = _sample(den, x, name, steps=1, **opts)
            ref = _sample(den, x, "ddim", steps=1)
        else:
            out, ref = _sample(den, x, name, **opts), ddim
        assert torch.allclose(out, ref, rtol=0, atol=1e-12 * (1 + ref.abs().max().item())), name


def test_unip_equals_dpmpp_multistep():
    """UniP-2 (rho = 1/2, bh2) is DPM-Solver++(2M) midpoint, and UniP-3 (a linear solve for
    its weights) is the Taylor-consistent 3M: two derivations, one method."""
    path = ip.paths.VPLinear()
    den = GaussianMixture.preset("mix8d").denoiser(path)
    x = torch.randn(16, 8, generator=_gen(2), dtype=F64)
    for order, opts in [(2, {}), (3, {"third_order": "consistent"})]:
        unip = _sample(den, x, "unipc", steps=20, order=order, corrector=False)
        dpmpp = _sample(den, x, f"dpm++{order}m", steps=20, **opts)
        assert (unip - dpmpp).abs().max() < 1e-11
    published = _sample(den, x, "dpm++3m", steps=20, third_order="published")
    assert (published - dpmpp).abs().max() > 1e-5  # the two 3M forms differ visibly


@pytest.mark.parametrize("order", [2, 3])
def test_sde_with_zero_eta_is_the_ode_solver(order):
    den = GaussianMixture.preset("aniso2d").denoiser(ip.paths.VPLinear())
    x = torch.randn(32, 2, generator=_gen(3), dtype=F64)
    for opts in [{}, {"lower_order_final": False}, {"third_order": "consistent"}]:
        for solver_type in ("midpoint", "heun"):
            sde = _sample(den, x, f"dpm++{order}m-sde", eta=0.0, generator=_gen(4),
                          solver_type=solver_type, **opts)
            ode = _sample(den, x, f"dpm++{order}m", solver_type=solver_type, **opts)
            assert torch.equal(sde, ode)


def _k_diffusion_3m_sde(den, x, ts, sigmas, gen, eta=1.0):
    """k-diffusion's ``sample_dpmpp_3m_sde`` transcribed (on a VE/EDM path, sigma = sigma)."""
    d_1 = d_2 = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        d = den(x, ts[i], None, "x0")
        h = math.log(sigmas[i]) - math.log(sigmas[i + 1])
        h_eta = h * (eta + 1)
        x = math.exp(-h_eta) * x - math.expm1(-h_eta) * d
        phi_2 = math.expm1(-h_eta) / h_eta + 1
        if h_2 is not None:
            r0, r1 = h_1 / h, h_2 / h
            d1_0, d1_1 = (d - d_1) / r0, (d_1 - d_2) / r1
            d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            x = x + phi_2 * d1 - (phi_2 / h_eta - 0.5) * d2
        elif h_1 is not None:
            x = x + phi_2 * (d - d_1) / (h_1 / h)
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        x = x + noise * sigmas[i + 1] * math.sqrt(-math.expm1(-2 * h * eta))
        d_1, d_2, h_1, h_2 = d, d_1, h, h_1
    return x


def test_dpmpp_3m_sde_is_k_diffusions_sampler():
    """Issue 17 item 13: the order-2 warm-up step uses phi_2 (heun), as k-diffusion does."""
    path = ip.paths.EDM()
    den = GaussianMixture.preset("aniso2d").denoiser(path)
    x = path.sigma(1.0) * torch.randn(64, 2, generator=_gen(5), dtype=F64)
    ts = ip.grids.make("karras", path, 10)
    ours = ip.sample(den, x, solver="dpm++3m-sde", grid=ts, generator=_gen(6),
                     lower_order_final=False)
    ref = _k_diffusion_3m_sde(den, x, ts.tolist(), path.sigma(ts).tolist(), _gen(6))
    assert (ours - ref).abs().max() < 1e-12
    midpoint = ip.sample(den, x, solver="dpm++3m-sde", grid=ts, generator=_gen(6),
                         lower_order_final=False, solver_type="midpoint")
    assert (midpoint - ref).abs().max() > 1e-7  # the two warm-up rules differ visibly


SOLVERS = [
    ("dpm2", {}), ("dpm3", {}), ("dpm3", {"form": "data"}), ("dpm-fast", {}),
    ("dpm-adaptive", {"rtol": 1e-3, "atol": 1e-4}), ("dpm++2s", {}), ("dpm++2m", {}),
    ("dpm++3m", {}), ("dpm++3m", {"third_order": "consistent"}), ("unipc", {"order": 3}),
    ("unipc", {"order": 2, "variant": "bh1", "form": "noise"}), ("deis", {"order": 3}),
]


@pytest.mark.parametrize("path", all_paths(), ids=PATH_IDS)
def test_every_path(path):
    """On a Gaussian (closed-form flow) every solver on every path beats DDIM by 5x at 30 steps
    of the logsnr grid (first step from pure noise where alpha(1) = 0)."""
    gmm = GaussianMixture.preset("gauss2d")
    den = gmm.denoiser(path)
    x = path.sigma(1.0) * torch.randn(32, 2, generator=_gen(5), dtype=F64)
    ref = gmm.flow(path, x, 1.0, path.t_min)
    ddim_err = rms_error(_sample(den, x, "ddim", steps=30), ref)
    for name, opts in SOLVERS:
        err = rms_error(_sample(den, x, name, steps=30, **opts), ref)
        assert err < 0.2 * ddim_err, f"{name} {opts}: error {err:.3g}, ddim {ddim_err:.3g}"


@pytest.mark.parametrize("path", all_paths(), ids=PATH_IDS)
@pytest.mark.parametrize("prediction", ["eps", "v", "velocity"])
def test_every_prediction_type(path, prediction):
    """A network predicting eps, v or the velocity gives the x0 network's result to rounding,
    for solvers asking for eps (noise forms, DEIS) and x0 (data forms). An eps network cannot
    give x0 where alpha ~ 0, so that pair starts at t = 0.999."""
    gmm = GaussianMixture.preset("gauss2d")
    exact_x0 = gmm.denoiser(path)

    def net(x, t, cond=None):
        return ip.predictions.convert(exact_x0(x, t, None, "x0"), "x0", prediction, x, t, path)

    den = ip.Denoiser(net, path, prediction=prediction)
    t_start = 0.999 if prediction == "eps" and path.alpha(1.0) < 1e-8 else 1.0
    x = path.sigma(t_start) * torch.randn(8, 2, generator=_gen(5), dtype=F64)
    for name, opts in [("dpm3", {}), ("dpm++3m", {}), ("unipc", {"form": "noise"}),
                       ("unipc", {}), ("deis", {})]:
        out = _sample(den, x, name, steps=8, t_start=t_start, **opts)
        base = _sample(exact_x0, x, name, steps=8, t_start=t_start, **opts)
        assert rms_error(out, base) < 1e-9 * rms_error(base, 0 * base), f"{name} {opts}"


@pytest.mark.parametrize("budget", [6, 7, 8, 20])
def test_dpm_fast_spends_its_budget(budget):
    """dpm-fast: NFE = the grid's steps, K = NFE // 3 + 1 steps, ending at t_end."""
    path = ip.paths.VPLinear()
    den = GaussianMixture.preset("aniso2d").denoiser(path)
    x = torch.randn(8, 2, generator=_gen(6), dtype=F64)
    for skip in ("logsnr", "grid"):
        states = list(ip.trajectory(den, x, "dpm-fast", steps=budget, grid="logsnr", skip=skip))
        assert states[-1].nfe == budget
        assert len(states) == budget // 3 + 1
        assert states[-1].t == path.t_min


def test_dpm_fast_orders():
    from interpolant.solvers.dpm import fast_orders

    assert fast_orders(9, 3) == [3, 3, 2, 1]
    assert fast_orders(10, 3) == [3, 3, 3, 1]
    assert fast_orders(11, 3) == [3, 3, 3, 2]
    assert fast_orders(7, 2) == [2, 2, 2, 1]


@pytest.mark.parametrize("order", [2, 3])
def test_dpm_adaptive_meets_its_tolerance(order):
    """Tighter tolerances buy a proportionally smaller error vs the exact flow, and it ends
    exactly at t_end."""
    gmm, path, x1, ref = reference("aniso2d", "vp-linear")
    den = gmm.denoiser(path)
    errs = []
    for tol in (1e-2, 1e-4):
        states = list(ip.trajectory(den, x1, "dpm-adaptive", steps=5, grid="logsnr",
                                    order=order, rtol=tol, atol=tol))
        assert states[-1].t == ip.paths.VPLinear().t_min
        errs.append(rms_error(states[-1].x, ref))
    assert errs[1] < 1e-3 and errs[1] < 0.05 * errs[0], errs


@pytest.mark.parametrize("t_end", [0.3, None])
def test_sde_samplers_match_the_exact_marginal(t_end):
    """dpm++2m-sde / 3m-sde from exact p_1: mean, covariance and component masses at t_end
    agree with the exact marginal within 4 Monte Carlo standard errors (two-sample: n = 6000
    solver samples vs 20000 exact ones; the SE of each covariance entry is the empirical std
    of the centred products / sqrt(n); masses by nearest-component assignment, binomial SE).
    At t_end = 0.3 the injected noise is a large part of the marginal, so a wrong noise scale
    shows; at t_min the law is nearly the data's."""
    gmm, path = GaussianMixture.preset("aniso2d"), ip.paths.VPLinear()
    t_end = path.t_min if t_end is None else t_end
    den = gmm.denoiser(path)
    n, n_ref = 6000, 20000
    target = gmm.marginal(path, t_end)
    exact_s = target.sample(n_ref, generator=_gen(7))
    x1 = gmm.marginal(path, 1.0).sample(n, generator=_gen(8))

    def stats(y):
        yc = y - y.mean(0)
        prods = torch.stack([yc[:, i] * yc[:, j] for i in range(2) for j in range(2)], 1)
        lp = torch.stack([torch.distributions.MultivariateNormal(m, c).log_prob(y)
                          for m, c in zip(target.means, target.covs)], 1)
        mass = torch.bincount(lp.argmax(1), minlength=8).to(F64) / len(y)
        return y.mean(0), prods.mean(0), prods.std(0) / math.sqrt(len(y)), mass

    m_ref, c_ref, c_se_ref, w_ref = stats(exact_s)

    def agrees(y):
        m, c, c_se, w = stats(y)
        std = c_ref[[0, 3]].sqrt()
        w_se = torch.sqrt(w_ref * (1 - w_ref) * (1 / n + 1 / n_ref))
        return [bool(((m - m_ref).abs() < 4 * std * math.sqrt(1 / n + 1 / n_ref)).all()),
                bool(((c - c_ref).abs() < 4 * torch.sqrt(c_se**2 + c_se_ref**2)).all()),
                bool(((w - w_ref).abs() < 4 * w_se + 1e-12).all())]

    for name in ("dpm++2m-sde", "dpm++3m-sde"):
        out = _sample(den, x1, name, steps=50, t_end=t_end, generator=_gen(9))
        assert agrees(out) == [True, True, True], name
    # negative control: exact samples shrunk by 4% towards their mean fail
    shrunk = target.sample(n, generator=_gen(12))
    assert agrees(0.96 * (shrunk - shrunk.mean(0)) + shrunk.mean(0)) != [True] * 3


@pytest.mark.parametrize("name", ["dpm++2m-sde", "dpm++3m-sde"])
def test_sample_does_not_depend_on_its_batch(name):
    den = GaussianMixture.preset("aniso2d").denoiser(ip.paths.VPLinear())
    x = torch.randn(8, 2, generator=_gen(10), dtype=F64)
    batch = _sample(den, x, name, generator=[_gen(100 + i) for i in range(8)])
    alone = _sample(den, x[3:4], name, generator=[_gen(103)])
    assert torch.allclose(batch[3:4], alone, rtol=0, atol=1e-12)
    assert not torch.allclose(batch[3:4], _sample(den, x[3:4], name, generator=[_gen(104)]))


@pytest.mark.parametrize(("name", "opts", "match"), [
    ("unipc", {"order": 4}, "orders 1, 2, 3"),
    ("deis", {"order": 0}, "orders 1, 2, 3"),
    ("dpm-adaptive", {"order": 1}, "order 2"),
    ("dpm-adaptive", {"rtol": 0.0}, "rtol > 0"),
    ("dpm-fast", {"skip": "time"}, "skip must be"),
    ("dpm3", {"form": "x0"}, "form must be"),
    ("dpm++3m", {"third_order": "half"}, "consistent"),
    ("dpm++2m", {"solver_type": "rk"}, "midpoint"),
    ("dpm++2m-sde", {"eta": -1.0}, "eta"),
    ("unipc", {"variant": "bh3"}, "bh1"),
    ("dpm2", {"order": 3}, "fixes order"),
])
def test_bad_options_say_what_to_do(name, opts, match):
    with pytest.raises(InterpolantError, match=match):
        ip.solvers.get(name, **opts)
