"""Conversions between prediction targets, and the Denoiser wrapper."""

from __future__ import annotations

import pytest
import torch
from support.paths import all_paths
from hypothesis import given, settings
from hypothesis import strategies as st

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.predictions import TARGETS, convert

F64 = torch.float64


def _truths(path, x0, eps, t):
    """Every target computed from its definition, independently of the conversion code."""
    view = lambda c: c.view(-1, *([1] * (x0.ndim - 1)))  # noqa: E731
    a, s = view(path.alpha(t)), view(path.sigma(t))
    da, ds = view(path.d_alpha(t)), view(path.d_sigma(t))
    x = a * x0 + s * eps
    return x, {
        "eps": eps,
        "x0": x0,
        "v": a * eps - s * x0,
        "velocity": da * x0 + ds * eps,
        "score": -eps / s,
    }


@pytest.mark.parametrize("index", range(8))
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), lo=st.floats(0.02, 0.95), image=st.booleans())
def test_every_conversion_matches_the_definitions(index, seed, lo, image):
    path = all_paths()[index]
    g = torch.Generator().manual_seed(seed)
    shape = (4, 2, 3, 3) if image else (4, 5)
    x0 = torch.randn(shape, generator=g, dtype=F64)
    eps = torch.randn(shape, generator=g, dtype=F64)
    t = torch.linspace(lo, min(lo + 0.04, 0.99), 4, dtype=F64)  # one time per sample
    x, truth = _truths(path, x0, eps, t)
    for src in TARGETS:
        for dst in TARGETS:
            got = convert(truth[src], src, dst, x, t, path)
            torch.testing.assert_close(got, truth[dst], rtol=1e-9, atol=1e-9)


def test_scalar_time_and_per_sample_time_agree(path):
    g = torch.Generator().manual_seed(1)
    x, out = torch.randn(3, 4, generator=g, dtype=F64), torch.randn(3, 4, generator=g, dtype=F64)
    for dst in TARGETS:
        a = convert(out, "eps", dst, x, 0.37, path)
        b = convert(out, "eps", dst, x, torch.full((3,), 0.37, dtype=F64), path)
        torch.testing.assert_close(a, b)


