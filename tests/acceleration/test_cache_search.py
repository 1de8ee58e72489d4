"""A learned cache schedule (HarmoniCa's objective, by search): every call full is the plain
network; at the same number of full calls the learned schedule's final error is well below the
uniform one it starts from (over 3x here), its reported error is the sampler's, and the search
is deterministic."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.acceleration import accelerate, learn_schedule
from interpolant.errors import InterpolantError

KW = {"solver": "dpm++2m", "steps": 9}


@pytest.mark.parametrize("kind", ["deepcache", "block"])
def test_learned_schedule_beats_or_equals_uniform_at_equal_cost(kind, unet_denoiser,
                                                                dit_denoiser, images):
    den = dit_denoiser if kind == "block" else unet_denoiser
    found = learn_schedule(den, images, full=3, cache=kind, **KW)
    assert found.calls == 9 and len(found.full_calls) == 3 and found.full_calls[0] == 0
    assert 0 < found.error < 0.5 * found.uniform_error  # (never worse by construction)
    with torch.no_grad():  # the reported error is that of sampling with the schedule
        plain = ip.sample(den, images, **KW).double()
        out = ip.sample(accelerate(den, cache=kind, full_calls=found.full_calls), images,
                        **KW).double()
    assert float((out - plain).norm() / plain.norm()) == pytest.approx(found.error, rel=1e-9)
    assert learn_schedule(den, images, full=3, cache=kind, **KW) == found


def test_every_call_full_is_the_plain_network(unet_denoiser, images):
    found = learn_schedule(unet_denoiser, images, full=9, **KW)
    assert found.full_calls == list(range(9)) and found.error == 0.0 == found.uniform_error


def test_a_budget_outside_the_run_is_refused(unet_denoiser, images):
    for full in (0, 10):
        with pytest.raises(InterpolantError, match="full must be an integer in 1..9"):
            learn_schedule(unet_denoiser, images, full=full, **KW)
