"""BoundaryDiffusion: edit with one step across a linear semantic boundary in latent space.

Zhu, Huang, Qiu, Xie & Wu, "Boundary Guided Learning-Free Semantic Control with Diffusion
Models" (NeurIPS 2023). With an unconditional model and samples labelled by an attribute:

1. invert the labelled samples (DDIM) to the mixing time ``t_m`` and fit a hyperplane
   ``n . z + c = 0`` separating the two attribute values there (the paper fits a linear SVM;
   here logistic regression, a linear classifier of the same kind; ``|n| = 1``);
2. to edit ``x0``: invert it to ``t_m``, move its latent along the normal to signed distance
   ``distance`` on the target side, ``z' = z + (distance - (n . z + c)) n``, and sample back
   from ``t_m``.

No training of the model; ``distance = None`` keeps the latent (a round trip).

The mixing time. The paper edits at the step where the forward Markov chain has mixed: the
first ``t`` at which the law of ``x_t`` given the data, ``q(x_t | x0) = N(alpha x0, sigma^2 I)``,
is within ``eps`` in total variation of the prior ``N(0, s^2 I)`` (``s = sigma(1)``). Here the
total variation is bounded by Pinsker's inequality with the exact Gaussian KL,

    KL = (D sigma^2 / s^2 + alpha^2 |x0|^2 / s^2 - D) / 2 + D log(s / sigma),
    TV <= sqrt(KL / 2),

so :func:`mixing_time` (the earliest ``t`` with the bound at most ``eps`` for every given
sample, by bisection: the bound falls with ``t`` on VP and VE paths) is where the chain has
certainly mixed; :func:`fit_boundary` takes it when ``t=None``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..solvers.sampling import sample
from .ode import invert

__all__ = ["Boundary", "boundary_edit", "fit_boundary", "mixing_bound", "mixing_time"]


class Boundary(NamedTuple):
    """The hyperplane ``normal . z + offset = 0`` at time ``t``; positive side: label 1."""

    normal: Tensor
    offset: float
    t: float

    def distance(self, z: Tensor) -> Tensor:
        """Signed distance of each latent (batch first) to the hyperplane."""
        return z.flatten(1) @ self.normal + self.offset

    def move(self, z: Tensor, distance: float) -> Tensor:
        """``z + (distance - d(z)) n``: each latent moved along the normal to ``distance``."""
        step = float(distance) - self.distance(z)
        return z + (step[:, None] * self.normal).reshape(z.shape)


def mixing_bound(path: Any, x0: Tensor, t: float) -> Tensor:
    """Pinsker's bound ``sqrt(KL / 2)`` on ``TV(q(x_t | x0), N(0, sigma(1)^2 I))`` per sample
    (module formula)."""
    a, s, s1 = float(path.alpha(t)), float(path.sigma(t)), float(path.sigma(1.0))
    d = x0[0].numel()
    r2 = x0.flatten(1).double().pow(2).sum(1)
    kl = 0.5 * (d * s * s / s1**2 + a * a * r2 / s1**2 - d) + d * math.log(s1 / s)
    return (kl.clamp(min=0.0) / 2).sqrt()


def mixing_time(path: Any, x0: Tensor, eps: float = 0.1, tol: float = 1e-6) -> float:
    """The earliest ``t`` at which :func:`mixing_bound` is at most ``eps`` for every sample of
    ``x0`` (bisection on ``[t_min, 1]``): the forward chain's ``eps``-mixing time."""
    if not 0.0 < eps < 1.0:
        raise InterpolantError(f"eps is a total variation in (0, 1), got {eps}")
    lo, hi = float(path.t_min), 1.0
    if float(mixing_bound(path, x0, lo).max()) <= eps:
        return lo
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if float(mixing_bound(path, x0, mid).max()) <= eps else (mid, hi)
    return hi


def fit_boundary(denoiser: Any, x: Tensor, labels: Tensor, t: float | None = 0.7,
                 solver: str = "ddim", steps: int | None = None, grid: Any = None,
                 iters: int = 500, l2: float = 1e-3) -> Boundary:
    """Invert ``x`` (batch first) to time ``t`` (``None``: the data's :func:`mixing_time`)
    and fit the hyperplane separating ``labels`` (0/1 or bool, shape ``(B,)``) by
    L2-regularised logistic regression (L-BFGS)."""
    if labels.shape != (x.shape[0],) or not bool(((labels == 0) | (labels == 1)).all()):
        raise InterpolantError(f"labels must be 0/1 of shape ({x.shape[0]},), one per sample")
    if bool(labels.all()) or not bool(labels.any()):
        raise InterpolantError("a boundary needs samples of both labels")
    if t is None:
        t = mixing_time(denoiser.path, x)
    z = invert(denoiser, x, solver=solver, steps=steps, grid=grid, t_end=t).flatten(1).detach()
    y = labels.to(z.dtype)
    scale = z.std(0).clamp(min=1e-12)
    w = torch.zeros(z.shape[1] + 1, dtype=z.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=iters, line_search_fn="strong_wolfe")

    def loss() -> Tensor:
        opt.zero_grad()
        logits = (z / scale) @ w[:-1] + w[-1]
        value = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        value = value + l2 * w[:-1].square().sum()
        value.backward()
        return value

    opt.step(loss)
    normal = w[:-1].detach() / scale
    norm = normal.norm()
    return Boundary(normal / norm, float(w[-1].detach() / norm), float(t))


def boundary_edit(denoiser: Any, x0: Tensor, boundary: Boundary, distance: float | None,
                  solver: str = "ddim", steps: int | None = None, grid: Any = None) -> Tensor:
    """Invert ``x0`` to the boundary's time, move every latent to signed ``distance`` from it
    (positive: the side of label 1; ``None``: no move), and sample back."""
    z = invert(denoiser, x0, solver=solver, steps=steps, grid=grid, t_end=boundary.t)
    if distance is not None:
        z = boundary.move(z, distance)
    return sample(denoiser, z, solver=solver, steps=steps, grid=grid, t_start=boundary.t)
