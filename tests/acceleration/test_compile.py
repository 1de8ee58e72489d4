"""torch.compile with a fallback that warns instead of crashing, and bf16 inference."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.acceleration import accelerate, compile_network, network_of
from interpolant.errors import InterpolantError
from interpolant.labels import NULL_LABEL
from interpolant.models import MLP, DiT, UNet

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


@pytest.mark.parametrize("name", ["unet", "dit"])
def test_the_reference_networks_compile_without_graph_breaks(name):
    """The label check (a host sync) used to break the graph once per label embedding."""
    dynamo = pytest.importorskip("torch._dynamo")
    net = (UNet(base_channels=16, num_classes=3) if name == "unet"
           else DiT(hidden=32, depth=2, heads=2, num_classes=3)).eval()
    x, t, cond = torch.randn(2, 1, 8, 8), torch.rand(2), torch.tensor([0, NULL_LABEL])
    dynamo.reset()
    try:
        explained = dynamo.explain(net)(x, t, cond)
    except Exception as err:  # noqa: BLE001 - no compile on this platform
        pytest.skip(f"torch.compile unavailable: {type(err).__name__}: {err}")
    assert explained.graph_break_count == 0, explained.break_reasons


def test_a_compiled_network_still_refuses_bad_labels():
    net = DiT(hidden=16, depth=1, heads=2, num_classes=3).eval()
    compiled = compile_network(net, backend="eager")
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    with torch.no_grad():
        assert torch.allclose(compiled(x, t, torch.tensor([2, NULL_LABEL])),
                              net(x, t, torch.tensor([2, NULL_LABEL])), atol=1e-6)
        with pytest.raises(InterpolantError, match=r"labels must lie in \[0, 3\)"):
            compiled(x, t, torch.tensor([0, 3]))
    assert compiled.failed is None
