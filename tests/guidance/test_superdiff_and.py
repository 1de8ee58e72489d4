"""SuperDiff AND on two exact mixtures that share one component: the weights solve the paper's
linear equation, so the two Itô estimates are equal after every step; the exact log-densities
of the samples then agree (on the shared component, to its weight ratio) and the samples sit on
the overlap, while the same sampler with the noise term's sign flipped runs away."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.guidance.superdiff import ito_increment
from interpolant.guidance.superdiff_and import and_weights, euler_maruyama_step, superdiff_and
from interpolant.solvers.sampling import make_grid

F64 = torch.float64
GMM = ip.oracle.GaussianMixture
A, B, C = [-2.0, 0.0], [0.0, 1.5], [2.0, 0.5]


def _pair(w_shared_2: float = 0.5):
    cov = torch.stack([0.05 * torch.eye(2, dtype=F64)] * 2)
    p1 = GMM(torch.tensor([A, B], dtype=F64), cov, torch.tensor([0.5, 0.5], dtype=F64))
    p2 = GMM(torch.tensor([B, C], dtype=F64), cov,
             torch.tensor([w_shared_2, 1 - w_shared_2], dtype=F64))
    return p1, p2


def _exact(models, path, t, x):
    return torch.stack([m.marginal(path, t).log_prob(x) for m in models], 1)


def _near_b(x):
    return float(((x - torch.tensor(B, dtype=F64)).norm(dim=1) < 0.7).double().mean())


@pytest.mark.parametrize("path", [ip.paths.VPLinear(), ip.paths.EDM()], ids=["vp", "edm"])
def test_and_keeps_the_log_densities_equal(path):
    p1, p2 = _pair()
    x1 = p1.marginal(path, 0.99).sample(300, torch.Generator().manual_seed(0))
    dens = [p1.denoiser(path), p2.denoiser(path)]
    r = superdiff_and(dens, x1, 40, t_start=0.99, t_end=0.05,
                      generator=torch.Generator().manual_seed(1))
    assert r.nfe == 80 and dens[0].nfe == 40
    torch.testing.assert_close(r.log_q[:, 0], r.log_q[:, 1], rtol=0, atol=1e-6)
    exact = _exact((p1, p2), path, 0.05, r.x)
    assert float((exact[:, 0] - exact[:, 1]).abs().mean()) < 1e-3
    assert _near_b(r.x) > 0.95
    # OR of the same models samples their mixture: half its mass is off the shared component
    x_or = ip.sample(ip.guidance.SuperDiffOR(*dens), x1, "euler-maruyama", 40, "uniform",
                     t_start=0.99, t_end=0.05, generator=torch.Generator().manual_seed(1))
    assert _near_b(x_or) < 0.7


def test_unequal_shared_weights_stop_at_their_ratio_and_a_sign_error_fails():
    """With the shared component weighted 0.5 and 0.3 the exact log-densities on it differ by
    log(0.5 / 0.3): AND still lands on it, with exact difference that ratio, within the
    estimator's own error; flipping the sign of the noise term in kappa throws the samples
    off the overlap with exact differences in the thousands."""
    p1, p2 = _pair(0.3)
    path = ip.paths.VPLinear()
    dens = [p1.denoiser(path), p2.denoiser(path)]
    x1 = p1.marginal(path, 0.99).sample(300, torch.Generator().manual_seed(0))
    r = superdiff_and(dens, x1, 40, t_start=0.99, t_end=0.05,
                      generator=torch.Generator().manual_seed(1))
    exact = _exact((p1, p2), path, 0.05, r.x)
    gap = (exact[:, 0] - exact[:, 1]).abs()
    assert _near_b(r.x) > 0.95
    assert abs(float(gap.median()) - float(torch.log(torch.tensor(0.5 / 0.3)))) < 1e-3
    assert float(gap.mean()) < float((r.log_q - exact).abs().mean())

    x, log_q, gen = x1, torch.zeros(300, 2, dtype=F64), torch.Generator().manual_seed(1)
    ts = make_grid("uniform", path, 40, 0.99, 0.05).tolist()
    for t_a, t_b in zip(ts[:-1], ts[1:]):
        tv = torch.full((300,), t_a, dtype=F64)
        scores = torch.stack([d(x, tv, None, "score") for d in dens])
        z = torch.randn(x.shape, generator=gen, dtype=F64)
        kappa = and_weights(path, log_q, scores, -z, t_a, t_b)  # the sign error
        x_b = euler_maruyama_step(path, x, torch.einsum("bm,mbd->bd", kappa, scores), z, t_a, t_b)
        log_q, x = log_q + ito_increment(path, t_a, x, scores, t_b, x_b), x_b
    wrong = _exact((p1, p2), path, 0.05, x)
    assert _near_b(x) < 0.1 and float((wrong[:, 0] - wrong[:, 1]).abs().mean()) > 100


def test_superdiff_and_bad_input():
    p1, p2 = _pair()
    x = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(InterpolantError, match="at least two"):
        superdiff_and([p1.denoiser(ip.paths.VPLinear())], x)
    with pytest.raises(InterpolantError, match="one path"):
        superdiff_and([p1.denoiser(ip.paths.VPLinear()), p2.denoiser(ip.paths.EDM())], x)
    with pytest.raises(InterpolantError, match="infinite"):
        superdiff_and([p1.denoiser(ip.paths.Linear()), p2.denoiser(ip.paths.Linear())], x)
    with pytest.raises(InterpolantError, match="initial"):
        superdiff_and([p1.denoiser(ip.paths.VPLinear()), p2.denoiser(ip.paths.VPLinear())], x,
                      initial=torch.zeros(2, 2))
