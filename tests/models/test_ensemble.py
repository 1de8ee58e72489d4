"""AFA-style aggregation of denoisers, checked against the exact mixture denoiser: an aggregate
of exact denoisers is exact, averaging M independently biased ones cuts the error about M-fold
(never above the members' mean, by convexity), and the trained aggregator picks the member
that is right at each time."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.models.ensemble import Aggregate
from interpolant.training import TrainConfig, Trainer


pytestmark = pytest.mark.usefixtures("one_thread")


def mixture() -> ip.oracle.GaussianMixture:
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.0]], dtype=torch.float64)
    covs = 0.1 * torch.eye(2, dtype=torch.float64).expand(3, 2, 2)
    return ip.oracle.GaussianMixture(means, covs, torch.tensor([0.3, 0.3, 0.4],
                                                                dtype=torch.float64))


PATH = ip.paths.VPCosine()
EXACT = mixture().denoiser(PATH).model  # x0 prediction, model(x, t, cond)


def biased(seed: int, scale: float = 0.3, where=lambda t: torch.ones_like(t)):
    """The exact x0 plus a fixed random smooth error (256 random Fourier features), switched
    on where ``where(t)`` is 1; different seeds give independent errors."""
    g = torch.Generator().manual_seed(seed)
    w = 6 * torch.randn(2, 256, generator=g, dtype=torch.float64)  # correlation length 1/6
    phase = 2 * torch.pi * torch.rand(256, generator=g, dtype=torch.float64)
    v = torch.randn(256, 2, generator=g, dtype=torch.float64) * (2 / 256) ** 0.5

    def member(x, t, cond=None):
        return EXACT(x, t) + scale * where(t)[:, None] * torch.cos(x @ w + phase) @ v

    return member


def points(n: int = 512, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g, dtype=torch.float64), torch.rand(
        n, generator=g, dtype=torch.float64) * 0.98 + 0.01


def test_aggregate_of_exact_denoisers_is_exact_for_any_weights() -> None:
    agg = Aggregate([EXACT, EXACT, EXACT]).double()
    with torch.no_grad():
        for p in agg.aggregator.parameters():
            p.add_(torch.randn_like(p))  # weights far from uniform
    x, t = points()
    w = agg.weights(t)
    assert (w.max(1).values - w.min(1).values).mean() > 0.2
    torch.testing.assert_close(agg(x, t), EXACT(x, t), rtol=1e-12, atol=1e-12)


def test_average_of_independently_biased_denoisers_cuts_the_error() -> None:
    members = [biased(seed) for seed in range(8)]
    agg = Aggregate(members).double()  # untrained: the plain average
    x, t = points(4096)
    torch.testing.assert_close(agg.weights(t), torch.full((4096, 8), 1 / 8, dtype=torch.float64))
    member_err = torch.stack([(m(x, t) - EXACT(x, t)).square().sum(1) for m in members])
    avg_err = (agg(x, t) - EXACT(x, t)).square().sum(1)
    assert torch.all(avg_err <= member_err.mean(0) + 1e-12)  # convexity, pointwise
    ratio = float(avg_err.mean().detach() / member_err.mean().detach())
    # independent zero-mean errors: 1/M = 0.125, up to the 28 pairs' cross terms; each is an
    # average over ~300 effectively independent points (correlation length 1/6 over the
    # standard normal's mass), which puts the ratio's sd near 0.01
    assert 0.095 < ratio < 0.155, ratio


def test_trained_aggregator_trusts_the_member_that_is_right_at_each_time() -> None:
    early = biased(1, where=lambda t: (t > 0.5).double())  # exact below t = 0.5
    late = biased(2, where=lambda t: (t <= 0.5).double())  # exact above
    torch.manual_seed(0)
    agg = Aggregate([early, late]).double()
    data = mixture().sample(2048, generator=torch.Generator().manual_seed(3))
    if isinstance(data, tuple):
        data = data[0]
    trainer = Trainer(agg, PATH, data, config=TrainConfig(
        target="x0", batch_size=256, lr=0.02, clip_grad=None, progress=False))
    for _ in range(120):
        trainer.step()
    x, t = points()
    with torch.no_grad():
        err = (agg(x, t) - EXACT(x, t)).square().sum(1)
        plain = (0.5 * (early(x, t) + late(x, t)) - EXACT(x, t)).square().sum(1)
        w = agg.weights(torch.tensor([0.2, 0.8], dtype=torch.float64))
    assert w[0, 0] > 0.9 and w[1, 1] > 0.9, w  # the exact member at each time
    assert float(err.mean()) < 0.1 * float(plain.mean())
    with pytest.raises(InterpolantError, match="at least two members"):
        Aggregate([EXACT])
