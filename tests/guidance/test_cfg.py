"""Classifier-free guidance against the exact class-conditional oracle: the tilted score at
every (x, t, target), its limits, one batched call per step, interval, rescale, and the
sampled guided field against an independent high-accuracy integration."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.integrate import solve_ivp
from support.orders import fit_order

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.labels import NULL_LABEL
from interpolant.predictions import TARGETS

F64 = torch.float64
CFG = ip.guidance.CFG


@pytest.mark.parametrize("t", [0.05, 0.4, 0.9])
def test_cfg_score_is_the_tilted_score(path, gmm, exact, points, labels, t):
    """score_g = w grad log p_t(x | c) + (1 - w) grad log p_t(x), from restricted mixtures."""
    w = 2.5
    g = CFG(gmm.denoiser(path), scale=w)
    expect = w * exact.score_c(points, t, path, labels) + (1 - w) * gmm.score(points, t, path)
    torch.testing.assert_close(g(points, t, labels, "score"), expect, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("target", TARGETS)
def test_cfg_is_the_same_combination_in_every_target(gmm, exact, points, labels, target):
    """w D_c + (1 - w) D_u in x0, converted to the target, equals the guided target."""
    path, w, t = ip.paths.VPCosine(), 3.0, 0.3
    a, s = path.alpha(t), path.sigma(t)
    x0 = w * exact.mean_c(points, a, s, labels) + (1 - w) * gmm.posterior_mean(points, a, s)
    expect = ip.convert(x0, "x0", target, points, t, path)
    got = CFG(gmm.denoiser(path), scale=w)(points, t, labels, target)
    torch.testing.assert_close(got, expect, rtol=1e-10, atol=1e-10)


def test_scale_one_is_conditional_and_zero_unconditional(gmm, points, labels):
    path = ip.paths.EDM()
    den = gmm.denoiser(path)
    t = torch.linspace(0.1, 0.9, 8, dtype=F64)
    for target in ("eps", "x0", "velocity"):
        torch.testing.assert_close(CFG(den, 1.0)(points, t, labels, target),
                                   den(points, t, labels, target), rtol=1e-14, atol=0)
        torch.testing.assert_close(CFG(den, 0.0)(points, t, labels, target),
                                   den(points, t, None, target), rtol=1e-14, atol=0)
    for scale in (0.0, 1.0):  # one branch suffices: one pass, counted as one NFE
        g = CFG(den, scale)
        g(points, t, labels, "x0")
        assert g.nfe == 1, (scale, g.nfe)


def test_null_labelled_rows_are_unconditional(gmm, points, labels):
    den = gmm.denoiser(ip.paths.VPLinear())
    mixed = labels.clone()
    mixed[::2] = NULL_LABEL
    out = CFG(den, 4.0)(points, 0.5, mixed)
    torch.testing.assert_close(out[::2], den(points[::2], 0.5, None), rtol=1e-12, atol=1e-12)


class _Recorder:
    """An x0 network that records the batch and labels of every call."""

    def __init__(self, gmm, path):
        self.inner, self.seen = gmm.denoiser(path).model, []

    def __call__(self, x, t, cond):
        self.seen.append((x.shape[0], cond.clone()))
        return self.inner(x, t, cond)


def test_both_branches_run_in_one_call_and_count_two(gmm, labels):
    path = ip.paths.VPLinear()
    net = _Recorder(gmm, path)
    den = ip.Denoiser(net, path, prediction="x0")
    g = CFG(den, 2.0)
    x1 = torch.randn(8, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    ip.sample(g, x1, cond=labels, solver="heun", steps=5)
    evaluations = len(net.seen)
    assert evaluations == g.calls == den.nfe and g.nfe == 2 * evaluations
    for batch, cond in net.seen:
        assert batch == 16
        assert torch.equal(cond[:8], labels) and torch.all(cond[8:] == NULL_LABEL)


def _lam_reference(gmm, exact, labels, w, path, x, t_from, t_to):
    """The guided probability-flow ODE dy/dlam = e^lam D_w(sigma y) in y = x / sigma,
    integrated by DOP853 at tight tolerances (independent of the solvers and of CFG)."""
    shape = x.shape

    def rhs(lam, y):
        a = 1.0 / math.sqrt(1.0 + math.exp(-2.0 * lam))
        s = a * math.exp(-lam)
        xs = s * torch.from_numpy(y).view(shape)
        d = w * exact.mean_c(xs, a, s, labels) + (1 - w) * gmm.posterior_mean(xs, a, s)
        return (math.exp(lam) * d).flatten().numpy()

    lam_a, lam_b = path.lam(t_from), path.lam(t_to)
    sol = solve_ivp(rhs, (lam_a, lam_b), (x / path.sigma(t_from)).flatten().numpy(),
                    method="DOP853", rtol=1e-11, atol=1e-11)
    return path.sigma(t_to) * torch.from_numpy(sol.y[:, -1]).view(shape)


@pytest.fixture(scope="module")
def guided_flow(gmm, exact):
    """Start points at t = 0.9 and their exact guided flow to t = 0.05 (VPCosine, w = 2)."""
    path, w, labels = ip.paths.VPCosine(), 2.0, torch.tensor([0, 1, 2, 0, 1, 2, 2, 0])
    x = gmm.marginal(path, 0.9).sample(8, torch.Generator().manual_seed(5))
    return path, w, labels, x, _lam_reference(gmm, exact, labels, w, path, x, 0.9, 0.05)


@pytest.mark.parametrize("solver, order, bound", [
    ("ddim", 1, 0.02), ("dpm++2m", 2, 1e-3), ("heun", 2, 1e-3), ("dpm++3m", 3, 2e-4),
])
def test_guided_flow_converges_at_the_solver_order(gmm, guided_flow, solver, order, bound):
    """Each solver on the CFG denoiser converges at its order to the exact guided flow; a
    wrong combination or label batching would leave an O(1) error."""
    path, w, labels, x, ref = guided_flow
    g = CFG(gmm.denoiser(path), scale=w)
    steps = [16, 32, 64]
    errors = [float((ip.sample(g, x, solver, n, "logsnr", t_start=0.9, t_end=0.05,
                               cond=labels) - ref).norm(dim=1).max()) for n in steps]
    assert errors[-1] < bound  # measured: 0.013, 4.8e-4, 4.3e-4, 1.1e-4 at 64 steps
    assert fit_order(steps, errors) > order - 0.3, errors  # measured: 1.03, 2.02, 2.04, 2.77


def test_every_solver_on_every_path_samples_the_guided_field(path, exact, labels,
                                                             samples_alike):
    """Each solver on CFG gives what it gives on a plain Denoiser of w D_c + (1 - w) D_u
    (same grid, same noise): CFG is a denoiser like any other."""
    w = 1.7
    x1 = torch.randn(8, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    samples_alike(CFG(exact.gmm.denoiser(path), scale=w), exact.guided_denoiser(path, w), x1,
                  labels, 1e-8)


def test_interval_guides_inside_and_skips_the_unconditional_pass_outside(gmm, points, labels):
    path = ip.paths.VPLinear()
    den = gmm.denoiser(path)
    g = CFG(den, 3.0, interval=(0.2, 0.6))
    full = CFG(den, 3.0)
    torch.testing.assert_close(g(points, 0.4, labels), full(points, 0.4, labels), rtol=0, atol=0)
    assert g.nfe == 2
    torch.testing.assert_close(g(points, 0.8, labels), den(points, 0.8, labels), rtol=0, atol=0)
    assert g.nfe == 3 and g.calls == 2
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.3, 0.9, 0.2, 0.6], dtype=F64)
    inside = (t >= 0.2) & (t <= 0.6)
    out = g(points, t, labels, "eps")
    torch.testing.assert_close(out[inside], full(points, t, labels, "eps")[inside])
    torch.testing.assert_close(out[~inside], den(points, t, labels, "eps")[~inside])


def test_interval_nfe_over_a_run(gmm, labels):
    path = ip.paths.VPLinear()
    ts = torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2, 0.05], dtype=F64)
    g = CFG(gmm.denoiser(path), 2.0, interval=(0.3, 0.7))
    x1 = torch.randn(8, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    ip.sample(g, x1, "ddim", grid=ts, cond=labels)
    assert g.calls == 5 and g.nfe == 5 + 2  # t = 0.6, 0.4 inside


def test_rescale_matches_lin_et_al(gmm, exact, points, labels):
    """phi = 1: the guided x0 scaled to the conditional's per-sample std; phi blends."""
    path, w, t = ip.paths.VPLinear(), 4.0, 0.3
    a, s = path.alpha(t), path.sigma(t)
    c = exact.mean_c(points, a, s, labels).numpy()
    cfg = w * c + (1 - w) * gmm.posterior_mean(points, a, s).numpy()
    rescaled = cfg * c.std(axis=1, keepdims=True) / cfg.std(axis=1, keepdims=True)
    den = gmm.denoiser(path)
    for phi in (0.0, 0.7, 1.0):
        got = CFG(den, w, rescale=phi)(points, t, labels, "eps")
        x0 = torch.from_numpy(phi * rescaled + (1 - phi) * cfg)
        torch.testing.assert_close(got, ip.convert(x0, "x0", "eps", points, t, path))


