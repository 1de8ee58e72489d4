"""DeepCache, encoder propagation (Faster Diffusion) and block caching: interval 1 is the network itself, full calls are exact, the
per-call error is reported, a new run restarts the schedule, and bad networks are refused."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.acceleration import CacheSchedule, accelerate, step_errors
from interpolant.errors import InterpolantError

KW = {"solver": "dpm++2m", "steps": 7}


@pytest.mark.parametrize("kind", ["deepcache", "encoder", "block"])
def test_interval_one_is_the_identity(kind, unet_denoiser, dit_denoiser, images):
    den = dit_denoiser if kind == "block" else unet_denoiser
    with torch.no_grad():
        plain = ip.sample(den, images, **KW)
        cached = ip.sample(accelerate(den, cache=kind, interval=1), images, **KW)
    assert torch.equal(plain, cached)


@pytest.mark.parametrize("kind", ["deepcache", "encoder", "block"])
def test_error_per_call_is_zero_exactly_at_full_calls(kind, unet_denoiser, dit_denoiser, images):
    den = dit_denoiser if kind == "block" else unet_denoiser
    errors = step_errors(den, accelerate(den, cache=kind, interval=3), images, **KW)
    assert len(errors) == 7
    assert all(e == 0.0 for e in errors[0::3])
    assert all(0.0 < e < 1.0 for i, e in enumerate(errors) if i % 3)


def test_a_new_run_restarts_the_schedule(unet_denoiser, images):
    fast = accelerate(unet_denoiser, cache="deepcache", interval=2)
    with torch.no_grad():
        first = ip.sample(fast, images, **KW)
        again = ip.sample(fast, images, **KW)
        other_batch = ip.sample(fast, images[:3], **KW)
    assert torch.equal(first, again)
    assert torch.allclose(other_batch, first[:3], atol=1e-5)
    schedule = CacheSchedule(full_calls=[2])
    t = torch.ones(1)
    assert [schedule.is_full(images, t * (1 - k / 10)) for k in range(4)] == [True, False, True,
                                                                               False]


def test_networks_without_the_blocks_are_refused(unet_denoiser, dit_denoiser):
    with pytest.raises(InterpolantError, match="DeepCache needs a U-Net"):
        accelerate(dit_denoiser, cache="deepcache")
    with pytest.raises(InterpolantError, match="encoder propagation needs"):
        accelerate(dit_denoiser, cache="encoder")
    with pytest.raises(InterpolantError, match="block caching needs a transformer"):
        accelerate(unet_denoiser, cache="block")
    with pytest.raises(InterpolantError, match="interval must be an integer"):
        accelerate(unet_denoiser, cache="deepcache", interval=0)
    with pytest.raises(InterpolantError, match="unknown cache"):
        accelerate(unet_denoiser, cache="fora")
