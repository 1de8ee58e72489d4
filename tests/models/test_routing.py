"""DTR and Switch-DiT: the masks and gates are what the papers define, and the routed nets
reduce exactly to the plain DiT or to a single expert where they should."""

from __future__ import annotations

import math

import pytest
import torch

from interpolant import models
from interpolant.errors import InterpolantError
from interpolant.models.routing import dtr_mask, switch_gates

DIT = {"in_channels": 1, "image_size": 8, "patch_size": 2, "hidden": 32, "depth": 2, "heads": 2}


def perturb(net):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.double()


def test_dtr_mask_is_a_window_that_slides_faster_at_high_noise() -> None:
    c, beta, alpha = 40, 0.75, 4.0
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    m = dtr_mask(t, c, beta, alpha)
    assert torch.all(m.sum(1) == 30)  # C_beta = 30 active channels at every time
    first = m.argmax(1)
    torch.testing.assert_close(first, torch.floor(10 * t**alpha).long())  # o(t)
    assert first[0] == 0 and first[-1] == 10
    for row, o in zip(m, first):  # contiguous: exactly channels o .. o + 29
        assert torch.equal(row.nonzero().flatten(), torch.arange(int(o), int(o) + 30))
    # shared channels of tasks 0.1 apart: C_beta - |o(t) - o(t')|, more near the data end
    shared = lambda a, b: int((dtr_mask(torch.tensor([a]), c, beta, alpha) *  # noqa: E731
                               dtr_mask(torch.tensor([b]), c, beta, alpha)).sum())
    assert shared(0.0, 0.1) == 30 and shared(0.9, 1.0) == 30 - (10 - math.floor(10 * 0.9**4))
    assert shared(0.9, 1.0) < shared(0.4, 0.5) <= shared(0.0, 0.1)


def test_dtr_with_every_channel_active_is_the_dit() -> None:
    torch.manual_seed(0)
    dtr = perturb(models.build("dtr", **DIT, beta=1.0))
    dit = models.build("dit", **DIT).double()
    dit.load_state_dict(dtr.state_dict())  # no new parameters
    x, t = torch.randn(3, 1, 8, 8, dtype=torch.float64), torch.rand(3, dtype=torch.float64)
    torch.testing.assert_close(dtr(x, t), dit(x, t), rtol=1e-12, atol=1e-12)
    partial = perturb(models.build("dtr", **DIT, beta=0.5))
    dit.load_state_dict(partial.state_dict())
    assert (partial(x, t) - dit(x, t)).abs().max() > 1e-3


def test_dtr_blocks_read_only_the_window() -> None:
    torch.manual_seed(0)
    net = perturb(models.build("dtr", **DIT, beta=0.5))
    h = torch.randn(2, 16, 32, dtype=torch.float64)
    c = torch.randn(2, 32, dtype=torch.float64)
    t = torch.tensor([0.2, 0.9], dtype=torch.float64)
    m = dtr_mask(t, 32, 0.5, net.alpha)
    off = (m == 0).float().argmax(1)  # a masked-out channel per sample
    bump = torch.zeros_like(h)
    bump[0, :, off[0]] = 1.0
    bump[1, :, off[1]] = 1.0
    # a change in channels outside the window passes the blocks by the skips alone
    torch.testing.assert_close(net.run_blocks(h + bump, c, t) - net.run_blocks(h, c, t), bump,
                               rtol=1e-10, atol=1e-10)


def test_switch_gates_keep_top_k_summing_to_one_and_depend_on_time_only() -> None:
    logits = torch.tensor([[0.1, 2.0, -1.0, 1.0], [3.0, 0.5, 0.0, -2.0]], dtype=torch.float64)
    g = switch_gates(logits, 2)
    p = logits.softmax(1)
    expected = torch.tensor([[0, p[0, 1], 0, p[0, 3]], [p[1, 0], p[1, 1], 0, 0]],
                            dtype=torch.float64)
    torch.testing.assert_close(g, expected / expected.sum(1, keepdim=True))
    torch.manual_seed(0)
    net = models.build("switch-dit", **DIT, experts=4, top_k=2, num_classes=3)
    t = torch.tensor([0.1, 0.1, 0.8])
    for gates in net.block_gates(t):
        assert torch.all((gates > 0).sum(1) == 2)
        torch.testing.assert_close(gates.sum(1), torch.ones(3))
        torch.testing.assert_close(gates[0], gates[1])  # same time, same routing


def test_switch_dit_with_identical_experts_is_one_expert_and_routes_gradients() -> None:
    torch.manual_seed(0)
    net = perturb(models.build("switch-dit", **DIT, experts=3, top_k=1))
    mlp = net.blocks[0].mlp
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    gates = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    out = mlp(x, gates)
    out.sum().backward()
    # only the chosen experts (1 and 2) learn from this batch; expert 0 gets no gradient
    assert all(p.grad.abs().sum() == 0 for p in mlp.experts[0].parameters())
    assert all(p.grad.abs().sum() > 0 for p in mlp.experts[1].parameters())
    for expert in mlp.experts[1:]:
        expert.load_state_dict(mlp.experts[0].state_dict())
    soft = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]], dtype=torch.float64)
    with torch.no_grad():  # gates summing to 1 over identical experts: shared + expert
        torch.testing.assert_close(mlp(x, soft), mlp.shared(x) + mlp.experts[0](x))
    with pytest.raises(InterpolantError, match="1 <= top_k <= experts"):
        models.build("switch-dit", **DIT, experts=2, top_k=3)
