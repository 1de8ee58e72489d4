"""torch.compile with a fallback that warns instead of crashing, and bf16 inference."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.acceleration import accelerate, compile_network, network_of
from interpolant.models import MLP

KW = {"solver": "dpm++2m", "steps": 5}


def test_compile_unavailable_falls_back_with_a_warning(monkeypatch, unet_denoiser, images):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        fast = accelerate(unet_denoiser, compile=True, cache="deepcache", interval=1)
    with torch.no_grad():
        assert torch.equal(ip.sample(fast, images, **KW), ip.sample(unet_denoiser, images, **KW))


def test_a_compiled_call_that_fails_runs_the_plain_network(monkeypatch, unet_denoiser, images):
    def fails_when_called(net, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("inductor failed")
        return call

    monkeypatch.setattr(torch, "compile", fails_when_called)
    fast = accelerate(unet_denoiser, compile=True)
    with pytest.warns(RuntimeWarning, match="inductor failed"), torch.no_grad():
        out = ip.sample(fast, images, **KW)
    assert torch.equal(out, ip.sample(unet_denoiser, images, **KW))
    assert network_of(fast).failed.startswith("RuntimeError")


def test_compiled_network_equals_the_plain_one():
    net = MLP(dim=2, hidden=16, depth=2).eval()
    x, t = torch.randn(5, 2), torch.rand(5)
    compiled = compile_network(net, backend="eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x, t), net(x, t), atol=1e-6)
    assert compiled.failed is None


def test_bf16_inference_is_close_and_returns_the_callers_dtype(unet_denoiser, images):
    fast = accelerate(unet_denoiser, dtype=torch.bfloat16)
    with torch.no_grad():
        out = ip.sample(fast, images, **KW)
        plain = ip.sample(unet_denoiser, images, **KW)
    assert out.dtype == torch.float32
    assert 0.0 < float((out - plain).norm() / plain.norm()) < 0.05
    assert {p.dtype for p in network_of(unet_denoiser).parameters()} == {torch.float32}
