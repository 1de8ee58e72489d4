"""h-space (bottleneck) edits: a zero shift is plain DDIM bitwise; per-sample shifts change
only their own samples; an asymmetric step differs from the plain one by exactly
alpha_s (x0 shifted - x0 plain); the edit acts only from t_edit up."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.inversion.hspace import bottleneck, class_direction, hspace_sample, shifted
from interpolant.solvers.ddim import ddim_table


@pytest.fixture(scope="module")
def den():
    torch.manual_seed(0)
    net = ip.models.UNet(base_channels=8, attention_levels=(), num_classes=3)
    for p in net.out_conv.parameters():  # zero-initialised head: give it an output
        torch.nn.init.normal_(p, std=0.2)
    return ip.Denoiser(net.double().eval(), ip.paths.VPCosine(), prediction="v")


def _start(n=4):
    return torch.randn(n, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def test_zero_shift_is_plain_ddim_bitwise(den):
    x1, labels = _start(), torch.tensor([0, 1, 2, 0])
    h = bottleneck(den, x1, torch.full((4,), 0.5, dtype=torch.float64), labels)
    plain = ip.sample(den, x1, "ddim", 8, cond=labels)
    for asym in (True, False):
        got = hspace_sample(den, x1, torch.zeros_like(h[0]), 8, t_edit=0.0, asymmetric=asym,
                            cond=labels)
        assert torch.equal(got, plain)
    assert torch.equal(hspace_sample(den, x1, None, 8, cond=labels), plain)


def test_shift_changes_only_its_samples_and_only_from_t_edit(den):
    x1 = _start()
    h = bottleneck(den, x1, torch.full((4,), 0.5, dtype=torch.float64))
    dh = torch.zeros_like(h)
    g = torch.Generator().manual_seed(2)
    dh[1:3] = 0.5 * torch.randn(h[1:3].shape, dtype=h.dtype, generator=g)
    plain = ip.sample(den, x1, "ddim", 8).detach()
    got = hspace_sample(den, x1, dh, 8, t_edit=0.0)
    assert torch.equal(got[[0, 3]], plain[[0, 3]])
    assert float((got[1:3] - plain[1:3]).abs().min()) > 0
    # t_edit above every step's start time: no step is edited
    assert torch.equal(hspace_sample(den, x1, dh, 8, t_edit=1.5), plain)


def test_one_asymmetric_step(den):
    """x_s = c_x x + c_0 x0(x) + alpha_s (x0(x | dh) - x0(x)): the shifted network supplies only
    the predicted data, the plain one the direction to x_t (Asyrp, eq. 12)."""
    x1 = _start()
    t = torch.ones(4, dtype=torch.float64)
    dh = 0.3 * torch.ones_like(bottleneck(den, x1, t)[0])
    ts = ip.solvers.sampling.make_grid(None, den.path, 1)
    got = hspace_sample(den, x1, dh, 1, t_edit=0.0)
    with torch.no_grad(), shifted(den, dh):
        x0_shift = den(x1, t, None, "x0")
    with torch.no_grad():
        x0 = den(x1, t, None, "x0")
    c_x, c_0, _ = ddim_table(den.path, ts, 0.0)[0]
    want = c_x * x1 + c_0 * x0 + float(den.path.alpha(ts[1])) * (x0_shift - x0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert float((x0_shift - x0).abs().max()) > 1e-3
    symmetric = hspace_sample(den, x1, dh, 1, t_edit=0.0, asymmetric=False)
    torch.testing.assert_close(symmetric, c_x * x1 + c_0 * x0_shift, rtol=1e-12, atol=1e-12)


def test_class_direction_and_bad_input(den):
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    d = class_direction(den, x, labels, 0, 1, 0.5, torch.Generator().manual_seed(4))
    assert d.shape == bottleneck(den, x[:1], torch.full((1,), 0.5, dtype=torch.float64)).shape[1:]
    with pytest.raises(InterpolantError, match="classes 0 and 2"):
        class_direction(den, x, labels, 0, 2, 0.5)
    mlp = ip.Denoiser(lambda x, t, c: x, ip.paths.VPCosine())
    with pytest.raises(InterpolantError, match="middle block"):
        hspace_sample(mlp, torch.zeros(1, 2), None)
