"""MM-DiT (SD3): joint attention of two streams with separate weights. Identities: with no
conditioning tokens a block is the DiT block of its image weights; with tied weights it is the
DiT block over the concatenated tokens; it is equivariant to permuting conditioning tokens."""

from __future__ import annotations

import torch

from interpolant import models
from interpolant.models.mmdit import MMDiTBlock


def perturbed_block(pre_only: bool = False, seed: int = 0) -> MMDiTBlock:
    torch.manual_seed(seed)
    block = MMDiTBlock(32, heads=4, pre_only=pre_only).double()
    with torch.no_grad():  # off adaLN-Zero's zero gates, so every path carries signal
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return block


def tokens(seed: int = 1, n: int = 6, context: int = 3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, n, 32, generator=g, dtype=torch.float64),
            torch.randn(2, context, 32, generator=g, dtype=torch.float64),
            torch.randn(2, 32, generator=g, dtype=torch.float64))


def test_without_conditioning_tokens_a_block_is_the_dit_block_of_its_image_weights() -> None:
    x, _, c = tokens()
    for pre_only in (False, True):
        block = perturbed_block(pre_only)
        out, ctx = block(x, x[:, :0], c)
        torch.testing.assert_close(out, block.x(x, c), rtol=1e-12, atol=1e-12)
        assert ctx is None if pre_only else ctx.shape == (2, 0, 32)


def test_with_tied_weights_a_block_is_the_dit_block_over_the_concatenation() -> None:
    block = perturbed_block()
    block.ctx.load_state_dict(block.x.state_dict())
    x, ctx, c = tokens()
    out_x, out_ctx = block(x, ctx, c)
    joint = block.x(torch.cat([x, ctx], dim=1), c)
    torch.testing.assert_close(out_x, joint[:, :6], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out_ctx, joint[:, 6:], rtol=1e-12, atol=1e-12)
    # untied (separate weights, the MM-DiT) differs from that
    other = perturbed_block(seed=5)
    assert (other(x, ctx, c)[0] - other.x(torch.cat([x, ctx], 1), c)[:, :6]).abs().max() > 1e-3


def test_equivariant_to_permuting_conditioning_tokens_and_reads_them() -> None:
    x, ctx, c = tokens(context=5)
    perm = torch.tensor([3, 0, 4, 2, 1])
    for pre_only in (False, True):
        block = perturbed_block(pre_only)
        out_x, out_ctx = block(x, ctx, c)
        px, pctx = block(x, ctx[:, perm], c)
        torch.testing.assert_close(px, out_x, rtol=1e-12, atol=1e-12)
        if not pre_only:
            torch.testing.assert_close(pctx, out_ctx[:, perm], rtol=1e-12, atol=1e-12)
        # the image stream attends to the conditioning tokens (other tokens: another output;
        # a constant shift of all features would not do, LayerNorm removes it)
        assert (block(x, tokens(seed=9, context=5)[1], c)[0] - out_x).abs().max() > 1e-3


def test_mmdit_last_block_is_pre_only_and_labels_become_tokens() -> None:
    net = models.build("mmdit", hidden=32, depth=3, heads=2, num_classes=10, context_tokens=4)
    assert [b.pre_only for b in net.blocks] == [False, False, True]
    assert net.context_embed.table.weight.shape == (11, 4 * 32)
