"""DPM-Solver-v3's empirical model statistics, computed from the user's model and data.

Zheng et al. 2023 (arXiv 2310.13268), eq. 10-12: on the marginal ``x_lam = alpha x0 + sigma z``
of the data (``x0`` the user's samples), per data dimension,

    l_lam = E[ diag d(sigma eps_theta)/dx ]               (Hutchinson: E[v * J v], v = +-1)
    f     = (sigma eps_theta - l_lam x) / alpha
    s_lam = Cov(f', f) / (Var(f) + ridge),   b_lam = E[f'] - s_lam E[f]

where ``f' = df/dlam`` along the probability-flow ODE ``dx/dlam = (dx/dt) / (dlam/dt)`` (with
``l`` itself a function of ``lam``). ``J v`` and ``f'`` are central differences with steps
``eps^(1/3)`` of the working dtype (second-order accurate). Cost: ``5 n`` network evaluations
per log-SNR for ``n`` samples. The result is a :class:`~interpolant.solvers.dpm_v3.Statistics`
for ``ip.sample(den, x, "dpm-v3", statistics=...)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import grids
from ..errors import InterpolantError
from ..solvers.dpm_v3 import Statistics


def model_statistics(
    denoiser: Any,
    x0: Tensor,
    n_lams: int = 64,
    lam_range: tuple[float, float] | None = None,
    cond: Any = None,
    generator: torch.Generator | None = None,
    per_dimension: bool = True,
    shrink: float = 0.1,
) -> Statistics:
    """Statistics ``l, s, b`` of ``denoiser`` at ``n_lams`` log-SNRs evenly spaced over
    ``lam_range`` (default: the range of the path's log-SNR grid, clipped to
    ``[grids.LAM_MIN, grids.LAM_MAX]``), estimated on the data ``x0`` (batch first).

    ``per_dimension=False`` pools all dimensions into one value per log-SNR (the expectations
    run over samples and dimensions together): far less variance from few samples, at the cost
    of the per-pixel detail the paper keeps (it uses thousands of samples). ``shrink`` adds
    ``shrink`` times the mean variance of ``f`` over dimensions to each dimension's variance in
    the fit of ``s`` (ridge regression): a dimension where ``f`` barely varies (a pixel that is
    nearly always background) would otherwise get an ``s`` of 10 or more from noise."""
    if not isinstance(x0, Tensor) or not x0.is_floating_point() or x0.ndim < 2 or len(x0) < 2:
        raise InterpolantError("x0 must be a floating tensor of at least 2 samples, batch first")
    if n_lams < 2:
        raise InterpolantError(f"n_lams must be at least 2, got {n_lams}")
    path = denoiser.path
    lo, hi = lam_range or (max(path.lam(1.0), grids.LAM_MIN), min(path.lam(path.t_min),
                                                                  grids.LAM_MAX))
    if not lo < hi:
        raise InterpolantError(f"lam_range must be increasing, got ({lo}, {hi})")
    lams = torch.linspace(lo, hi, n_lams, dtype=torch.float64)
    delta = torch.finfo(x0.dtype).eps ** (1 / 3)
    over = (0,) if per_dimension else tuple(range(x0.ndim))
    states, l_rows = [], []
    with torch.no_grad():
        for lam in lams.tolist():
            t = float(path.t_of_lam(torch.tensor([lam], dtype=torch.float64))[0])
            a, s, _, _ = path.scalars(t)
            x = a * x0 + s * torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
            v = torch.randint(0, 2, x0.shape, generator=generator).to(x0.dtype) * 2 - 1
            jv = (denoiser(x + delta * v, t, cond, "eps") - denoiser(x - delta * v, t, cond, "eps"))
            l_rows.append((v * jv * (s / (2 * delta))).double().mean(over))
            states.append((t, x))
        l_all = torch.stack(l_rows)
        dl_all = torch.gradient(l_all, spacing=(lams,), dim=0)[0]  # second-order differences
        s_rows, b_rows = [], []
        for lam, (t, x), l_lam, dl in zip(lams.tolist(), states, l_all, dl_all):
            a, s, da, _ = path.scalars(t)
            rate = _dlam_dt(path, t)
            eps = denoiser(x, t, cond, "eps")
            dx = (da / a / rate) * x - s * eps  # dx/dlam = (d log alpha / dlam) x - sigma eps
            step = delta * dx
            t_up, t_down = (float(path.t_of_lam(torch.tensor([lam + d], dtype=torch.float64))[0])
                            for d in (delta, -delta))
            d_out = (path.sigma(t_up) * denoiser(x + step, t_up, cond, "eps").double()
                     - path.sigma(t_down) * denoiser(x - step, t_down, cond, "eps").double())
            x, eps, dx = x.double(), eps.double(), dx.double()
            here = (s * eps - l_lam * x) / a
            slope = (d_out / (2 * delta) - dl * x - l_lam * dx) / a - here * (da / a) / rate
            f_mean, d_mean = here.mean(over, keepdim=True), slope.mean(over, keepdim=True)
            cov = ((here - f_mean) * (slope - d_mean)).mean(over)
            var = (here - f_mean).pow(2).mean(over)
            f_mean, d_mean = f_mean.reshape(var.shape), d_mean.reshape(var.shape)
            # ridge: dimensions whose f hardly varies (a digit's background) get s -> 0
            ridge = shrink * var.mean() + 1e-6 * (f_mean.pow(2) + var) + 1e-300
            s_lam = cov / (var + ridge)
            s_rows.append(s_lam)
            b_rows.append(d_mean - s_lam * f_mean)
    return Statistics(lams, l_all, torch.stack(s_rows), torch.stack(b_rows))


def _dlam_dt(path: Any, t: float) -> float:
    a, s, da, ds = path.scalars(t)
    return da / a - ds / s

