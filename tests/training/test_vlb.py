"""Improved DDPM (Nichol & Dhariwal 2021): learned-range sampling against diffusers, and the
variational bound against its closed form on a Gaussian data law."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.solvers.ddpm_learned import (WITH_RANGE, DDPMLearned, LearnedRangeDenoiser,
                                              posterior_step)

F64 = torch.float64


def _stand_in(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """A deterministic network of the DDPM index ``k``: (eps, r), r in (-1, 1)."""
    kk = k.view(-1, *([1] * (x.ndim - 1)))
    eps = 0.7 * torch.tanh(x) + 0.1 * torch.sin(kk / 97.0)
    r = torch.tanh(torch.cos(3.0 * x + kk / 300.0))
    return torch.cat([eps, r], dim=1)


@pytest.mark.parametrize("n,steps,clip", [(100, 100, None), (1000, 50, None), (1000, 50, 1.0)])
def test_learned_range_sampling_matches_diffusers(n, steps, clip):
    """Every index of a short schedule, and diffusers' 'leading' strided steps of the default
    one, with and without clipping x0: the same samples to float64 rounding."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=n, variance_type="learned_range",
                                    clip_sample=clip is not None, clip_sample_range=clip or 1.0)
    sched.alphas_cumprod = sched.alphas_cumprod.to(F64)  # float64 arithmetic, for parity
    sched.one = torch.tensor(1.0, dtype=F64)
    sched.set_timesteps(steps)
    x1 = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    x, gen = x1.clone(), torch.Generator().manual_seed(5)
    for k in sched.timesteps:
        out = _stand_in(x, torch.full((x.shape[0],), float(k), dtype=F64))
        x = sched.step(out, int(k), x, generator=gen).prev_sample
    path = ip.paths.VPDiscrete(sched.alphas_cumprod)
    ts = torch.tensor([(int(k) + 1) / n for k in sched.timesteps] + [0.0], dtype=F64)
    den = LearnedRangeDenoiser(_stand_in, path, time_scale=n, time_shift=-1)
    ours = ip.sample(den, x1, solver=DDPMLearned(clip=clip), grid=ts,
                     generator=torch.Generator().manual_seed(5))
    assert den.nfe == steps
    torch.testing.assert_close(ours, x, rtol=1e-11, atol=1e-12)


def test_posterior_step_is_ddpm_on_a_vp_schedule():
    """c_0, c_x, beta, beta~ in path form against Ho et al.'s eq. 7 on alphas_cumprod."""
    path = ip.paths.VPDiscrete.from_betas("linear", 1000)
    ac = path.alphas_cumprod
    for k, j in ((999, 979), (500, 499), (3, 0)):
        st = posterior_step(path, (k + 1) / 1000, (j + 1) / 1000)
        a_s, a_t = float(ac[k]), float(ac[j])
        beta = 1 - a_s / a_t
        want = (math.sqrt(a_t) * beta / (1 - a_s), math.sqrt(a_s / a_t) * (1 - a_t) / (1 - a_s),
                beta, (1 - a_t) / (1 - a_s) * beta)
        for got, ref in zip(st[:4], want):
            assert math.isclose(got, ref, rel_tol=1e-11)


def test_the_wrapper_refuses_a_network_without_the_variance_half():
    den = LearnedRangeDenoiser(lambda x, t: x, ip.paths.VPLinear())
    with pytest.raises(InterpolantError, match="twice the channels"):
        den(torch.zeros(2, 3, dtype=F64), 0.5, None, WITH_RANGE)
