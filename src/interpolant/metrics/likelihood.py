"""Exact log-likelihood through the probability-flow ODE, and bits per dimension.

Along the probability-flow ODE ``dx/dt = v(x, t)`` (the denoiser's ``"velocity"`` target) the
log-density of the transported law obeys the instantaneous change of variables (Chen et al.
2018, neural ODEs, Thm. 1; Song et al. 2021, score SDEs, App. D.2)

    d/dt log p_t(x_t) = -div v(x_t, t),

so integrating ``[x, delta]`` with ``d delta/dt = div v`` from the data at ``t_end`` up to
``t_start = 1`` gives

    log p_{t_end}(x) = log p_prior(x_1) + int_{t_end}^{t_start} div v(x_t, t) dt.

This is the density the model assigns at ``t_end`` (default ``path.t_min``), i.e. of the data
blurred by ``sigma(t_end)``, not at ``t = 0``. With the exact velocity of a Gaussian mixture
it equals ``gmm.marginal(path, t_end).log_prob(x)`` up to the integration error, and up to the
prior mismatch below.

**Prior.** The default is ``N(0, sigma(t_start)^2 I)``, the law of ``sigma eps``; it is exact
when ``alpha(t_start) = 0`` (``Linear``, ``Trig``, ``VPCosine`` at ``t = 1``). Otherwise the
true ``p_1`` is the data scaled by ``alpha(1)`` and blurred: the error at one point is of
order ``alpha(1) |x_1| |x_0| / sigma(1)^2`` nats (first order; its mean over the data is of
second order). For ``VPLinear`` (``alpha(1) = 6.7e-3``) that is about ``1e-2`` nats on unit-scale
data; for ``VE`` (``alpha = 1``, ``sigma_max = 50``) about ``|x_0| |x_1| / 2500``. Pass
``prior=`` (a callable ``x -> log density (n,)``) to use another.

**Divergence.** ``exact_divergence=True`` takes ``D`` reverse-mode passes per evaluation
(``D`` = number of coordinates), fine in low dimension. Otherwise Hutchinson's estimator
``div v ~ mean_k e_k^T (dv/dx) e_k`` with probes ``e_k`` (Rademacher or Gaussian) held fixed
along the whole trajectory (FFJORD, Grathwohl et al. 2019): unbiased for the ODE
log-likelihood, since the integral is linear in ``e e^T`` and ``E[e e^T] = I``.

**Integrator.** Classical RK4 in ``t`` on a grid uniform in log-SNR (``interpolant.grids``):
steps shrink geometrically towards the data end, where the velocity varies on the scale
``sigma(t)``, so the local error is the same at every step; the method is differentiable
(``create_graph=True`` keeps the graph through every step, for use as a training loss or to
take gradients with respect to ``x``). ``method="dop853"`` runs scipy's adaptive DOP853 at
``rtol``/``atol`` instead, as an accuracy reference (no gradients).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from .. import grids
from ..errors import InterpolantError, unknown_name
from ..predictions import Denoiser
from ._checks import check_positive_int

__all__ = ["log_likelihood", "bits_per_dim", "dequantize"]

Drift = Callable[[Tensor, float], tuple[Tensor, Tensor]]


def _divergence(v: Tensor, x: Tensor, probes: Tensor | None, create_graph: bool) -> Tensor:
    """``div_x v`` per sample: exact (``probes is None``) or Hutchinson's mean over probes."""
    flat = v.flatten(1)
    if probes is None:
        div = torch.zeros(x.shape[0], dtype=v.dtype, device=v.device)
        for j in range(flat.shape[1]):
            (g,) = torch.autograd.grad(flat[:, j].sum(), x, retain_graph=True,
                                       create_graph=create_graph)
            div = div + g.flatten(1)[:, j]
        return div
    total = torch.zeros(x.shape[0], dtype=v.dtype, device=v.device)
    for e in probes:
        (g,) = torch.autograd.grad((v * e).sum(), x, retain_graph=True, create_graph=create_graph)
        total = total + (g * e).flatten(1).sum(1)
    return total / probes.shape[0]


def _make_drift(den: Denoiser, cond: Any, probes: Tensor | None, create_graph: bool) -> Drift:
    def drift(x: Tensor, t: float) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            if create_graph:
                xg = x if x.requires_grad else x.detach().requires_grad_(True)
            else:
                xg = x.detach().requires_grad_(True)
            v = den(xg, t, cond, target="velocity")
            div = _divergence(v, xg, probes, create_graph)
        if not create_graph:
            v, div = v.detach(), div.detach()
        return v, div

    return drift


def _rk4(drift: Drift, x: Tensor, ts: list[float]) -> tuple[Tensor, Tensor]:
    delta = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        h = t1 - t0
        v1, d1 = drift(x, t0)
        v2, d2 = drift(x + 0.5 * h * v1, t0 + 0.5 * h)
        v3, d3 = drift(x + 0.5 * h * v2, t0 + 0.5 * h)
        v4, d4 = drift(x + h * v3, t1)
        x = x + (h / 6.0) * (v1 + 2.0 * v2 + 2.0 * v3 + v4)
        delta = delta + (h / 6.0) * (d1 + 2.0 * d2 + 2.0 * d3 + d4)
    return x, delta


