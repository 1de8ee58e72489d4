"""Compressed sensing (random projections) and the estimate of an unknown sigma_y."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.inverse import (Flattened, Linear, PiGDM, estimate_sigma_y, log_evidence,
                                 random_projection)
from interpolant.oracle import GaussianMixture

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_projection_on_images_is_the_matrix_on_flattened_samples():
    """The image-shaped operator is ``M vec(x)``: adjoint identity, the same PiGDM restoration
    (reshaped) as the vector operator, and entries of variance 1 / m (||M x|| ~ ||x||)."""
    op_img, op_vec = random_projection(5, (1, 2, 4), seed=3), random_projection(5, 8, seed=3)
    assert isinstance(op_img, Flattened) and isinstance(op_vec, Linear)
    x = torch.randn(3, 1, 2, 4, generator=_gen(0), dtype=F64)
    v = torch.randn(3, 5, generator=_gen(1), dtype=F64)
    assert torch.allclose(op_img(x), op_vec(x.flatten(1)), atol=1e-14)
    assert torch.allclose((op_img(x) * v).sum(), (x * op_img.adjoint(v)).sum(), atol=1e-12)
    prior = GaussianMixture(torch.zeros(1, 8, dtype=F64), 0.5 * torch.eye(8, dtype=F64)[None])
    y = torch.randn(5, generator=_gen(2), dtype=F64)
    path = ip.paths.VPLinear()
    vec = PiGDM(prior.denoiser(path), op_vec, y, 0.1, data_var=0.5)
    img = PiGDM(_Unflat(prior.denoiser(path)), op_img, y, 0.1, data_var=0.5)
    assert torch.allclose(img(x, 0.4).flatten(1), vec(x.flatten(1), 0.4), atol=1e-12)
    w = random_projection(400, 50, seed=1).weight
    assert abs(float(w.pow(2).mean()) * 400 - 1) < 0.02  # 20000 entries: std of the mean 0.01


class _Unflat:
    """A vector denoiser served on ``(B, 1, 2, 4)`` images."""

    def __init__(self, den):
        self.den, self.path, self.nfe = den, den.path, 0

    def __call__(self, x, t, cond=None, target="x0"):
        return self.den(x.flatten(1), t, cond, target).view_as(x)


def test_the_estimate_is_the_closed_form_maximum():
    """Isotropic prior N(m, c I) and orthonormal rows: y - A m ~ N(0, (c + s^2) I), whose
    maximum-likelihood s^2 is mean((y - A m)^2) - c (N = 30 measurements, m = 6)."""
    c, d = 0.1, 10
    prior = GaussianMixture(torch.randn(1, d, generator=_gen(0), dtype=F64),
                            c * torch.eye(d, dtype=F64)[None])
    q, _ = torch.linalg.qr(torch.randn(d, 6, generator=_gen(1), dtype=F64))
    op = Linear(q.T)
    for s in (0.3, 0.7):
        y = op(prior.sample(30, _gen(2))) + s * torch.randn(30, 6, generator=_gen(3), dtype=F64)
        want = math.sqrt(float((y - op(prior.means)).pow(2).mean()) - c)
        got = estimate_sigma_y(prior, op, y)
        assert abs(got - want) < 1e-6 * want, (s, got, want)
        assert log_evidence(prior, op, y, got) > log_evidence(prior, op, y, 1.05 * got)


@pytest.mark.parametrize("sigma_y", [0.05, 0.2, 0.5])
def test_the_estimate_recovers_a_known_noise_level(sigma_y):
    """On the 8-D 4-component mixture, 100 measurements of 8 random projections each: the
    estimate is within 20% of the truth (its spread over 20 seeds: 4-6%, bias -2%)."""
    prior = GaussianMixture.preset("mix8d")
    op = random_projection(8, 8, seed=4)
    noise = torch.randn(100, 8, generator=_gen(6), dtype=F64)
    y = op(prior.sample(100, _gen(5))) + sigma_y * noise
    assert abs(estimate_sigma_y(prior, op, y) / sigma_y - 1) < 0.2


@pytest.mark.parametrize("kwargs, match", [
    ({"y": torch.full((8,), math.nan)}, "NaN"),
    ({"y": torch.zeros(7)}, r"y must have shape \(8,\)"),
    ({"bounds": (0.0, 1.0)}, "bounds must be 0 < low < high"),
    ({"prior": "mix8d"}, "prior must be an interpolant.oracle.GaussianMixture"),
    ({"op": torch.eye(8)}, "op must be an interpolant.inverse operator"),
    ({"shape": (1, 3, 3)}, "do not fit a 8-D prior"),
])
def test_bad_input(kwargs, match):
    args = {"prior": GaussianMixture.preset("mix8d"), "op": random_projection(8, 8),
            "y": torch.zeros(8, dtype=F64)}
    with pytest.raises(InterpolantError, match=match):
        estimate_sigma_y(**{**args, **kwargs})


def test_bad_projection():
    with pytest.raises(InterpolantError, match="m \\(the number of measurements\\) must be a "
                                               "positive integer"):
        random_projection(0, 8)