@pytest.mark.parametrize("kwargs, match", [
    (dict(scale=math.nan), "finite"),
    (dict(scale="big"), "number"),
    (dict(interval=(0.5, 0.2)), "t_lo < t_hi"),
    (dict(interval=(0.0, 1.5)), "t_lo < t_hi"),
    (dict(interval=0.3), "pair"),
    (dict(rescale=2.0), r"\[0, 1\]"),
    (dict(rescale_space="logits"), "rescale_space"),
])
def test_bad_options_are_clear_errors(gmm, kwargs, match):
    with pytest.raises(InterpolantError, match=match):
        CFG(gmm.denoiser(ip.paths.VPLinear()), **kwargs)


def test_bad_cond_is_a_clear_error(gmm, points, labels):
    g = CFG(gmm.denoiser(ip.paths.VPLinear()), 2.0)
    with pytest.raises(InterpolantError, match="needs class labels"):
        g(points, 0.5)
    with pytest.raises(InterpolantError, match="shape"):
        g(points, 0.5, labels[:3])
    with pytest.raises(InterpolantError, match="outside"):
        g(points, 0.5, torch.full((8,), 7))
    with pytest.raises(InterpolantError, match="target"):
        g(points, 0.5, labels, "noise")
    with pytest.raises(InterpolantError, match="denoiser"):
        CFG(lambda x, t, c: x, 2.0)


