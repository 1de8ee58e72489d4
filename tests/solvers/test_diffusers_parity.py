"""Parity of the exponential-integrator solvers with diffusers' schedulers.

Same discrete schedule (our ``VPDiscrete`` built from the scheduler's own ``alphas_cumprod``),
same grid (diffusers' timestep ``k`` is our ``t = (k + 1) / N``; its last sigma is
``final_sigmas_type="sigma_min"``, i.e. ``alphas_cumprod[0]`` at ``t = 1 / N = path.t_min``, so
both end at the same time; with ``"zero"`` diffusers would step to sigma = 0), and one exact
Gaussian-mixture eps-network for both. diffusers keeps its sigmas in float32 and casts the
sample to float32 inside ``step``, so agreement is to float32 rounding: we ask for a max
difference below 2e-5 of the sample scale, and check that a different method (the other 3M
form, another order) is far outside it.
"""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.oracle import GaussianMixture
from interpolant.solvers.base import Model
from interpolant.solvers.dpm import singlestep, take
from interpolant.solvers.exponential import point

schedulers = pytest.importorskip("diffusers.schedulers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 notes in diffusers

F64 = torch.float64
N = 1000
TOL = 2e-5
BETAS = {"num_train_timesteps": N, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
         "beta_end": 0.012}


def _setup(cls, steps, preset="mix8d", **config):
    sched = cls(**BETAS, **config)
    sched.set_timesteps(steps)
    path = ip.paths.VPDiscrete(sched.alphas_cumprod)
    ts = torch.cat([(sched.timesteps.to(F64) + 1) / N, torch.tensor([1.0 / N], dtype=F64)])
    # the grid mapping is right: diffusers' sigmas are sigma / alpha at our times
    assert torch.allclose(sched.sigmas.to(F64), path.sigma(ts) / path.alpha(ts), rtol=1e-6)
    gmm = GaussianMixture.preset(preset)

    def eps_net(x, t, cond=None):
        a, s = path.alpha(t), path.sigma(t)
        x0 = gmm.posterior_mean(x, a, s)
        if isinstance(t, torch.Tensor):
            a, s = a[:, None], s[:, None]
        return (x - a * x0) / s

    x1 = torch.randn(16, gmm.dim, generator=torch.Generator().manual_seed(0), dtype=F64)
    return sched, path, ts, eps_net, x1


def _diffusers(sched, eps_net, x, noises=None):
    for i, k in enumerate(sched.timesteps):
        eps = eps_net(x, (int(k) + 1) / N)
        extra = {"variance_noise": noises[i]} if noises is not None else {}
        x = sched.step(eps, k, x, **extra).prev_sample.to(F64)
    return x


def _close(ours, theirs):
    return (ours - theirs).abs().max().item() < TOL * theirs.abs().max().item()


DPMPP = [  # (diffusers config, our solver, our options)
    ({"solver_order": 2}, "dpm++2m", {}),
    ({"solver_order": 2, "solver_type": "heun"}, "dpm++2m", {"solver_type": "heun"}),
    ({"solver_order": 3}, "dpm++3m", {"third_order": "published"}),
]


@pytest.mark.parametrize("steps", [8, 20])
@pytest.mark.parametrize(("config", "solver", "opts"), DPMPP, ids=["2m", "2m-heun", "3m"])
def test_dpmsolver_multistep(steps, config, solver, opts):
    sched, path, ts, eps_net, x1 = _setup(
        schedulers.DPMSolverMultistepScheduler, steps, algorithm_type="dpmsolver++",
        final_sigmas_type="sigma_min", **config)
    theirs = _diffusers(sched, eps_net, x1)
    den = ip.Denoiser(eps_net, path, prediction="eps")
    assert _close(ip.sample(den, x1, solver, grid=ts, **opts), theirs)
    if solver == "dpm++3m":  # the Taylor-consistent form is a different method
        assert not _close(ip.sample(den, x1, solver, grid=ts, third_order="consistent"), theirs)


@pytest.mark.parametrize("steps", [8, 20])
def test_sde_dpmsolver_2m_with_shared_noise(steps):
    sched, path, ts, eps_net, x1 = _setup(
        schedulers.DPMSolverMultistepScheduler, steps, algorithm_type="sde-dpmsolver++",
        solver_order=2, final_sigmas_type="sigma_min")
    g = torch.Generator().manual_seed(1)
    noises = [torch.randn(x1.shape, generator=g, dtype=F64) for _ in range(steps)]
    theirs = _diffusers(sched, eps_net, x1, noises)
    den = ip.Denoiser(eps_net, path, prediction="eps")
    ours = ip.sample(den, x1, "dpm++2m-sde", grid=ts, generator=torch.Generator().manual_seed(1))
    assert _close(ours, theirs)


def test_dpmsolver_singlestep_2s():
    """diffusers' singlestep scheduler takes its intermediate point from its own grid (orders
    1, 2, 1, 2, ...), where the paper and our ``dpm++2s`` take the log-SNR midpoint; the update
    itself is the same, so we compare our step function at diffusers' ratio ``r``."""
    steps = 10
    sched, path, ts, eps_net, x1 = _setup(
        schedulers.DPMSolverSinglestepScheduler, steps, solver_order=2,
        algorithm_type="dpmsolver++", lower_order_final=False, final_sigmas_type="sigma_min")
    theirs = _diffusers(sched, eps_net, x1)
    den = ip.Denoiser(eps_net, path, prediction="eps")
    model = Model(lambda x, t, target: den(x, t, None, target))
    x = x1
    for j in range(0, steps, 2):
        s, mid, t = (point(path, float(ts[j + k])) for k in range(3))
        step = singlestep("data", path, s, t, 2, ratios=((mid.lam - s.lam) / (t.lam - s.lam),))
        x, _ = take(step, model, x)
    assert _close(x, theirs)


UNIPC = [(2, "bh2"), (2, "bh1"), (3, "bh2"), (3, "bh1")]


@pytest.mark.parametrize("steps", [10, 20])
@pytest.mark.parametrize(("order", "variant"), UNIPC, ids=[f"{o}-{v}" for o, v in UNIPC])
def test_unipc(steps, order, variant):
    """diffusers' UniPC lowers the final orders on every grid (lower_order_final); ours only
    below 15 steps, so at 20 steps both run with lower_order_final=False."""
    few = steps < 15
    sched, path, ts, eps_net, x1 = _setup(
        schedulers.UniPCMultistepScheduler, steps, solver_order=order, solver_type=variant,
        predict_x0=True, lower_order_final=few, final_sigmas_type="sigma_min")
    theirs = _diffusers(sched, eps_net, x1)
    den = ip.Denoiser(eps_net, path, prediction="eps")
    ours = ip.sample(den, x1, "unipc", grid=ts, order=order, variant=variant,
                     lower_order_final=few)
    assert _close(ours, theirs)
    other = ip.sample(den, x1, "unipc", grid=ts, order=order, variant=variant,
                      lower_order_final=few, corrector=False)
    assert not _close(other, theirs)


@pytest.mark.parametrize("steps", [10, 20])
@pytest.mark.parametrize("order", [2, 3])
def test_deis(steps, order):
    sched, path, ts, eps_net, x1 = _setup(
        schedulers.DEISMultistepScheduler, steps, solver_order=order)
    theirs = _diffusers(sched, eps_net, x1)
    den = ip.Denoiser(eps_net, path, prediction="eps")
    assert _close(ip.sample(den, x1, "deis", grid=ts, order=order), theirs)
    assert not _close(ip.sample(den, x1, "deis", grid=ts, order=order - 1), theirs)
