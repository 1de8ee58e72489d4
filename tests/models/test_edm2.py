"""EDM2's magnitude-preserving layers and U-Net (Karras et al. 2024): each op keeps unit
magnitude for unit inputs (exactly, or within a tolerance computed from the sample size), and
the U-Net's activations stay near unit magnitude at initialisation and through training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import interpolant as ip
from interpolant import models
from interpolant.data import digits
from interpolant.models.mp import MPConv, MPFourier, mp_cat, mp_silu, mp_sum, normalize
from interpolant.training import TrainConfig, Trainer


pytestmark = pytest.mark.usefixtures("one_thread")


def test_mp_silu_has_unit_second_moment_under_a_standard_normal() -> None:
    z, w = np.polynomial.hermite_e.hermegauss(80)  # exact Gaussian quadrature, weight e^-z²/2
    moment = float((w * mp_silu(torch.from_numpy(z)).square().numpy()).sum() / math.sqrt(2 * math.pi))
    assert abs(moment - 1.0) < 2e-3  # 0.596 is sqrt(E[SiLU(z)^2]) = 0.5963 to three places


@pytest.mark.parametrize("kernel", [0, 3])
def test_mp_conv_rows_have_the_gain_as_norm_and_preserve_magnitude(kernel: int) -> None:
    torch.manual_seed(0)
    conv = MPConv(48, 40, kernel)
    conv.weight.data.mul_(7.0)  # the raw scale must not matter
    for gain in (1.0, 0.3):
        rows = conv.effective_weight(gain).flatten(1).norm(dim=1)
        torch.testing.assert_close(rows, torch.full_like(rows, gain))
    # unit Gaussian inputs: one output pixel is y = W x, E[mean y^2] = |W|_F^2 / O = 1 and
    # Var[mean y^2] = 2 |W W^T|_F^2 / (B O^2); allow five standard deviations
    b = 4096
    g = torch.Generator().manual_seed(1)
    x = torch.randn((b, 48, 3, 3) if kernel else (b, 48), generator=g)
    with torch.no_grad():
        y = conv.eval()(x)
    y = y[:, :, 1, 1] if kernel else y  # the centre pixel sees no zero padding
    w = conv.effective_weight().detach().flatten(1)
    sd = math.sqrt(2 * float((w @ w.T).square().sum()) / (b * 40**2))
    assert abs(float(y.square().mean()) - 1.0) < 5 * sd


def test_forced_weight_normalisation_in_training_only() -> None:
    torch.manual_seed(0)
    conv = MPConv(16, 8, 3)
    conv.weight.data.mul_(5.0)
    raw = conv.weight.detach().clone()
    conv.eval()(torch.randn(2, 16, 4, 4))
    assert torch.equal(conv.weight, raw)  # no change in evaluation
    conv.train()(torch.randn(2, 16, 4, 4))
    rms = conv.weight.detach().flatten(1).square().mean(dim=1).sqrt()
    torch.testing.assert_close(rms, torch.ones(8))
    torch.testing.assert_close(conv.weight.detach(), normalize(raw))
    again = conv.weight.detach().clone()
    conv(torch.randn(2, 16, 4, 4))
    torch.testing.assert_close(conv.weight.detach(), again, rtol=1e-6, atol=0)  # idempotent: no eps drift


def test_mp_sum_and_mp_cat_preserve_magnitude() -> None:
    n = 200_000
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, generator=g, dtype=torch.float64), torch.randn(n, generator=g,
                                                                            dtype=torch.float64)
    for t in (0.0, 0.3, 0.5, 0.9):
        # independent unit inputs: y^2 has mean 1 and variance 2; five standard deviations
        assert abs(float(mp_sum(a, b, t).square().mean()) - 1.0) < 5 * math.sqrt(2 / n)
    ones_a, ones_b = torch.ones(2, 3, 4), torch.ones(2, 5, 4)
    for t in (0.2, 0.5, 0.7):  # exact: unit magnitude overall, share t^2 / ((1-t)^2 + t^2)
        y = mp_cat(ones_a, ones_b, dim=1, t=t)
        assert y.shape == (2, 8, 4)
        assert abs(float(y.square().mean()) - 1.0) < 1e-6
        share = float(y[:, 3:].square().sum() / y.square().sum())
        assert abs(share - t**2 / ((1 - t) ** 2 + t**2)) < 1e-6


def test_mp_fourier_features_have_unit_magnitude() -> None:
    torch.manual_seed(0)
    c = 8192
    feats = MPFourier(c)(torch.tensor([0.0, 0.37, 2.5]))
    # 2 cos^2 with a uniform phase: mean 1, variance 1/2 per channel
    assert (feats.square().mean(dim=1) - 1.0).abs().max() < 5 * math.sqrt(0.5 / c)


def block_magnitudes(net, x, t, cond) -> dict[str, float]:
    out: dict[str, float] = {}
    hooks = [block.register_forward_hook(
        lambda m, i, o, n=name: out.__setitem__(n, float(o.square().mean().sqrt())))
        for name, block in list(net.enc.items()) + list(net.dec.items())]
    was = net.training
    with torch.no_grad():
        net.eval()(x, t, cond)
    net.train(was)
    for h in hooks:
        h.remove()
    return out


def test_edm2_unet_activations_keep_unit_magnitude_at_init_and_through_training() -> None:
    torch.manual_seed(0)
    net = models.build("edm2", base_channels=8, channel_mults=(1, 2), num_classes=10)
    assert not any(name.endswith("bias") for name, _ in net.named_parameters())
    data, labels = digits("train")
    path = ip.paths.VPCosine()
    g = torch.Generator().manual_seed(0)
    t = torch.rand(256, generator=g)
    xt = path.sample(data[:256], t.double(), torch.randn(data[:256].shape, generator=g)).float()
    init = block_magnitudes(net, xt, t, labels[:256])
    # expectation 1 over the random weights, less the zero padding of the 3x3 convolutions
    # (at 4x4 a conv sees 69% of its taps on average): measured 0.76..0.96
    assert all(0.7 < m < 1.15 for m in init.values()), init
    trainer = Trainer(net, path, data, labels, TrainConfig(
        target="v", batch_size=16, lr=1e-2, clip_grad=None, progress=False))
    for _ in range(30):
        trainer.step()
    trained = block_magnitudes(net, xt, t, labels[:256])
    # training aligns the weights with the data and learns the embedding gains, which raises
    # magnitudes moderately (measured <= 2.6 over 200 such steps); the ADM U-Net's blocks
    # reach 10 in the same run and a layer without the 1/sqrt(fan_in) scale gives ~12 at init
    assert all(0.5 < m < 3.0 for m in trained.values()), trained
    # forced weight normalisation: stored weights stay unit-RMS rows, up to the last Adam step
    # (which moves each element by about lr = 0.01)
    for module in net.modules():
        if isinstance(module, MPConv):
            rms = module.weight.detach().flatten(1).square().mean(dim=1).sqrt()
            assert (rms - 1).abs().max() < 0.02
