"""Spectral Diffusion's wavelet gating: the Haar transform is orthogonal and reconstructs
perfectly, its subbands are the stated frequencies, the gated resamplers reduce to average
pooling / nearest upsampling when only LL passes, and the wavelet-gated U-Net keeps samples
apart."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from interpolant.errors import InterpolantError
from interpolant.models.spectral import (SpectralUNet, WGDown, WGUp, haar_dwt2, haar_idwt2)
from interpolant.models.unet import UNet

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_haar_is_orthogonal_and_reconstructs_perfectly():
    basis = torch.eye(32, dtype=F64).view(32, 2, 4, 4)
    matrix = haar_dwt2(basis).reshape(32, 32)  # row k: the transform of basis image k
    assert torch.allclose(matrix @ matrix.T, torch.eye(32, dtype=F64), atol=1e-14)
    x = torch.randn(3, 2, 6, 8, generator=_gen(0), dtype=F64)
    bands = haar_dwt2(x)
    assert bands.shape == (3, 4, 2, 3, 4)
    assert torch.allclose(haar_idwt2(bands), x, atol=1e-14)
    assert torch.allclose(bands.pow(2).sum(), x.pow(2).sum())  # Parseval
    b = torch.randn(2, 4, 1, 2, 3, generator=_gen(1), dtype=F64)
    assert torch.allclose(haar_dwt2(haar_idwt2(b)), b, atol=1e-14)


def test_subbands_are_the_stated_frequencies():
    i, j = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    images = {"LL": torch.full((4, 4), 0.7), "LH": (-1.0) ** j, "HL": (-1.0) ** i,
              "HH": (-1.0) ** (i + j)}
    for k, (name, img) in enumerate(images.items()):
        bands = haar_dwt2(img.to(F64)[None, None])[0, :, 0]
        want = torch.zeros(4, 2, 2, dtype=F64)
        want[k] = 2 * img[0, 0]
        assert torch.allclose(bands, want, atol=1e-14), name
    x = torch.randn(2, 3, 8, 8, generator=_gen(2), dtype=F64)
    assert torch.allclose(haar_dwt2(x)[:, 0], 2 * F.avg_pool2d(x, 2), atol=1e-14)


def _pass_only(layer, band: int | None) -> None:
    """Gates fixed at 1 on ``band`` (every band if None) and 0 elsewhere; identity conv."""
    with torch.no_grad():
        last = layer.gate.mlp[-1]
        last.weight.zero_()
        c = layer.conv.out_channels
        bias = torch.full((4, c), -60.0 if band is not None else 60.0)
        if band is not None:
            bias[band] = 60.0
        last.bias.copy_(bias.flatten())
        torch.nn.init.dirac_(layer.conv.weight)
        layer.conv.bias.zero_()


def test_gated_resamplers_reduce_to_pooling_and_nearest_upsampling():
    x = torch.randn(2, 3, 8, 8, generator=_gen(3), dtype=F64)
    down, up = WGDown(3).double(), WGUp(3).double()
    _pass_only(down, 0)
    assert torch.allclose(down(x), 2 * F.avg_pool2d(x, 2), atol=1e-12)
    _pass_only(down, None)  # the sum of all four Haar subbands is 2 x the top-left pixel
    assert torch.allclose(down(x), 2 * x[:, :, 0::2, 0::2], atol=1e-12)
    _pass_only(up, 0)
    assert torch.allclose(up(x), 0.5 * F.interpolate(x, scale_factor=2.0, mode="nearest"),
                          atol=1e-12)
    _pass_only(up, 3)  # HH alone: the checkerboard pattern of each coarse value
    sign = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=F64).repeat(8, 8)
    assert torch.allclose(up(x), 0.5 * sign * F.interpolate(x, scale_factor=2.0), atol=1e-12)


def test_gates_follow_each_sample_and_train():
    torch.manual_seed(0)
    down = WGDown(4).double()
    x = torch.randn(3, 4, 8, 8, generator=_gen(4), dtype=F64)
    y = x.clone()
    y[1:] = torch.randn(2, 4, 8, 8, generator=_gen(5), dtype=F64)
    assert torch.allclose(down(x)[0], down(y)[0], atol=1e-14)
    gates = down.gate(haar_dwt2(x))
    assert gates.shape == (3, 4, 4, 1, 1) and gates.std() > 0
    down(x).pow(2).sum().backward()
    assert down.gate.mlp[0].weight.grad.abs().sum() > 0


def test_spectral_unet_swaps_only_the_resamplers():
    torch.manual_seed(0)
    kwargs = dict(in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                  attention_levels=())
    net, plain = SpectralUNet(**kwargs), UNet(**kwargs)
    assert isinstance(net.encoder[0].resample, WGDown)
    assert isinstance(net.decoder[1].resample, WGUp)
    names = {n for n, _ in net.named_parameters() if ".resample." not in n}
    assert names == {n for n, _ in plain.named_parameters() if ".resample." not in n}
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    assert net(x, t).shape == x.shape
    with pytest.raises(InterpolantError, match="even H and W"):
        haar_dwt2(torch.zeros(1, 1, 5, 4))
    with pytest.raises(InterpolantError, match="subbands"):
        haar_idwt2(torch.zeros(1, 3, 1, 2, 2))
