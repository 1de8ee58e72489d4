"""DDPM noise maps (edit-friendly, DPM-Encoder): exact reconstruction, and the statistics the
edit-friendly paper states (not standard normal, not independent across steps) on the oracle."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.inversion import NoiseMap, ddpm_decode, noise_maps

F64 = torch.float64
KINDS = ["edit-friendly", "dpm-encoder"]


@pytest.fixture(scope="module")
def gmm():
    return ip.oracle.GaussianMixture.preset("aniso2d")


@pytest.fixture(scope="module")
def maps(gmm):
    """Noise maps of 3000 exact samples on 20 and 40 steps, both kinds."""
    den = gmm.denoiser(ip.paths.VPLinear())
    x0 = gmm.sample(3000, torch.Generator().manual_seed(3))
    return {(kind, n): noise_maps(den, x0, kind, steps=n, generator=torch.Generator()
                                  .manual_seed(n)).zs for kind in KINDS for n in (20, 40)}


def step_variance(zs):
    return zs.var(dim=1).mean(-1)  # per step, averaged over coordinates


def consecutive_correlation(zs):
    a, b = zs[:-1], zs[1:]
    return (a * b).mean(dim=(1, 2)) / (a.std(dim=(1, 2)) * b.std(dim=(1, 2)))


@torch.no_grad()
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", [ip.paths.VPLinear(), ip.paths.Linear()], ids=["vp", "linear"])
def test_decoding_the_noise_map_reconstructs_exactly(make_mlp, kind, path):
    den = ip.Denoiser(make_mlp(1), path, prediction="v")
    x0 = torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    latent = noise_maps(den, x0, kind, steps=30, generator=torch.Generator().manual_seed(0))
    assert latent.zs.shape == (30, 64, 2)
    assert float((ddpm_decode(den, latent, steps=30) - x0).abs().max()) < 1e-12
    # the latent is not trivial: fresh noise instead of the map lands elsewhere
    fresh = NoiseMap(latent.x, torch.randn_like(latent.zs))
    assert float((ddpm_decode(den, fresh, steps=30) - x0).abs().max()) > 0.1


def test_edit_friendly_maps_are_not_standard_normal_and_their_variance_grows_with_steps(maps):
    """Var z_i ~ 1 + 2 c_x^2 sigma_i^2 / s_i^2 > 1, which grows like 1/h as steps grow; the
    DPM-Encoder's maps tend to N(0, I) where the model is exact (the high-noise steps)."""
    v20, v40 = step_variance(maps["edit-friendly", 20]), step_variance(maps["edit-friendly", 40])
    assert float(v20.min()) > 1.8  # measured 2.19 .. 5.6
    assert float(v40.mean()) - 1.0 > 1.4 * (float(v20.mean()) - 1.0)  # measured 1.68
    enc = step_variance(maps["dpm-encoder", 40])
    assert float((enc[:15] - 1.0).abs().max()) < 0.1  # standard error of a variance: 0.02


def test_edit_friendly_maps_are_correlated_across_steps(maps):
    """x_{i+1}'s own noise enters z_i with + and z_{i+1} with -: consecutive maps correlate
    negatively; the DPM-Encoder's posterior draws leave them uncorrelated (SE ~0.013)."""
    assert float(consecutive_correlation(maps["edit-friendly", 20]).max()) < -0.3
    assert float(consecutive_correlation(maps["dpm-encoder", 20]).abs().max()) < 0.06


@torch.no_grad()
def test_decoding_with_another_class_edits_and_keeps_the_rest(gmm):
    """A class-conditional mixture (4 classes of two components each): decoding the map of
    class-0 data with label 2 lands in class 2."""
    cgmm = ip.oracle.GaussianMixture(gmm.means, gmm.covs, gmm.weights,
                                     labels=torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    path = ip.paths.VPLinear()
    den = cgmm.denoiser(path)
    x0 = cgmm.restrict(0).sample(200, torch.Generator().manual_seed(6))
    src, dst = torch.zeros(200, dtype=torch.long), torch.full((200,), 2)
    latent = noise_maps(den, x0, steps=40, cond=src, generator=torch.Generator().manual_seed(7))
    assert float((ddpm_decode(den, latent, steps=40, cond=src) - x0).abs().max()) < 1e-12
    edited = ddpm_decode(den, latent, steps=40, cond=dst)
    log_post = cgmm.class_log_posterior(edited, path.t_min, path)
    assert float((log_post.argmax(1) == 2).double().mean()) > 0.95


def test_bad_noise_map_requests(gmm):
    den = gmm.denoiser(ip.paths.VPLinear())
    x0 = gmm.sample(4)
    with pytest.raises(InterpolantError, match="eta in"):
        noise_maps(den, x0, eta=0.0)
    with pytest.raises(InterpolantError, match="noise-map kind"):
        noise_maps(den, x0, kind="native")
    latent = noise_maps(den, x0, steps=10)
    with pytest.raises(InterpolantError, match="10 steps"):
        ddpm_decode(den, latent, steps=12)
    with pytest.raises(InterpolantError, match="NoiseMap"):
        ddpm_decode(den, latent.x, steps=10)
