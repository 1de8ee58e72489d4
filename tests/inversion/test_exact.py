"""Exact inversions (BDIA, EDICT): algebraic round trips in float64 on a random network, and
BDIA with gamma = 0 is DDIM."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.inversion import bdia_invert, bdia_sample, edict_invert, edict_sample

F64 = torch.float64


@pytest.fixture(scope="module")
def den(make_mlp):
    return ip.Denoiser(make_mlp(), ip.paths.VPLinear(), prediction="eps")


@pytest.fixture(scope="module")
def x0():
    return ip.oracle.GaussianMixture.preset("aniso2d").sample(32, torch.Generator().manual_seed(1))


def max_err(a, b):
    return float((a - b).abs().max())


@torch.no_grad()
@pytest.mark.parametrize("gamma", [1.0, 0.96])
def test_bdia_round_trip_is_exact_in_float64(den, x0, gamma):
    latent = bdia_invert(den, x0, gamma=gamma, steps=50)
    assert max_err(bdia_sample(den, latent, gamma=gamma, steps=50), x0) < 1e-10
    ddim = ip.invert(den, x0, solver="ddim", steps=50)  # the inexact inversion, for contrast
    assert max_err(ip.sample(den, ddim, solver="ddim", steps=50), x0) > 1e-4


@torch.no_grad()
def test_bdia_with_gamma_zero_is_ddim(den):
    z = torch.randn(16, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    ours = bdia_sample(den, z, gamma=0.0, steps=20, grid="logsnr")
    ddim = ip.sample(den, z, solver="ddim", steps=20, grid="logsnr")
    assert max_err(ours, ddim) < 1e-12
    # from a pair the first state is used as given (not a DDIM step): gamma = 0 ignores z_0
    first = ip.trajectory(den, z, solver="ddim", steps=20, grid="logsnr").__next__().x
    assert max_err(bdia_sample(den, (z, first), gamma=0.0, steps=20, grid="logsnr"), ddim) < 1e-12


@torch.no_grad()
def test_bdia_samples_approximate_the_exact_flow():
    """gamma = 1 integrates each interval [t_{i-1}, t_{i+1}] in two halves: on the oracle the
    result converges to the exact probability flow as steps grow."""
    gmm = ip.oracle.GaussianMixture.preset("gauss2d")
    path = ip.paths.VPLinear()
    z = torch.randn(32, 2, dtype=F64, generator=torch.Generator().manual_seed(4))
    ref = gmm.flow(path, z)
    errs = [max_err(bdia_sample(gmm.denoiser(path), z, gamma=1.0, steps=n, grid="logsnr"), ref)
            for n in (20, 40, 80)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.02, errs


@torch.no_grad()
@pytest.mark.parametrize("form,tol", [("noise", 1e-10), ("data", 1e-6)])
def test_edict_round_trip_is_exact_in_float64(den, x0, form, tol):
    """The paper's (noise) form to 1e-10; the data form divides by sigma_t / sigma_s, which
    amplifies rounding by up to sigma(1) / sigma(t_min) ~ 70 on top of the mixing's p^-2 per
    step (measured 5e-8): still exact algebra, where an error in a formula gives O(1)."""
    latent = edict_invert(den, x0, steps=50, form=form)
    x, y = edict_sample(den, latent, steps=50, form=form)
    assert max_err(x, x0) < tol and max_err(y, x0) < tol
    assert max_err(latent[0], latent[1]) > 1e-3  # two genuinely different sequences


@torch.no_grad()
def test_edict_data_form_inverts_into_pure_noise_and_the_noise_form_refuses(make_mlp):
    path = ip.paths.Linear()  # alpha(1) = 0
    den = ip.Denoiser(make_mlp(3), path, prediction="velocity")
    x0 = torch.randn(8, 2, dtype=F64, generator=torch.Generator().manual_seed(5))
    latent = edict_invert(den, x0, steps=30, form="data")
    assert max_err(edict_sample(den, latent, steps=30, form="data")[0], x0) < 1e-8
    with pytest.raises(InterpolantError, match="form='data'"):
        edict_invert(den, x0, steps=30)


def test_bad_options_are_refused(den, x0):
    with pytest.raises(InterpolantError, match="gamma = 0 is DDIM"):
        bdia_invert(den, x0, gamma=0.0)
    with pytest.raises(InterpolantError, match=r"\[0, 1\]"):
        bdia_sample(den, x0, gamma=1.5)
    with pytest.raises(InterpolantError, match="mixing p"):
        edict_invert(den, x0, p=0.0)
    with pytest.raises(InterpolantError, match="pair"):
        edict_sample(den, (x0, x0[:3]))
    with pytest.raises(InterpolantError, match="sigma > 0"):
        bdia_invert(den, x0, t_data=0.0)