class _Recorder(torch.nn.Module):
    """A network that records what it was called with and returns 0.5 x."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5))
        self.calls = []

    def forward(self, x, t, cond):
        self.calls.append((t.shape, t.dtype, t.clone(), cond))
        return self.scale * x


def test_denoiser_calls_model_with_batched_time_and_counts_nfe():
    path = ip.paths.VPLinear()
    net = _Recorder()
    den = ip.Denoiser(net, path, prediction="eps", time_scale=1000.0, time_shift=-1.0)
    x = torch.randn(6, 3)
    eps = den(x, 0.5, cond="c", target="eps")
    den(x, torch.full((6,), 0.25), target="x0")
    assert den.nfe == 2
    shape, dtype, t, cond = net.calls[0]
    assert shape == (6,) and dtype == torch.float32 and cond == "c"
    torch.testing.assert_close(t, torch.full((6,), 499.0))
    torch.testing.assert_close(eps, 0.5 * x)


def test_denoiser_upcasts_low_precision_outputs():
    den = ip.Denoiser(lambda x, t, c: (0.5 * x).to(torch.bfloat16), ip.paths.Linear(), "velocity")
    x = torch.randn(4, 2, dtype=F64)
    assert den(x, 0.5, target="x0").dtype == F64


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda d, x: d(x, torch.zeros(3), target="x0"), r"shape \(B,\)"),
        (lambda d, x: d(x, 0.5, target="noise"), "eps"),
        (lambda d, x: ip.Denoiser(lambda x, t, c: x[:, :1], d.path)(x, 0.5), "shaped like"),
        (lambda d, x: ip.Denoiser(d.model, d.path, prediction="epsilon"), "eps"),
        (lambda d, x: ip.Denoiser(d.model, "vp"), "Gaussian path"),
    ],
)
def test_denoiser_bad_input(call, words):
    den = ip.Denoiser(lambda x, t, c: x, ip.paths.VPLinear())
    with pytest.raises(InterpolantError, match=words):
        call(den, torch.randn(5, 2))


def test_eps_networks_refuse_the_noise_end_of_paths_without_signal():
    """alpha(1) = 0 (rectified flow) or ~6e-17 (cosine): x0 from eps is undefined there."""
    x = torch.randn(3, 2, dtype=F64)
    for path in (ip.paths.Linear(), ip.paths.VPCosine()):
        den = ip.Denoiser(lambda x, t, c: x, path, prediction="eps")
        with pytest.raises(InterpolantError, match="t_start"):
            den(x, 1.0, target="x0")
        assert torch.isfinite(den(x, 0.999, target="x0")).all()
        assert torch.isfinite(den(x, 1.0, target="score")).all()
        with pytest.raises(InterpolantError, match="eps-predicting"):
            ip.sample(den, x, solver="dpm++2m", steps=5)
        assert torch.isfinite(ip.sample(den, x, solver="dpm++2m", steps=5, t_start=0.999)).all()


@pytest.mark.parametrize("path", [ip.paths.Linear(), ip.paths.VPCosine(), ip.paths.Trig()],
                         ids=repr)
def test_score_networks_refuse_the_noise_end_in_every_solver(path):
    """alpha(1) = 0 (or 6e-17): x0 = (x + sigma^2 score) / alpha is undefined there, as from eps.

    Every solver must stop with the clear error (it returned NaN, 1e6 values, or a dpm-adaptive
    step-size failure); from t_start = 0.999 the score network must give the samples of the exact
    x0 network it was converted from (the conversions are exact, the solver the same).
    """
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    exact = gmm.denoiser(path)

    def score_net(x, t, cond):
        return convert(exact.model(x, t, cond), "x0", "score", x, t, path)

    x = torch.randn(3, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    den = ip.Denoiser(score_net, path, prediction="score")
    for solver in ip.solvers.available():
        def run(d, **kw):
            return ip.sample(d, x, solver=solver, steps=4,
                             generator=torch.Generator().manual_seed(1), **kw)

        with pytest.raises(InterpolantError, match="score-predicting network cannot give"):
            run(den)
        want = run(ip.Denoiser(exact.model, path, "x0"), t_start=0.999)
        torch.testing.assert_close(run(den, t_start=0.999), want, rtol=1e-7, atol=1e-7,
                                   msg=lambda m, s=solver: f"{s}: {m}")
    with pytest.raises(InterpolantError, match="t = 1"):  # one time per sample, one of them 1
        den(x, torch.tensor([0.5, 1.0, 0.2], dtype=F64), target="x0")
    assert torch.isfinite(den(x, torch.tensor([0.5, 1.0, 0.2], dtype=F64), target="eps")).all()


class _NoCond(torch.nn.Module):
    def forward(self, x, t):
        return x * t[:, None]


def test_networks_written_without_cond():
    """forward(x, t): called without cond; given a condition, or fewer arguments: clear errors."""
    path = ip.paths.Linear()
    x = torch.randn(4, 2, dtype=F64)
    two = ip.Denoiser(_NoCond(), path, "velocity")
    three = ip.Denoiser(lambda x, t, cond: x * t[:, None], path, "velocity")
    for t in (0.3, torch.full((4,), 0.3, dtype=F64)):
        torch.testing.assert_close(two(x, t, target="x0"), three(x, t, target="x0"))
    torch.testing.assert_close(ip.sample(two, x, solver="heun", steps=3),
                               ip.sample(three, x, solver="heun", steps=3))
    assert ip.Denoiser(lambda x, t, cond=None: x, path).prediction == "eps"
    with pytest.raises(InterpolantError, match=r"takes only \(x, t\)"):
        two(x, 0.3, cond=torch.zeros(4, dtype=torch.long))
    with pytest.raises(InterpolantError, match=r"model\(x, t, cond\) or model\(x, t\)"):
        ip.Denoiser(lambda x: x, path)
