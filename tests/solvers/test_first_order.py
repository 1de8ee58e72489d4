"""The first samplers (ddim, ddpm, euler, heun) against the exact flow, diffusers and the
exact marginals; and the sampling front door's handling of bad input."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from support.orders import reference
from interpolant.errors import InterpolantError

F64 = torch.float64
GMM = ip.oracle.GaussianMixture
N_POINTS = 200


def test_ddim_is_euler_on_rectified_flow():
    """On alpha = 1 - t, sigma = t the DDIM step is exactly the Euler step in t."""
    gmm, path, x1, _ = reference("mix8d", "linear")
    den = gmm.denoiser(path)
    a = ip.sample(den, x1, solver="ddim", steps=7, grid="uniform")
    b = ip.sample(den, x1, solver="euler", steps=7, grid="uniform")
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _diffusers_ddim_setup(steps):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
        beta_end=0.012, set_alpha_to_one=False, timestep_spacing="trailing",
        clip_sample=False, prediction_type="epsilon",
    )
    sched.set_timesteps(steps)
    # the same schedule in float64, and the same grid: index k at t = (k + 1) / N, and the
    # final step to alphas_cumprod[0] (set_alpha_to_one=False), i.e. t = 1 / N
    path = ip.paths.VPDiscrete(sched.alphas_cumprod.to(F64))
    ts = torch.cat([(sched.timesteps.to(F64) + 1) / 1000, torch.tensor([1e-3], dtype=F64)])
    return sched, path, ts


@pytest.mark.parametrize("eta", [0.0, 0.6, 1.0])
def test_ddim_matches_diffusers_ddim_scheduler(eta):
    # diffusers' DDIM steps to k - N // steps whatever its next timestep is; with "trailing"
    # spacing the two agree only when steps divides N (12 steps would step 916 -> 833 and
    # then evaluate at 832): choose a divisor
    steps = 20
    sched, path, ts = _diffusers_ddim_setup(steps)
    gmm = GMM.preset("aniso2d")
    den = gmm.denoiser(path)
    x1 = torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    ours = ip.sample(den, x1, solver="ddim", grid=ts, eta=eta,
                     generator=torch.Generator().manual_seed(2))
    g, x = torch.Generator().manual_seed(2), x1.clone()
    for k in sched.timesteps:
        eps = den(x, (float(k) + 1) / 1000, target="eps")
        noise = torch.randn(x.shape, generator=g, dtype=F64) if eta > 0 else None
        x = sched.step(eps, k, x, eta=eta, variance_noise=noise).prev_sample
    # diffusers takes square roots of float32 alphas_cumprod: agreement to float32 rounding
    torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-5)
    assert (ours - x).abs().max() < 1e-3 * (ours - x1).abs().max()


def test_ddpm_matches_the_exact_marginal():
    """Started from the exact marginal at t = 1, ancestral sampling keeps the mean exact at
    every step; the covariance carries an O(1/steps) deficit, below the Monte Carlo error
    at 200 steps; the mean responsibility of each component is its weight exactly."""
    gmm, path = GMM.preset("aniso2d"), ip.paths.VPLinear()
    n = 10_000
    g = torch.Generator().manual_seed(3)
    x1 = gmm.marginal(path, 1.0).sample(n, g)
    x = ip.sample(gmm.denoiser(path), x1, solver="ddpm", steps=200, grid="uniform", generator=g)
    target = gmm.marginal(path, path.t_min)
    comp = target.means * target.weights[:, None] / target.weights.sum()
    mean = comp.sum(0)
    centred = target.means - mean
    cov = torch.einsum("k,kde->de", target.weights / target.weights.sum(),
                       target.covs + centred[:, :, None] * centred[:, None, :])
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert torch.all((x.mean(0) - mean).abs() < 4 * se_mean)
    se_cov = torch.sqrt((torch.diagonal(cov)[:, None] * torch.diagonal(cov)[None] + cov**2) / n)
    # a mixture's 4th moments exceed the Gaussian ones; 6 Gaussian SE covers that here
    assert torch.all((torch.cov(x.T) - cov).abs() < 6 * se_cov)
    log_joint, _, _ = target._components(x, 1.0, 0.0)
    resp = torch.softmax(log_joint, dim=1).mean(0)
    w = target.weights / target.weights.sum()
    assert torch.all((resp - w).abs() < 4 * 0.5 / math.sqrt(n))


def test_a_sample_does_not_depend_on_its_batch():
    gmm, path = GMM.preset("aniso2d"), ip.paths.VPCosine()
    den = gmm.denoiser(path)
    x1 = torch.randn(4, 2, dtype=F64, generator=torch.Generator().manual_seed(4))
    gens = lambda: [torch.Generator().manual_seed(100 + i) for i in range(4)]  # noqa: E731
    batch = ip.sample(den, x1, solver="ddpm", steps=10, generator=gens())
    alone = ip.sample(den, x1[2:3], solver="ddpm", steps=10, generator=gens()[2:3])
    torch.testing.assert_close(batch[2:3], alone, rtol=0, atol=0)


def test_nfe_is_counted_per_run():
    gmm, path, x1, _ = reference("aniso2d", "vp-linear")
    den = gmm.denoiser(path)
    states = list(ip.trajectory(den, x1, solver="heun", steps=6))
    assert [s.step for s in states] == list(range(1, 7)) and states[-1].nfe == 12
    assert list(ip.trajectory(den, x1, solver="ddim", steps=5))[-1].nfe == 5
    assert den.nfe == 17


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(solver="dpm++9m"), "unknown solver"),
        (dict(solver="ddim", order=2), "no option 'order'"),
        (dict(solver="ddim", eta=1.5), r"\[0, 1\]"),
        (dict(solver="ddpm", eta=0.5), "fixes eta"),
        (dict(steps=3, grid=torch.tensor([1.0, 0.5, 0.1])), "disagrees"),
        (dict(grid=torch.tensor([0.1, 0.5, 1.0])), "decreasing"),
        (dict(grid="cosine"), "unknown grid"),
        (dict(steps=0), "positive integer"),
        (dict(t_start=0.5, t_end=0.7), "t_end < t_start"),
    ],
)
def test_bad_sampling_arguments_get_clear_errors(kwargs, words):
    gmm, path, x1, _ = reference("aniso2d", "vp-linear")
    with pytest.raises(InterpolantError, match=words):
        ip.sample(gmm.denoiser(path), x1, **kwargs)


def test_bad_starts_get_clear_errors():
    path = ip.paths.VPLinear()
    net = torch.nn.Linear(2, 2)
    den = ip.Denoiser(lambda x, t, c: net(x), path)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = net

        def forward(self, x, t, cond=None):
            return self.layer(x)

    den_module = ip.Denoiser(Net(), path)
    with pytest.raises(InterpolantError, match="floating-point"):
        ip.sample(den, torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(InterpolantError, match="cast"):
        ip.sample(den_module, torch.zeros(3, 2, dtype=F64))
    with pytest.raises(InterpolantError, match="denoiser"):
        ip.sample(net, torch.zeros(3, 2))