def _dop853(drift: Drift, x: Tensor, t0: float, t1: float, rtol: float, atol: float
            ) -> tuple[Tensor, Tensor]:
    shape, n = x.shape, x.shape[0]

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(y[n:]).to(x.dtype).view(shape)
        v, div = drift(xt, float(t))
        return np.concatenate([div.double().numpy(), v.double().flatten().numpy()])

    y0 = np.concatenate([np.zeros(n), x.detach().double().flatten().numpy()])
    sol = solve_ivp(rhs, (t0, t1), y0, method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise InterpolantError(f"DOP853 failed ({sol.message}); loosen rtol/atol or use rk4")
    y = torch.from_numpy(sol.y[:, -1]).to(x.dtype)
    return y[n:].view(shape), y[:n]


def _gaussian_prior(sigma: float) -> Callable[[Tensor], Tensor]:
    def log_prob(x: Tensor) -> Tensor:
        flat = x.flatten(1)
        d = flat.shape[1]
        return -0.5 * (flat.square().sum(1) / sigma**2 + d * math.log(2 * math.pi * sigma**2))

    return log_prob


def log_likelihood(
    denoiser: Denoiser,
    x: Tensor,
    cond: Any = None,
    *,
    t_end: float | None = None,
    t_start: float = 1.0,
    steps: int = 128,
    method: str = "rk4",
    exact_divergence: bool = True,
    n_probes: int = 1,
    probe: str = "rademacher",
    generator: torch.Generator | None = None,
    probes: Tensor | None = None,
    prior: Callable[[Tensor], Tensor] | None = None,
    create_graph: bool = False,
    rtol: float = 1e-8,
    atol: float = 1e-8,
) -> Tensor:
    """``log p_{t_end}(x)`` in nats, shape ``(n,)``, by the probability-flow ODE (module doc).

    ``x`` is a batch ``(n, ...)`` of data at ``t_end`` (default ``denoiser.path.t_min``);
    ``steps`` RK4 steps on the log-SNR grid (4 evaluations each). With
    ``exact_divergence=False``, ``n_probes`` probes of kind ``probe`` (``"rademacher"`` or
    ``"gaussian"``) are drawn from ``generator``, or given as ``probes`` of shape
    ``(n_probes, *x.shape)``. ``create_graph=True`` returns a differentiable result (through
    the model's parameters and ``x``); otherwise the result is detached.
    """
    if not isinstance(denoiser, Denoiser):
        raise InterpolantError("log_likelihood needs an interpolant.Denoiser (model + path)")
    if not isinstance(x, Tensor) or x.ndim < 2 or not x.is_floating_point():
        raise InterpolantError("x must be a floating tensor of shape (n, D) or (n, C, H, W)")
    if not torch.isfinite(x.detach()).all():
        raise InterpolantError("x contains NaN or infinite values")
    if method not in ("rk4", "dop853"):
        raise unknown_name("ODE method", method, ("rk4", "dop853"))
    if method == "dop853" and create_graph:
        raise InterpolantError("method='dop853' runs in numpy and has no gradients; use 'rk4'")
    path = denoiser.path
    t_end = path.t_min if t_end is None else float(t_end)
    if exact_divergence:
        probes = None
    elif probes is None:
        n_probes = check_positive_int(n_probes, "n_probes")
        shape = (n_probes, *x.shape)
        if probe == "rademacher":
            bits = torch.randint(0, 2, shape, generator=generator, dtype=torch.int64)
            probes = (2 * bits - 1).to(x.dtype)
        elif probe == "gaussian":
            probes = torch.randn(shape, generator=generator, dtype=torch.float64).to(x.dtype)
        else:
            raise unknown_name("probe", probe, ("gaussian", "rademacher"))
        probes = probes.to(x.device)
    elif probes.ndim != x.ndim + 1 or probes.shape[1:] != x.shape:
        raise InterpolantError(
            f"probes must have shape (n_probes, *x.shape) = (k, {', '.join(map(str, x.shape))}),"
            f" got {tuple(probes.shape)}"
        )
    drift = _make_drift(denoiser, cond, probes, create_graph)
    x_in = x if create_graph else x.detach()
    if method == "rk4":
        steps = check_positive_int(steps, "steps")
        ts = grids.make("logsnr", path, steps, t_start=t_start, t_end=t_end).flip(0).tolist()
        x1, delta = _rk4(drift, x_in, ts)
    else:
        grids.make("uniform", path, 1, t_start=t_start, t_end=t_end)  # validates the interval
        x1, delta = _dop853(drift, x_in, t_end, t_start, rtol, atol)
    prior = _gaussian_prior(path.sigma(t_start)) if prior is None else prior
    return prior(x1) + delta


def bits_per_dim(log_likelihood: Tensor, n_dims: int, bin_width: float = 2.0 / 256) -> Tensor:
    """Bits per dimension ``-(log p(x) + D log(bin_width)) / (D log 2)``.

    ``log_likelihood`` is a continuous log-density (nats) of data ``x`` whose quantisation
    cells have width ``bin_width`` in the units of ``x``: ``2/256`` for 8-bit images mapped to
    ``[-1, 1]`` (Song et al. 2021), ``1/8`` for the 17-level digits ``v/8 - 1``. Evaluated on
    uniformly dequantised data (:func:`dequantize`), it is an upper bound on the discrete
    model's bits per dimension (Theis et al. 2016). A uniform density on ``[-1, 1]^D`` with
    ``bin_width = 2/256`` scores exactly 8 bits.
    """
    n_dims = check_positive_int(n_dims, "n_dims")
    if not bin_width > 0:
        raise InterpolantError(f"bin_width must be positive, got {bin_width!r}")
    return -(log_likelihood + n_dims * math.log(bin_width)) / (n_dims * math.log(2.0))


def dequantize(x: Tensor, bin_width: float, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantisation ``x + bin_width (u - 1/2)``, ``u ~ U[0, 1)^D``: spreads each
    quantised value over the cell of width ``bin_width`` centred on it."""
    if not bin_width > 0:
        raise InterpolantError(f"bin_width must be positive, got {bin_width!r}")
    u = torch.rand(x.shape, generator=generator, dtype=torch.float64).to(x.dtype)
    return x + bin_width * (u.to(x.device) - 0.5)
