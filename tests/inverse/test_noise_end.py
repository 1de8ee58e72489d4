"""DPS and PiGDM at the noise end of a path whose ``alpha(1)`` vanishes (cosine: 6e-17).

Their correction ``(sigma^2 / alpha) J^T v`` (``J = d x0^ / d x_t``) equals ``Cov[x0 | x_t] v``
(Tweedie), finite for an exact denoiser, whose ``J`` is ``O(alpha)``. A trained network is not
exact: its Jacobian at ``t = 1`` is what it learnt just below, which ``sigma^2 / alpha``
multiplies by ~1e16 (the digits U-Net's restorations reached 1e10-1e14). The stand-in for such
a network here is the exact v-prediction plus a small error ``delta tanh(x)`` in its ``x0``.
"""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.inverse import DPS, Linear, PiGDM, mixture_moments, restore
from interpolant.oracle import GaussianMixture

F64 = torch.float64
C = 0.6
PATH = ip.paths.VPCosine()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _iso(d: int) -> GaussianMixture:
    return GaussianMixture(torch.randn(1, d, generator=_gen(0), dtype=F64),
                           C * torch.eye(d, dtype=F64)[None])


class Trained:
    """A v-predicting "network": the exact ``x0`` of ``prior`` plus ``delta tanh(x)``."""

    def __init__(self, prior: GaussianMixture, delta: float) -> None:
        self.exact, self.delta = prior.denoiser(PATH), delta

    def __call__(self, x, t):
        a, s = PATH.alpha(float(t[0])), PATH.sigma(float(t[0]))
        x0 = self.exact(x, float(t[0])) + self.delta * torch.tanh(x)
        return (a * x - x0) / s


def _problem(prior, seed=1):
    op, sy = Linear(torch.randn(3, prior.dim, generator=_gen(seed), dtype=F64)), 0.1
    y = op(prior.sample(1, _gen(seed + 1)))[0]
    return op, y, sy


def test_the_noise_end_is_the_limit_of_the_correction():
    """On an isotropic Gaussian prior the correction is exactly ``r_t^2 v``: PiGDM at t = 1 is
    the exact posterior denoiser there (the posterior mean), and DPS at t = 1 equals DPS at
    t = 1 - 1e-6 (computed through the Jacobian; alpha = 1.6e-6 there) to 1e-5."""
    prior = _iso(6)
    op, y, sy = _problem(prior)
    den = prior.denoiser(PATH)
    x = torch.randn(5, 6, generator=_gen(3), dtype=F64)
    ref = prior.posterior(op, y, sy).denoiser(PATH)
    pigdm = PiGDM(den, op, y, sy, data_var=C)
    assert torch.allclose(pigdm(x, 1.0), ref(x, 1.0), atol=1e-10)
    post_mean = mixture_moments(prior.posterior(op, y, sy))[0]
    assert torch.allclose(pigdm(x, 1.0), post_mean.expand(5, 6), atol=1e-10)
    for likelihood in (False, True):
        dps = DPS(den, op, y, sy, data_var=C, gaussian_likelihood=likelihood)
        at_end, below = dps(x, 1.0), dps(x, 1.0 - 1e-6)
        assert (at_end - below).abs().max() < 1e-5 * below.abs().max(), likelihood
        assert (at_end - den(x, 1.0)).abs().max() > 0.1  # the correction is not dropped


@pytest.mark.parametrize("method", ["pigdm", "dps"])
def test_a_trained_network_restores_from_t_1(method):
    """With the network's error (delta = 1e-3) restorations from t = 1 were ~1e7 (PiGDM) and
    ~1e10 (DPS) off; now, on the 8-D 4-component mixture, their distance to the exact posterior
    mean is within 10% (+0.03) of the exact denoiser's from t = 1 and, for PiGDM, of the trained
    one's from t = 0.99. (DPS from t = 1 is less accurate than from 0.99 with the exact denoiser
    too: its likelihood N(y; A x0^, sigma_y^2) misses r_t^2 A A^T, largest at the noise end.)"""
    prior = GaussianMixture.preset("mix8d")
    op, y, sy = _problem(prior)
    mean = mixture_moments(prior.posterior(op, y, sy))[0]
    errs = {}
    for name, delta, t_start in (("exact", 0.0, 1.0), ("trained", 1e-3, 1.0),
                                 ("trained-0.99", 1e-3, 0.99)):
        den = ip.Denoiser(Trained(prior, delta), PATH, prediction="v")
        x = restore(den, op, y, sy, method=method, n=300, steps=40, generator=_gen(0),
                    t_start=t_start)
        assert torch.isfinite(x).all() and x.abs().max() < 100, name
        errs[name] = float((x.mean(0) - mean).norm())
    assert errs["trained"] < 1.1 * errs["exact"] + 0.03, errs
    if method == "pigdm":
        assert errs["trained"] < 1.1 * errs["trained-0.99"] + 0.03, errs
