"""Beyond U's continuous-depth blocks: one Euler step is the ResBlock (the U-Net of the same
weights), and the RK4 blocks converge at order 4 in the number of depth steps."""

from __future__ import annotations

import math

import pytest
import torch

from interpolant import models
from interpolant.errors import InterpolantError
from interpolant.models.odeunet import ODEResBlock

SMALL = {"in_channels": 1, "base_channels": 8, "channel_mults": (1, 2)}


def perturb(net, scale: float = 0.1):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))
    return net.double()


def test_one_euler_step_is_the_unet_of_the_same_weights() -> None:
    torch.manual_seed(0)
    ode = perturb(models.build("ode-unet", **SMALL, ode_steps=1, ode_method="euler"))
    unet = models.build("unet", **SMALL).double()
    unet.load_state_dict(ode.state_dict())  # strict: the same parameters
    assert sum(isinstance(m, ODEResBlock) for m in ode.modules()) == 3  # level 0 and the middle
    x, t = torch.randn(2, 1, 8, 8, dtype=torch.float64), torch.rand(2, dtype=torch.float64)
    torch.testing.assert_close(ode(x, t), unet(x, t), rtol=1e-12, atol=1e-12)
    rk4 = models.build("ode-unet", **SMALL, ode_steps=2).double()
    rk4.load_state_dict(ode.state_dict())
    assert (rk4(x, t) - unet(x, t)).abs().max() > 1e-4  # a different map


def test_rk4_blocks_converge_at_order_four_and_euler_at_order_one() -> None:
    torch.manual_seed(0)
    block = perturb(ODEResBlock(8, 16), scale=0.1)
    h, emb = torch.randn(2, 8, 6, 6, dtype=torch.float64), torch.randn(2, 16, dtype=torch.float64)
    block.steps, block.method = 256, "rk4"
    with torch.no_grad():
        exact = block(h, emb)
        for method, order in (("rk4", 4), ("euler", 1)):
            block.method, errors = method, []
            for steps in (4, 8, 16):  # the asymptotic range at this branch's size
                block.steps = steps
                errors.append(float((block(h, emb) - exact).abs().max()))
            slope = math.log2(errors[0] / errors[-1]) / 2  # halving the step twice
            assert abs(slope - order) < 0.5, (method, errors)


def test_bad_ode_options_are_one_line_errors() -> None:
    with pytest.raises(InterpolantError, match="unknown ODE method 'midpoint'"):
        models.build("ode-unet", ode_method="midpoint")
    with pytest.raises(InterpolantError, match="ode_steps must be a positive int"):
        models.build("ode-unet", ode_steps=0)
