"""Time-feature-aware quantization (TFMQ-DM): the temporal layers are found from the network's
behaviour alone, and kept exact, so the temporal features of a 4-bit network are bitwise the
float ones while every other layer is rounded."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.acceleration import (accelerate, calibration_inputs, fake_quantize, network_of,
                                      temporal_layers)
from interpolant.errors import InterpolantError

KW = {"solver": "dpm++2m", "steps": 4}


def outputs_of(net: torch.nn.Module, names: list[str], x, t) -> dict[str, torch.Tensor]:
    got: dict[str, torch.Tensor] = {}
    modules = dict(net.named_modules())
    handles = [modules[n].register_forward_hook(
        lambda m, a, out, n=n: got.setdefault(n, out.clone())) for n in names]
    with torch.no_grad():
        net(x, t)
    for h in handles:
        h.remove()
    return got


@pytest.mark.parametrize("kind", ["unet", "dit"])
def test_temporal_layers_are_those_that_see_only_the_time(kind, unet_denoiser, dit_denoiser,
                                                          images):
    den = unet_denoiser if kind == "unet" else dit_denoiser
    net = network_of(den)
    cal = calibration_inputs(den, images, per_call=3, **KW)
    found = temporal_layers(net, *cal[0])
    linear = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Linear)]
    by_name = [n for n in linear
               if n.startswith("time_embed.") or n.endswith((".emb", "modulation"))]
    assert found == by_name and len(found) >= 6
    quant = fake_quantize(net, 4, calibration=cal, time_aware=True)
    naive = fake_quantize(net, 4, calibration=cal)
    x, t, _ = cal[2]
    exact = outputs_of(net, found, x, t)
    kept, rounded = outputs_of(quant, found, x, t), outputs_of(naive, found, x, t)
    assert all(torch.equal(kept[n], exact[n]) for n in found)
    assert all(not torch.equal(rounded[n], exact[n]) for n in found)
    others = [n for n, m in net.named_modules()
              if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and n not in found]
    qmods, pmods = dict(quant.named_modules()), dict(net.named_modules())
    assert others and all(not torch.equal(qmods[n].weight, pmods[n].weight) for n in others)


def test_time_aware_quantization_needs_calibration(unet_denoiser):
    with pytest.raises(InterpolantError, match="time-aware quantization needs calibration"):
        fake_quantize(network_of(unet_denoiser), 4, time_aware=True)


def test_accelerate_names_time_aware_modes(unet_denoiser, images):
    cal = calibration_inputs(unet_denoiser, images, per_call=3, **KW)
    direct = fake_quantize(network_of(unet_denoiser), 5, activations=True, calibration=cal,
                           time_aware=True)
    named = network_of(accelerate(unet_denoiser, quantize="fake5at", calibration=cal))
    x, t, _ = cal[1]
    with torch.no_grad():
        assert torch.equal(named(x, t), direct(x, t))
    with pytest.raises(InterpolantError, match="time-aware quantization needs calibration"):
        accelerate(unet_denoiser, quantize="fake4t")
    with pytest.raises(InterpolantError, match="unknown quantization 'fake4x'"):
        accelerate(unet_denoiser, quantize="fake4x")
    assert ip.acceleration.quantization("fake6t") == (6, False, True)
