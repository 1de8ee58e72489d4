"""RED-diff: variational posterior sampling by regularisation with the denoiser (Mardani,
Song, Kautz & Vahdat, "A Variational Perspective on Solving Inverse Problems with Diffusion
Models", ICLR 2024).

``q(x | y) = N(mu, 0)`` is fitted by stochastic gradient descent on

    loss(mu) = ||y - A mu||^2 / 2 + lam w_t sg[eps^(alpha_t mu + sigma_t eps, t) - eps]^T mu,

one time ``t`` per step, swept from the noise end down the grid (their "descending" schedule),
with fresh ``eps ~ N(0, I)`` each step and the weight ``w_t = sigma_t / alpha_t`` (SNR^-1/2,
their default). The regulariser's gradient is the score-matching residual: no Jacobian of the
network, one evaluation per step. ``mu`` follows Adam (``lr``, betas 0.9, 0.999) as in the
official code; its loss takes means over the ``m`` measurements and ``d`` pixels (a data term
``d / m`` times stronger; Adam sees only that ratio); this keeps the sums of the paper's loss, and
``sigma_y`` does not weight the data term (``lam`` sets the balance). ``mu`` starts where the
paper and code start, at ``A^+ y``, when ``sigma_y = 0``; for noisy measurements at the
Tikhonov-regularised inverse (the posterior mean under a ``N(0, data_var I)`` prior)

    mu_0 = A^T (A A^T + (sigma_y^2 / data_var) I)^{-1} y,

because ``A^+ y`` multiplies the noise by ``1 / s_min`` (for the 5-tap blur of 8x8 digits,
``s_min = 5e-4``: the start is off by ~100 per pixel, which Adam's steps of at most ``lr`` do not
undo: 4 dB on blurred digits, 14 dB from ``mu_0`` in 20 steps, 18 dB in 100). RED-diff is
mode-seeking: its ``n`` outputs, which differ only by the noise drawn, are estimates near the
posterior mean or a mode, not posterior samples.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from ..solvers import Noise
from .guided import _wiener
from .operators import Operator, positive_float
from .posterior import check_sigma_y

BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def start(op: Operator, y: Tensor, sigma_y: float, data_var: float = 1.0) -> Tensor:
    """``mu_0 = A^T (A A^T + sigma_y^2 / data_var I)^{-1} y`` for a batch ``y`` (``A^+ y`` when
    ``sigma_y = 0``)."""
    fn = functools.partial(_wiener, r2=data_var, s2=sigma_y**2)
    return op.adjoint(op.gram_apply(y, fn)) * data_var


def red_diff(den: Any, op: Operator, y: Tensor, x: Tensor, ts: Tensor, generator: Any = None,
             lam: float = 0.25, lr: float = 0.05, cond: Any = None, sigma_y: float = 0.0,
             data_var: float = 1.0) -> Tensor:
    """Fit ``mu`` (one per row of ``x``, which gives only the batch and dtype) over the
    decreasing grid ``ts``, from :func:`start`; returns the final ``mu``."""
    lam, lr = positive_float(lam, "lam"), positive_float(lr, "lr")
    sigma_y, data_var = check_sigma_y(sigma_y), positive_float(data_var, "data_var")
    noise, path, y = Noise(generator), den.path, y.to(x)[None]
    mu = start(op, y, sigma_y, data_var).expand_as(x).clone()
    m1, m2 = torch.zeros_like(mu), torch.zeros_like(mu)
    for k, t in enumerate(ts[:-1].tolist(), start=1):
        a, s = path.alpha(t), path.sigma(t)
        if a <= 0:  # alpha = 0: x_t carries nothing about mu
            continue
        eps = noise.like(mu)
        eps_hat = den(a * mu + s * eps, t, cond, "eps")
        grad = op.adjoint(op(mu) - y) + (lam * s / a) * (eps_hat - eps)
        m1.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
        m2.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
        step = (m1 / (1 - BETAS[0] ** k)) / ((m2 / (1 - BETAS[1] ** k)).sqrt() + ADAM_EPS)
        mu = mu - lr * step
    return mu
