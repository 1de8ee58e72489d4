"""REPA (Yu et al. 2025): the alignment term is -mean cosine similarity between the projected
hidden state and the frozen encoder's features of x0; its gradient reaches the denoiser's layers
before the aligned one, not the encoder; mismatched sizes give one clear error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interpolant as ip
from interpolant import models
from interpolant.data import digits
from interpolant.errors import InterpolantError
from interpolant.metrics.digits_classifier import load_digits_classifier
from interpolant.training import Objective, TrainConfig, Trainer
from interpolant.training.repa import REPA


pytestmark = pytest.mark.usefixtures("one_thread")


def setup(seed: int = 0):
    torch.manual_seed(seed)
    net = models.build("unet", base_channels=8, channel_mults=(1, 2))
    with torch.no_grad():  # off the zero initialisation, so every layer passes signal
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x0 = digits("train")[0][:16]
    g = torch.Generator().manual_seed(seed)
    return net, x0, torch.randn(x0.shape, generator=g), torch.rand(16, generator=g)


def test_loss_is_base_plus_lambda_times_minus_mean_cosine() -> None:
    net, x0, noise, t = setup()
    path = ip.paths.VPCosine()
    base = Objective(path, "v")
    repa = REPA(base, net, x0, weight=0.7)
    assert repa.layer == "encoder.1.res.0"
    loss = repa(net, x0, noise, t)
    # independently: the hidden state of that block on x_t, the head, the classifier features
    seen = []
    handle = net.encoder[1].res[0].register_forward_hook(lambda m, i, o: seen.append(o))
    net(path.sample(x0, t.double(), noise).float(), t)
    handle.remove()
    p = repa.head(seen[0].reshape(16, -1))
    e = load_digits_classifier().features(x0)
    cosine = (p * e).sum(1) / (p.norm(dim=1) * e.norm(dim=1))
    expected = base(net, x0, noise, t) - 0.7 * cosine.mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert abs(repa.last_alignment + float(cosine.mean().detach())) < 1e-5
    assert -1 < repa.last_alignment < 1 and abs(repa.last_alignment) > 1e-3  # not degenerate
    torch.testing.assert_close(REPA(base, net, x0, weight=0.0)(net, x0, noise, t),
                               base(net, x0, noise, t))


def test_gradient_reaches_earlier_layers_but_not_the_encoder() -> None:
    net, x0, noise, t = setup()
    encoder = nn.Linear(64, 12)  # trainable on its own: REPA must keep it frozen

    def no_diffusion(model, x, n, tt, cond=None):  # runs the net, contributes nothing
        return 0.0 * model(x, tt).sum()

    repa = REPA(no_diffusion, net, x0, encoder=lambda x: encoder(x.flatten(1)))
    assert not any(p is encoder.weight for p in repa.parameters())
    repa(net, x0, noise, t).backward()
    assert encoder.weight.grad is None and encoder.bias.grad is None
    assert net.input_conv.weight.grad.abs().sum() > 0  # before the aligned block
    assert net.encoder[1].res[0].conv1.weight.grad.abs().sum() > 0  # in it
    assert net.out_conv.weight.grad.abs().sum() == 0  # after it: alignment does not reach
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in repa.head.parameters())


def test_sizes_that_do_not_fit_are_one_line_errors() -> None:
    net, x0, noise, t = setup()
    base = Objective(ip.paths.VPCosine(), "v")
    head = nn.Sequential(nn.Linear(16 * 4 * 4, 32), nn.SiLU(), nn.Linear(32, 32))
    with pytest.raises(InterpolantError, match="encoder gives 64 features but the REPA head "
                                               "outputs 32"):
        REPA(base, net, x0, head=head)
    with pytest.raises(InterpolantError, match="head takes 100 features but layer"):
        REPA(base, net, x0, head=nn.Linear(100, 64))
    with pytest.raises(InterpolantError, match="'encoder.9' is not a submodule"):
        REPA(base, net, x0, layer="encoder.9")
    with pytest.raises(InterpolantError, match=r"must return features \(B, D\)"):
        REPA(base, net, x0, encoder=lambda x: x)
    with pytest.raises(InterpolantError, match="no default layer"):
        REPA(base, models.build("mlp", dim=64, hidden=16, depth=1), x0.flatten(1))


def test_trainer_optimises_the_head_and_the_alignment_improves() -> None:
    torch.manual_seed(0)
    net = models.build("unet", base_channels=8, channel_mults=(1, 2))
    data = digits("train")[0][:256]
    path = ip.paths.VPCosine()
    repa = REPA(Objective(path, "v"), net, data, weight=1.0)
    head0 = [p.detach().clone() for p in repa.head.parameters()]
    trainer = Trainer(net, path, data, config=TrainConfig(
        target="v", batch_size=16, lr=3e-3, progress=False), objective=repa)
    first = []
    for _ in range(20):
        trainer.step()
        first.append(repa.last_alignment)
    assert all(not torch.equal(a, b.detach()) for a, b in zip(head0, repa.head.parameters()))
    # -cos starts near 0 (random head) and falls towards -1 as the head learns the features
    assert sum(first[-5:]) / 5 < sum(first[:5]) / 5 - 0.2, first
