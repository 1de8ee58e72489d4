"""Time-Shift Sampler: the rule finds the time whose marginal variance the state has, is the
identity on exact marginals (as the dimension grows) and with a zero window, and corrects the
exact denoiser's data prediction for a state that drifted to another noise level."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.acceleration import TimeShift
from interpolant.errors import InterpolantError

PATH = ip.paths.VPCosine()
C = 0.3  # variance of the isotropic Gaussian data N(0, C I)


def exact_gaussian() -> ip.Denoiser:
    """The exact denoiser of N(0, C I): E[x0 | x_t] = alpha C / (alpha^2 C + sigma^2) x_t."""
    def net(x, t, cond=None):
        shape = (-1,) + (1,) * (x.ndim - 1)
        a, s = PATH.alpha(t.double()).view(shape), PATH.sigma(t.double()).view(shape)
        return (a * C / (a**2 * C + s**2) * x.double()).to(x.dtype)

    return ip.Denoiser(net, PATH, prediction="x0")


def marginal(t: torch.Tensor, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x0 = C**0.5 * torch.randn(len(t), d, generator=g, dtype=torch.float64)
    eps = torch.randn(len(t), d, generator=g, dtype=torch.float64)
    return PATH.alpha(t)[:, None] * x0 + PATH.sigma(t)[:, None] * eps


def test_the_rule_finds_the_time_of_the_states_variance():
    ts = TimeShift(exact_gaussian(), window=0.1, cutoff=0.2, data_variance=C, candidates=201)
    t = torch.tensor([0.3, 0.5, 0.7, 0.9, 0.1], dtype=torch.float64)
    true = t + torch.tensor([0.06, -0.04, 0.0, -0.09, 0.05], dtype=torch.float64)
    z = torch.randn(5, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = (z - z.mean(1, keepdim=True)) / z.std(1, unbiased=False, keepdim=True)
    x = z * ts.marginal_variance(true).sqrt()[:, None]  # sample variance exactly m(true)
    shifted = ts.shifted_time(x, t)
    assert torch.allclose(shifted[:4], true[:4], atol=1e-3 + 1e-12)  # spacing 0.2/200
    assert shifted[4] == t[4]  # below the cutoff: no shift


def test_exact_marginals_are_not_shifted_and_window_zero_is_the_identity():
    # (near t = 1 the marginal variance of the cosine path is flat in t: the time is ill
    # determined there, so the check stays where m'(t) is not small)
    t = torch.tensor([0.35, 0.5, 0.65], dtype=torch.float64).repeat(8)
    ts = TimeShift(exact_gaussian(), window=0.1, cutoff=0.2, data_variance=C, candidates=201)
    gaps = [float((ts.shifted_time(marginal(t, d), t) - t).abs().mean()) for d in (256, 65536)]
    assert gaps[1] < 0.005 and gaps[1] < gaps[0] / 4  # shrinks like 1 / sqrt(d)
    den = exact_gaussian()
    x1 = torch.randn(8, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    kw = {"solver": "dpm++2m", "steps": 6}
    assert torch.equal(ip.sample(TimeShift(den, window=0.0), x1, **kw), ip.sample(den, x1, **kw))


def test_a_drifted_state_gets_the_data_prediction_of_its_true_time():
    """A state drawn at t + 0.06 but labelled t: the plain exact denoiser shrinks it with the
    wrong factor; the shifted one recovers E[x0 | x] at the true time."""
    t = torch.full((6,), 0.5, dtype=torch.float64)
    x = marginal(t + 0.06, 8192, seed=1)
    den = exact_gaussian()
    truth = den(x, t + 0.06, None, "x0")
    shifted = TimeShift(den, window=0.1, data_variance=C, candidates=201)
    err_plain = float((den(x, t, None, "x0") - truth).norm() / truth.norm())
    err_shift = float((shifted(x, t, None, "x0") - truth).norm() / truth.norm())
    assert err_shift < 0.2 * err_plain
    eps = shifted(x, t, None, "eps")  # other targets: converted at the nominal time
    x0 = shifted(x, t, None, "x0")
    torch.testing.assert_close(eps, (x - PATH.alpha(t)[:, None] * x0) / PATH.sigma(t)[:, None])


@pytest.mark.parametrize("kwargs, message", [
    ({"window": -0.1}, "window must be a finite number >= 0"),
    ({"data_variance": float("nan")}, "data_variance must be"),
    ({"cutoff": 2.0}, "cutoff must be a time in"),
    ({"candidates": 0}, "candidates must be a positive integer"),
])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(InterpolantError, match=message):
        TimeShift(exact_gaussian(), **kwargs)
    with pytest.raises(InterpolantError, match="Gaussian path"):
        TimeShift(lambda x, t: x)
