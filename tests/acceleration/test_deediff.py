"""DeeDiff's trained uncertainty heads: threshold 0 is bitwise the full network, and the heads'
predicted exit errors rank like the measured ones on inputs they were not trained on."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.acceleration import calibration_inputs
from interpolant.acceleration.deediff import (UncertainExitDiT, exit_states, train_heads,
                                              uncertain_exits)
from interpolant.errors import InterpolantError
from interpolant.models import DiT

from .conftest import randomised

KW = {"solver": "dpm++2m", "steps": 8}


def ranks(v: torch.Tensor) -> torch.Tensor:
    return v.argsort().argsort().double()


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = ranks(a) - ranks(a).mean(), ranks(b) - ranks(b).mean()
    return float(ra @ rb / (ra.norm() * rb.norm()))


@pytest.fixture(scope="module")
def trained():
    net = randomised(DiT(hidden=32, depth=3, heads=2))
    den = ip.Denoiser(net, ip.paths.VPLinear(), prediction="v")
    g = torch.Generator().manual_seed(1)
    x, held_out = torch.randn(16, 1, 8, 8, generator=g), torch.randn(16, 1, 8, 8, generator=g)
    return net, den, train_heads(den, x, per_call=16, iters=300, **KW), held_out


def test_threshold_zero_is_bitwise_the_full_network(trained):
    net, den, heads, x = trained
    fast = uncertain_exits(den, heads, 0.0)
    with torch.no_grad():
        assert torch.equal(ip.sample(fast, x, **KW), ip.sample(den, x, **KW))
    assert set(fast.model.exits) == {3}


def test_predicted_errors_rank_like_the_measured_ones(trained):
    """Measured on held-out starts (network seeds 0 and 1): Spearman 0.96 over all exits and
    times, 0.73 to 0.89 within each exit; untrained heads: -0.78 and -0.55 over all, -0.57 to
    0.12 within an exit."""
    net, den, heads, x = trained
    pred, measured, exit_of = [], [], []
    with torch.no_grad():
        for xs, ts, cond in calibration_inputs(den, x, 16, **KW):
            states, c, errors = exit_states(net, xs, ts, cond)
            for k in range(3):
                pred.append(heads(k, states[k], c))
                measured.append(errors[:, k])
                exit_of.append(torch.full((len(xs),), k))
    pred, measured, exit_of = torch.cat(pred), torch.cat(measured), torch.cat(exit_of)
    assert spearman(pred, measured) > 0.9
    for k in range(3):
        assert spearman(pred[exit_of == k], measured[exit_of == k]) > 0.6


def test_a_large_threshold_exits_before_the_first_block(trained):
    net, den, heads, x = trained
    fast = uncertain_exits(den, heads, 1e9)
    with torch.no_grad():
        out = fast.model(x, torch.full((16,), 0.5))
        h, c, _, _ = net.embed(x, torch.full((16,), 0.5), None)
        assert torch.equal(out, net.readout(h, c))
    assert fast.model.exits == [0] * 16


def test_each_sample_leaves_where_its_own_head_says(trained):
    """Every sample's output is the head's readout of its tokens after the blocks it ran
    (the first k with predicted error under the threshold), whatever the others did."""
    net, den, heads, x = trained
    t = torch.linspace(0.2, 0.9, 16)
    with torch.no_grad():
        states, c, _ = exit_states(net, x, t)
        predicted = torch.stack([heads(k, states[k], c).exp() for k in range(3)], dim=1)
        threshold = float(predicted.median())
        below = torch.cat([predicted < threshold, torch.ones(16, 1, dtype=torch.bool)], dim=1)
        depth = below.int().argmax(dim=1)  # the first k under it (3: none)
        assert len(set(depth.tolist())) > 1  # the samples leave at different depths
        fast = UncertainExitDiT(net, heads, threshold)
        out = fast(x, t)
        for i, k in enumerate(depth.tolist()):
            expected = net.readout(states[k][i:i + 1], c[i:i + 1])
            torch.testing.assert_close(out[i:i + 1], expected, rtol=1e-5, atol=1e-6)
    assert sorted(fast.exits) == sorted(depth.tolist())


def test_uncertainty_heads_refuse_bad_input(trained, unet_denoiser):
    net, den, heads, x = trained
    with pytest.raises(InterpolantError, match="threshold must be a finite number"):
        uncertain_exits(den, heads, -0.1)
    with pytest.raises(InterpolantError, match="need a transformer with .blocks"):
        train_heads(unet_denoiser, x, iters=1, **KW)
    with pytest.raises(InterpolantError, match="3 uncertainty heads for a DiT of depth 2"):
        UncertainExitDiT(DiT(hidden=32, depth=2, heads=2), heads, 0.1)
