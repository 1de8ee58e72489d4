"""Post-training quantization: 32 bits is the identity, the error falls with the bit width,
int8 kernels stay close, calibration covers every step, and widths without kernels are refused."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.acceleration import (accelerate, calibration_inputs, fake_quantize, network_of,
                                      quantize_int8, round_to_bits)
from interpolant.errors import InterpolantError

KW = {"solver": "dpm++2m", "steps": 6}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_32_bits_is_the_identity_to_float_precision(unet_denoiser, images):
    cal = calibration_inputs(unet_denoiser, images, per_call=4, **KW)
    net = network_of(unet_denoiser)
    quant = fake_quantize(net, 32, activations=True, calibration=cal)
    for p, q in zip(net.parameters(), quant.parameters()):
        assert (p - q).abs().max() <= 1e-6 * p.abs().max()
    x, t, _ = cal[3]
    with torch.no_grad():
        assert _rel(quant(x, t), net(x, t)) < 1e-6
    w = torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose(round_to_bits(w, 32, per_channel=True), w, rtol=0, atol=1e-9)


def test_error_falls_with_the_bit_width(unet_denoiser, images):
    with torch.no_grad():
        plain = ip.sample(unet_denoiser, images, **KW)
        errs = [_rel(ip.sample(accelerate(unet_denoiser, quantize=f"fake{b}"), images, **KW),
                     plain) for b in (3, 6, 12)]
    assert errs[0] > errs[1] > errs[2] > 0.0
    assert errs[2] < 1e-2


def test_int8_kernels_stay_close(unet_denoiser, images):
    quant = quantize_int8(network_of(unet_denoiser))
    kinds = {type(m).__module__ for m in quant.modules()}
    assert any("quantized" in k for k in kinds)
    with torch.no_grad():
        plain = ip.sample(unet_denoiser, images, **KW)
        fast = ip.sample(accelerate(unet_denoiser, quantize="int8"), images, **KW)
    assert 0.0 < _rel(fast, plain) < 0.05


def test_calibration_is_drawn_across_the_trajectory(unet_denoiser, images):
    cal = calibration_inputs(unet_denoiser, images, per_call=2, **KW)
    assert len(cal) == 6 and all(len(x) == 2 for x, _, _ in cal)
    times = [float(t[0]) for _, t, _ in cal]
    assert times == sorted(times, reverse=True) and len(set(times)) == 6
    with pytest.raises(InterpolantError, match="needs calibration"):
        fake_quantize(network_of(unet_denoiser), 8, activations=True)


def test_bit_widths_without_kernels_are_refused(unet_denoiser):
    with pytest.raises(InterpolantError, match="int8 only"):
        accelerate(unet_denoiser, quantize="int4")
    with pytest.raises(InterpolantError, match="2 to 32 bits"):
        accelerate(unet_denoiser, quantize="fake1")
    with pytest.raises(InterpolantError, match="unknown quantization"):
        accelerate(unet_denoiser, quantize="fp8")
    with pytest.raises(InterpolantError, match="float32"):
        quantize_int8(network_of(unet_denoiser).double())