def test_networks_without_an_unconditional_branch_are_refused():
    path = ip.paths.VPLinear()
    with pytest.raises(InterpolantError, match="num_classes=None"):
        CFG(ip.Denoiser(ip.models.MLP(2, hidden=8, depth=1), path), 2.0)

    class NoDropout(torch.nn.Module):
        num_classes, label_dropout = 3, 0.0

        def forward(self, x, t, cond=None):
            return x

    with pytest.raises(InterpolantError, match="label dropout"):
        CFG(ip.Denoiser(NoDropout(), path), 2.0)


def test_cond_as_a_mapping_keeps_its_other_entries(gmm, points, labels):
    """cond = {"labels": ..., other tensors}: the labels get NULL in the second half and
    every other entry is repeated for both halves."""
    path = ip.paths.VPLinear()
    seen = []

    def model(x, t, cond):
        seen.append(cond)
        return gmm.denoiser(path).model(x, t, cond["labels"])

    g = CFG(ip.Denoiser(model, path, prediction="x0"), 2.0)
    extra = torch.arange(8.0)
    out = g(points, 0.5, {"labels": labels, "extra": extra})
    assert torch.equal(seen[0]["extra"], torch.cat([extra, extra]))
    assert torch.equal(seen[0]["labels"][8:], torch.full((8,), NULL_LABEL))
    torch.testing.assert_close(out, CFG(gmm.denoiser(path), 2.0)(points, 0.5, labels))
