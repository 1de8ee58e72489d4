"""Switch-DiT's diffusion prior loss: its value is the paper's formula (DTR window prior,
Hungarian matching of units, Jensen-Shannon), it is zero on gates that follow the prior, and
its gradient alone makes nearby times share experts and distant ones separate."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from interpolant import models
from interpolant.errors import InterpolantError
from interpolant.models.routing import diffusion_prior_loss, jensen_shannon
from interpolant.training import recipes
from interpolant.training.objectives import Objective
from interpolant.training.switch_prior import SwitchPrior

DIT = {"in_channels": 1, "image_size": 8, "patch_size": 2, "hidden": 16, "depth": 2, "heads": 2}


def prior_np(t: np.ndarray, units: int, active: int, alpha: float) -> np.ndarray:
    """DTR's window of ``active`` units starting at floor((units - active) t^alpha)."""
    start = np.floor((units - active) * t**alpha).astype(int)
    return (np.arange(units)[None] >= start[:, None]) & (np.arange(units)[None] <
                                                         start[:, None] + active)


def expected_loss(probs, t, grid_probs, grid_t, depth, k, alpha):
    """The loss by brute force: every permutation of the units, the best on the grid."""
    units = probs.shape[1]
    e = units // depth
    top = np.zeros_like(grid_probs)
    for b in range(depth):
        block = grid_probs[:, b * e:(b + 1) * e]
        idx = np.argsort(-block, axis=1)[:, :k]
        np.put_along_axis(top[:, b * e:(b + 1) * e], idx, 1.0, axis=1)
    grid_prior = prior_np(grid_t, units, depth * k, alpha).astype(float)
    best = min(itertools.permutations(range(units)),
               key=lambda pi: np.abs(top - grid_prior[:, list(pi)]).sum())
    q = prior_np(t, units, depth * k, alpha)[:, list(best)] / (depth * k)
    p = probs / depth
    m = (p + q) / 2
    kl = lambda a: np.where(a > 0, a * np.log(np.where(a > 0, a, 1) / m), 0).sum(1)  # noqa
    return float(np.mean((kl(p) + kl(q)) / 2))


def test_prior_loss_is_the_formula_on_constructed_gates() -> None:
    g = torch.Generator().manual_seed(0)
    depth, experts, k, alpha = 2, 3, 2, 4.0
    grid_t = torch.linspace(0, 1, 9, dtype=torch.float64)
    t = torch.rand(5, generator=g, dtype=torch.float64)
    soft = lambda n: torch.randn(n, depth, experts, generator=g,  # noqa: E731
                                 dtype=torch.float64).mul(2).softmax(-1).flatten(1)
    grid_probs, probs = soft(len(grid_t)), soft(len(t))
    got = diffusion_prior_loss(probs, t, grid_probs, grid_t, depth, k, alpha)
    want = expected_loss(probs.numpy(), t.numpy(), grid_probs.numpy(), grid_t.numpy(), depth, k,
                         alpha)
    assert abs(float(got) - want) < 1e-12 and want > 0.01
    # Jensen-Shannon: symmetric, 0 on equal rows, ln 2 on disjoint ones
    p, q = torch.tensor([[0.5, 0.5, 0, 0]]), torch.tensor([[0, 0, 0.25, 0.75]])
    torch.testing.assert_close(jensen_shannon(p, q), torch.tensor([math.log(2)]))
    assert float(jensen_shannon(p, p)) == 0.0


def test_prior_loss_is_zero_on_gates_that_follow_the_prior() -> None:
    # prior unit j belongs to block j mod depth: every window of depth * k units holds exactly
    # k units of each block, so a block can put 1/k on each, and the loss vanishes
    depth, experts, k, alpha = 2, 4, 2, 4.0
    units = depth * experts
    grid_t = torch.linspace(0, 1, 17, dtype=torch.float64)
    unit_of = torch.tensor([[b + depth * e for e in range(experts)] for b in range(depth)])
    scramble = torch.tensor([2, 0, 3, 1])  # the experts' order inside a block is arbitrary
    unit_of = unit_of[:, scramble].flatten()

    def follow(s):
        prior = torch.from_numpy(prior_np(s.numpy(), units, depth * k, alpha)).double()
        return prior[:, unit_of] / k  # each block: 1/k on its k active units

    probs = follow(grid_t)
    assert torch.allclose(probs.view(-1, depth, experts).sum(-1), torch.ones(1).double())
    assert float(diffusion_prior_loss(probs, grid_t, probs, grid_t, depth, k, alpha)) < 1e-15
    # gates that ignore the time cannot follow the prior
    still = probs[:1].expand_as(probs)
    assert float(diffusion_prior_loss(still, grid_t, probs, grid_t, depth, k, alpha)) > 0.1


def test_the_prior_loss_alone_makes_near_times_share_and_far_times_separate() -> None:
    torch.manual_seed(0)
    net = models.build("switch-dit", **DIT, experts=4, top_k=2)
    opt = torch.optim.Adam(net.gates.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)

    def gates(t: float) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([x.softmax(-1)[0] for x in net.gate_logits(torch.tensor([t]))])

    with torch.no_grad():
        first = float(net.prior_loss(torch.rand(256, generator=g)))
    for _ in range(200):
        loss = net.prior_loss(torch.rand(64, generator=g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = float(net.prior_loss(torch.rand(256, generator=g)))
    assert last < 0.05 * first
    # the prior's windows of 4 of the 8 units start at o(t) = floor(4 t^4): two times share
    # 4 - |o(t) - o(s)| units. The trained gates' top-2 experts (summed over both blocks) share
    # exactly as many: all near t = 0, fewer and fewer as the times move apart
    times = [0.0, 0.3, 0.78, 0.88, 0.97]  # o = 0, 0, 1, 2, 3 (away from the window's jumps)
    chosen = {t: {(b, int(e)) for b, row in enumerate(gates(t).topk(2, dim=-1).indices)
                  for e in row} for t in times}
    for s, u in itertools.combinations(times, 2):
        shared = 4 - abs(math.floor(4 * s**4) - math.floor(4 * u**4))
        assert len(chosen[s] & chosen[u]) == shared, (s, u)
    assert float(jensen_shannon(gates(0.0), gates(0.97)).mean()) > 0.3


def test_switch_prior_objective_adds_the_weighted_prior_and_refuses_other_nets() -> None:
    from interpolant import paths

    torch.manual_seed(0)
    net = models.build("switch-dit", **DIT, experts=4, top_k=2)
    base = Objective(paths.VPCosine(), "v")
    obj = SwitchPrior(base, net, weight=0.5)
    x0, noise = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    t = torch.tensor([0.2, 0.5, 0.9])
    with torch.no_grad():
        total = obj(net, x0, noise, t)
        want = base(net, x0, noise, t) + 0.5 * net.prior_loss(t)
    torch.testing.assert_close(total, want)
    with pytest.raises(InterpolantError, match="switch-dit network"):
        SwitchPrior(base, models.build("dit", **DIT))
    with pytest.raises(InterpolantError, match="weight >= 0"):
        SwitchPrior(base, net, weight=-1.0)
    assert recipes.run_overrides("switch-dit,switch-dit-prior")["model"] == "switch-dit"
    with pytest.raises(InterpolantError, match="needs the network switch-dit"):
        recipes.check_model("switch-dit-prior", "unet")
