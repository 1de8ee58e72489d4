"""RED-diff: variational posterior sampling by regularisation with the denoiser (Mardani,
Song, Kautz & Vahdat, "A Variational Perspective on Solving Inverse Problems with Diffusion
Models", ICLR 2024).

``q(x | y) = N(mu, 0)`` is fitted by stochastic gradient descent on

    loss(mu) = ||y - A mu||^2 / 2 + lam w_t sg[eps^(alpha_t mu + sigma_t eps, t) - eps]^T mu,

one time ``t`` per step, swept from the noise end down the grid (their "descending" schedule),
with fresh ``eps ~ N(0, I)`` each step and the weight ``w_t = sigma_t / alpha_t`` (SNR^-1/2,
their default). The regulariser's gradient is the score-matching residual: no Jacobian of the
network, one evaluation per step. ``mu`` starts at ``A^+ y`` and follows Adam (``lr``, betas
0.9, 0.999) as in the official code, whose loss scaling this keeps (``sigma_y`` enters only
through the choice of ``lam``). RED-diff is mode-seeking: its ``n`` outputs, which differ
only by the noise drawn, are estimates near the posterior mean or a mode, not posterior samples.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..solvers import Noise
from .operators import Operator, positive_float

BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def red_diff(den: Any, op: Operator, y: Tensor, x: Tensor, ts: Tensor, generator: Any = None,
             lam: float = 0.25, lr: float = 0.05, cond: Any = None) -> Tensor:
    """Fit ``mu`` (one per row of ``x``, which gives only the batch and dtype) over the
    decreasing grid ``ts``; returns the final ``mu``."""
    lam, lr = positive_float(lam, "lam"), positive_float(lr, "lr")
    noise, path, y = Noise(generator), den.path, y.to(x)[None]
    mu = op.pinv(y).expand_as(x).clone()
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
