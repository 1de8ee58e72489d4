"""SDEdit, CycleDiffusion and the edit() front door on exact mixtures."""

from __future__ import annotations

import math

import pytest
import torch
from support.orders import fit_order

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.inversion import (METHODS, boundary_edit, cycle, edit, fit_boundary, interpolate,
                                  noise_diffusion, sdedit, slerp)
from interpolant.oracle import GaussianMixture
from interpolant.solvers.base import Noise

F64 = torch.float64


@pytest.fixture(scope="module")
def gmm():
    return GaussianMixture.preset("aniso2d")


@pytest.fixture(scope="module")
def classes(gmm):
    """aniso2d with 4 classes of two neighbouring components each."""
    return GaussianMixture(gmm.means, gmm.covs, gmm.weights,
                           labels=torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_sdedit_from_t0_1_ignores_the_input_and_samples_the_model(gmm):
    """On rectified flow alpha(1) = 0: the noised input is pure noise, so the output is the
    model's sample from that noise whatever the input, and its law is the mixture's."""
    path = ip.paths.Linear()
    den = gmm.denoiser(path)
    a = torch.zeros(4000, 2, dtype=F64)
    b = torch.full((4000, 2), 5.0, dtype=F64)
    out_a = sdedit(den, a, t0=1.0, solver="dpm++2m", steps=30, grid="logsnr", generator=gen(1))
    out_b = sdedit(den, b, t0=1.0, solver="dpm++2m", steps=30, grid="logsnr", generator=gen(1))
    assert torch.equal(out_a, out_b)
    mean = gmm.weights @ gmm.means
    centred = gmm.means - mean
    cov = (gmm.weights[:, None, None] * (gmm.covs + centred[:, :, None] * centred[:, None])).sum(0)
    assert float((out_a.mean(0) - mean).abs().max()) < 0.06  # MC standard error 0.017
    assert float((torch.cov(out_a.T) - cov).abs().max()) < 0.08


def test_sdedit_is_the_exact_flow_of_the_noised_input(gmm):
    """With an ODE solver SDEdit is the probability flow from x_t0 = alpha x + sigma eps."""
    path = ip.paths.VPLinear()
    x = gmm.sample(64, gen(2))
    x_t0 = path.alpha(0.6) * x + path.sigma(0.6) * Noise(gen(3)).like(x)
    ref = gmm.flow(path, x_t0, t_from=0.6)
    out = sdedit(gmm.denoiser(path), x, t0=0.6, solver="dpm3", steps=30, grid="logsnr",
                 generator=gen(3))
    assert float((out - ref).square().mean().sqrt()) < 1e-3  # measured 4e-4


def test_sdedit_returns_the_input_as_t0_goes_to_zero(gmm):
    path = ip.paths.VPLinear()
    den = gmm.denoiser(path)
    x = gmm.sample(256, gen(4))
    errs = [float((sdedit(den, x, t0=t0, steps=10, generator=gen(5)) - x).square().mean().sqrt())
            for t0 in (0.3, 0.08, 0.01)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 2.0 * path.sigma(0.01), errs  # 1.3 sigma


def test_cycle_ddim_is_the_composition_of_the_two_exact_flows(gmm):
    """CycleDiffusion between two exact mixtures: Phi^B_{1 -> t_min} o Phi^A_{t_min -> 1},
    reached at the solver's order."""
    rot = torch.tensor([[math.cos(0.4), -math.sin(0.4)], [math.sin(0.4), math.cos(0.4)]],
                       dtype=F64)
    other = GaussianMixture(0.8 * gmm.means @ rot.T, rot @ gmm.covs @ rot.T, gmm.weights.flip(0))
    path = ip.paths.VPLinear()
    x = gmm.sample(32, gen(6))
    ref = other.flow(path, gmm.flow(path, x, t_from=path.t_min, t_to=1.0))
    for solver, order, steps in (("ddim", 1, [16, 32, 64]), ("dpm++2m", 2, [16, 24, 32])):
        errs = [float((cycle(gmm.denoiser(path), other.denoiser(path), x, solver=solver,
                             steps=n, grid="logsnr") - ref).square().mean().sqrt())
                for n in steps]
        assert fit_order(steps, errs) > order - 0.3, (solver, errs)


def test_cycle_with_the_dpm_encoder_reconstructs_between_equal_models(gmm):
    den = gmm.denoiser(ip.paths.VPLinear())
    x = gmm.sample(32, gen(7))
    out = cycle(den, den, x, solver="dpm-encoder", steps=20, generator=gen(8))
    assert float((out - x).abs().max()) < 1e-12


@pytest.mark.parametrize("method", [m for m in METHODS if m != "null-text"])  # a network's
def test_edit_moves_data_to_the_target_class(classes, method):
    path = ip.paths.VPLinear()
    den = classes.denoiser(path)
    x0 = classes.restrict(0).sample(200, gen(9))
    options = {"t0": 0.9, "solver": "ddpm"} if method == "sdedit" else {}
    out = edit(den, x0, to_label=2, method=method, from_label=0, steps=40,
               generator=gen(10), **options)
    label = classes.class_log_posterior(out, path.t_min, path).argmax(1)
    assert float((label == 2).double().mean()) > 0.9
    if method != "sdedit":  # same label: reconstruction (exact latents to rounding)
        same = edit(den, x0, to_label=0, method=method, from_label=0, steps=40,
                    generator=gen(10))
        if method == "ode":  # DDIM there and back: within its error (RMS, measured 0.03)
            assert float((same - x0).square().mean().sqrt()) < 0.1
        else:
            assert float((same - x0).abs().max()) < 1e-9


@pytest.mark.parametrize("method", ["bdia", "edit-friendly", "dpm-encoder"])
def test_edit_of_images_decodes_latents_outside_the_image_range(classes, method):
    """Images (B, C, H, W) in [-1, 1] go in; their latents at the noise end lie outside
    [-1, 1] and must still decode (the CLI's edit of digits failed on this)."""
    path = ip.paths.VPLinear()
    inner = classes.denoiser(path).model

    def image_model(x, t, cond=None):
        return inner(x.flatten(1), t, cond).view_as(x)

    den = ip.Denoiser(image_model, path, prediction="x0")
    x0 = classes.restrict(0).sample(50, gen(11))
    x0 = (x0 / x0.abs().max()).view(50, 1, 1, 2)  # images in [-1, 1]
    out = edit(den, x0, to_label=0, method=method, from_label=0, steps=20, generator=gen(12))
    assert out.shape == x0.shape and float((out - x0).abs().max()) < 1e-9


def test_edit_refuses_unknown_labels_and_methods(classes, make_mlp):
    den = classes.denoiser(ip.paths.VPLinear())
    x0 = classes.sample(4)
    with pytest.raises(InterpolantError, match="label 4 is not one"):
        edit(den, x0, to_label=4)
    with pytest.raises(InterpolantError, match="label 7 is not one"):
        edit(ip.guidance.CFG(den, scale=2.0), x0, to_label=1, from_label=7)
    net_den = ip.Denoiser(make_mlp(num_classes=3), ip.paths.VPLinear(), prediction="eps")
    with pytest.raises(InterpolantError, match="classes 0..2"):
        edit(net_den, x0, to_label=3)
    with pytest.raises(InterpolantError, match="edit method"):
        edit(den, x0, to_label=1, method="magic")
    with pytest.raises(InterpolantError, match="t0 must lie"):
        edit(den, x0, to_label=1, method="sdedit", t0=0.0)


def test_slerp_keeps_the_norm_of_gaussian_latents_where_the_line_does_not():
    z_a, z_b = torch.randn(2, 8, 512, dtype=F64, generator=gen(11))
    mid = slerp(z_a, z_b, 0.5)
    ratio = mid.norm(dim=1) / z_a.norm(dim=1)
    assert float((ratio - 1.0).abs().max()) < 0.1
    assert float(((0.5 * (z_a + z_b)).norm(dim=1) / z_a.norm(dim=1)).max()) < 0.8  # ~1/sqrt 2
    torch.testing.assert_close(slerp(z_a, z_b, 0.0), z_a)
    torch.testing.assert_close(slerp(z_a, z_b, 1.0), z_b)
    # on the great circle (equal norms): equal angles for equal steps
    w = torch.linspace(0, 1, 5, dtype=F64)
    u = z_b[:1] * z_a[:1].norm() / z_b[:1].norm()
    path = torch.stack([slerp(z_a[:1], u, float(v))[0] for v in w])
    cos = torch.nn.functional.cosine_similarity(path[:-1], path[1:], dim=1)
    torch.testing.assert_close(cos, cos[:1].expand(4))
    torch.testing.assert_close(slerp(z_a, 2.0 * z_a, 0.5), 1.5 * z_a)  # parallel: the line


def test_interpolate_reaches_both_ends(gmm):
    den = gmm.denoiser(ip.paths.VPLinear())
    x_a, x_b = gmm.sample(16, gen(12)), gmm.sample(16, gen(13))
    out = interpolate(den, x_a, x_b, [0.0, 0.5, 1.0], solver="dpm++2m", steps=30,
                      grid="logsnr")
    assert out.shape == (3, 16, 2)
    assert float((out[0] - x_a).square().mean().sqrt()) < 1e-2
    assert float((out[2] - x_b).square().mean().sqrt()) < 1e-2
    # the middle lies where the data are: mean exact log-density not below the data's
    assert float(gmm.log_prob(out[1]).mean()) > float(gmm.log_prob(x_a).mean()) - 1.0


def test_noise_diffusion_keeps_the_noise_variance_and_reinjects_the_images():
    """z = a l_a + b l_b + (mu - a) alpha x_a + (nu - b) alpha x_b + gamma sigma eps with
    a^2 + b^2 + gamma^2 = 1 and mu + nu = boost: on states l = alpha x + sigma eps of
    independent noises, the noise part of z has std sigma at every weight (the line's would be
    sigma / sqrt 2 in the middle) and the signal is alpha (mu x_a + nu x_b)."""
    alpha, sigma = 0.6, 0.8
    x_a, x_b = torch.full((20000, 2), 0.5, dtype=F64), torch.full((20000, 2), -0.25, dtype=F64)
    e_a, e_b = torch.randn(2, 20000, 2, dtype=F64, generator=gen(14))
    l_a, l_b = alpha * x_a + sigma * e_a, alpha * x_b + sigma * e_b
    for w, gamma in ((0.5, 0.0), (0.3, 0.4)):
        z = noise_diffusion(l_a, l_b, x_a, x_b, w, alpha, sigma, gamma=gamma, boost=1.2,
                            bound=None, generator=gen(15))
        assert abs(float(z.std(0).mean()) / sigma - 1.0) < 0.02
        a, b = (math.sqrt(1 - gamma**2) * f(math.pi * w / 2) for f in (math.cos, math.sin))
        signal = alpha * 1.2 * (a * x_a + b * x_b) / (a + b)
        assert float((z.mean(0) - signal[0]).abs().max()) < 0.02
    # w = 0, no boost, no fresh noise: the first state itself; clipping bounds the result
    torch.testing.assert_close(noise_diffusion(l_a, l_b, x_a, x_b, 0.0, alpha, sigma, boost=1.0,
                                               bound=None), l_a)
    assert float(noise_diffusion(3 * l_a, l_b, x_a, x_b, 0.2, alpha, sigma).abs().max()) <= 2.0


def test_noise_diffusion_interpolation_samples_from_the_intermediate_time(gmm):
    den = gmm.denoiser(ip.paths.VPLinear())
    x_a, x_b = gmm.sample(16, gen(16)), gmm.sample(16, gen(17))
    out = interpolate(den, x_a, x_b, [0.0, 0.5], method="noisediffusion", t=0.4, steps=20,
                      solver="dpm++2m", grid="logsnr", boost=1.0, bound=None)
    # w = 0 without boost: the first sample's own state at t, sampled back (round trip)
    assert float((out[0] - x_a).square().mean().sqrt()) < 1e-2
    assert float(gmm.log_prob(out[1]).mean()) > float(gmm.log_prob(x_a).mean()) - 1.0
    with pytest.raises(InterpolantError, match="interpolation method"):
        interpolate(den, x_a, x_b, [0.5], method="lerp")


def test_boundary_diffusion_moves_across_the_fitted_boundary(gmm):
    """Two attributes (left / right half of the circle of components) under an unconditional
    exact model: the hyperplane fitted at t_m = 0.6 separates the inverted latents, moving a
    latent to the positive side turns every sample to that attribute, and no move is a round
    trip."""
    halves = GaussianMixture(gmm.means, gmm.covs, gmm.weights,
                             labels=torch.tensor([0, 0, 1, 1, 1, 1, 0, 0]))
    path = ip.paths.VPLinear()
    den = gmm.denoiser(path)
    x, comp = gmm.sample(200, gen(18), return_labels=True)
    boundary = fit_boundary(den, x, halves.labels[comp], t=0.6, solver="dpm++2m", steps=12)
    z = ip.invert(den, x, solver="dpm++2m", steps=12, t_end=0.6)
    accuracy = ((boundary.distance(z) > 0) == (halves.labels[comp] == 1)).double().mean()
    assert float(accuracy) > 0.95
    torch.testing.assert_close(boundary.distance(boundary.move(z, 0.7)),
                               torch.full((200,), 0.7, dtype=F64))
    x0 = halves.restrict(0).sample(100, gen(19))
    label = {}
    for d in (None, 0.5, -0.5):
        out = boundary_edit(den, x0, boundary, d, solver="dpm++2m", steps=12)
        label[d] = float((halves.class_log_posterior(out, path.t_min, path).argmax(1) == 1)
                         .double().mean())
        if d is None:
            assert float((out - x0).square().mean().sqrt()) < 0.05  # the solver's round trip
    assert label[0.5] > 0.95 and label[None] < 0.1 and label[-0.5] < 0.1, label
    with pytest.raises(InterpolantError, match="both labels"):
        fit_boundary(den, x, torch.zeros(200, dtype=torch.long))
