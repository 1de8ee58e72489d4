"""HarmoniCa's trained router: its two limits are exact (no price: the plain network; a huge
price: reuse everywhere after call 0, as block caching with only call 0 full), and at equal
compute it beats the searched schedule it starts from on a small DiT."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.acceleration import accelerate, learn_schedule
from interpolant.acceleration.router import RoutedDiT, routed, train_router
from interpolant.errors import InterpolantError

KW = {"solver": "dpm++2m", "steps": 8}


@pytest.fixture
def starts():
    return torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_without_a_price_the_router_recomputes_everywhere(dit_denoiser, starts):
    router = train_router(dit_denoiser, starts, lam=0.0, iters=4, **KW)
    assert bool(router.recompute().all()) and router.compute == 1.0
    with torch.no_grad():
        assert torch.equal(ip.sample(routed(dit_denoiser, router), starts, **KW),
                           ip.sample(dit_denoiser, starts, **KW))


def test_with_a_huge_price_the_router_reuses_everywhere_it_may(dit_denoiser, starts):
    router = train_router(dit_denoiser, starts, lam=1e6, iters=4, **KW)
    calls = router.logits.shape[0]
    assert router.recompute()[0].all() and not router.recompute()[1:].any()
    assert router.compute == pytest.approx(1 / calls)
    only_first = accelerate(dit_denoiser, cache="block", full_calls=[0])
    with torch.no_grad():
        assert torch.equal(ip.sample(routed(dit_denoiser, router), starts, **KW),
                           ip.sample(only_first, starts, **KW))


def test_at_equal_compute_the_router_beats_the_searched_schedule(dit_denoiser, starts):
    """Measured (DiT 32 wide, 3 blocks, 8 calls; 15 of 24 block evaluations): final-sample
    error 1.03e-3 with the searched full calls, 7.5e-4 with the router trained from them (40
    steps); with 9 and 12 evaluations it keeps the searched schedule (equal), with 18 it
    reaches 6.5e-5 against 8.5e-5."""
    found = learn_schedule(dit_denoiser, starts, full=5, cache="block", **KW)
    init = torch.zeros(found.calls, 3, dtype=torch.bool)
    init[found.full_calls] = True
    router = train_router(dit_denoiser, starts, lam=0.0, init=init, budget=15, **KW)
    assert router.compute <= 15 / 24
    assert router.error < 0.85 * found.error


def test_the_router_refuses_bad_input(dit_denoiser, unet_denoiser, starts):
    with pytest.raises(InterpolantError, match="lam"):
        train_router(dit_denoiser, starts, lam=-1.0, **KW)
    with pytest.raises(InterpolantError, match=r"budget must be 3\.\.24"):
        train_router(dit_denoiser, starts, lam=0.0, budget=2, **KW)
    with pytest.raises(InterpolantError, match="init must have shape"):
        train_router(dit_denoiser, starts, lam=0.0, init=torch.ones(3, 3), **KW)
    with pytest.raises(InterpolantError, match="needs a transformer with .blocks"):
        RoutedDiT(unet_denoiser.model, torch.zeros(8, 3))
