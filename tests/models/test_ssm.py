"""DiffuSSM's state-space layer: the kernel (convolution) form equals the recurrence, it is
causal, and the bidirectional block is equivariant to reversing the tokens when the two
directions swap weights."""

from __future__ import annotations

import torch

from interpolant import models
from interpolant.models.ssm import BiSSM, DiagonalSSM


def test_convolution_form_equals_the_recurrence_and_is_causal() -> None:
    torch.manual_seed(0)
    ssm = DiagonalSSM(6, state=5).double()
    with torch.no_grad():
        ssm.b.add_(torch.randn_like(ssm.b))
        ssm.d.add_(torch.randn_like(ssm.d))
    u = torch.randn(3, 20, 6, dtype=torch.float64, requires_grad=True)
    y = ssm(u)
    torch.testing.assert_close(y, ssm.recurrence(u), rtol=1e-10, atol=1e-12)
    abar, _ = ssm.discretised()
    assert torch.all((abar > 0) & (abar < 1))  # a stable, decaying memory
    y[:, 7].sum().backward()  # output 7 depends on inputs 0..7 only
    assert u.grad[:, 8:].abs().max() == 0 and u.grad[:, :8].abs().amax(dim=(0, 2)).min() > 0


def test_bidirectional_block_reverses_with_the_tokens_when_directions_swap() -> None:
    torch.manual_seed(0)
    block = BiSSM(8, state=4).double()
    twin = BiSSM(8, state=4).double()
    twin.load_state_dict(block.state_dict())
    twin.forward_ssm.load_state_dict(block.backward_ssm.state_dict())
    twin.backward_ssm.load_state_dict(block.forward_ssm.state_dict())
    h = torch.randn(2, 12, 8, dtype=torch.float64)
    torch.testing.assert_close(twin(h.flip(1)), block(h).flip(1), rtol=1e-10, atol=1e-12)
    # and every token reads every other: the first output depends on the last input
    h2 = h.clone()
    h2[:, -1] += 1.0
    assert (block(h2)[:, 0] - block(h)[:, 0]).abs().max() > 1e-6


def test_diffussm_has_no_attention() -> None:
    net = models.build("diffussm", hidden=32, depth=2, state=4)
    assert all(isinstance(b.attn, BiSSM) for b in net.blocks)
    assert not any("qkv" in name for name, _ in net.named_parameters())
