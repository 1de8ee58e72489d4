"""BoundaryDiffusion: edit with one step across a linear semantic boundary in latent space.

Zhu, Huang, Qiu, Xie & Wu, "Boundary Guided Learning-Free Semantic Control with Diffusion
Models" (NeurIPS 2023). With an unconditional model and samples labelled by an attribute:

1. invert the labelled samples (DDIM) to the mixing time ``t_m`` and fit a hyperplane
   ``n . z + c = 0`` separating the two attribute values there (the paper fits a linear SVM;
   here logistic regression, a linear classifier of the same kind; ``|n| = 1``);
2. to edit ``x0``: invert it to ``t_m``, move its latent along the normal to signed distance
   ``distance`` on the target side, ``z' = z + (distance - (n . z + c)) n``, and sample back
   from ``t_m``.

No training of the model; ``distance = None`` keeps the latent (a round trip). The paper also
searches the mixing step; here ``t_m`` is given.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..solvers.sampling import sample
from .ode import invert

__all__ = ["Boundary", "boundary_edit", "fit_boundary"]


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


def fit_boundary(denoiser: Any, x: Tensor, labels: Tensor, t: float = 0.7,
                 solver: str = "ddim", steps: int | None = None, grid: Any = None,
                 iters: int = 500, l2: float = 1e-3) -> Boundary:
    """Invert ``x`` (batch first) to time ``t`` and fit the hyperplane separating ``labels``
    (0/1 or bool, shape ``(B,)``) by L2-regularised logistic regression (L-BFGS)."""
    if labels.shape != (x.shape[0],) or not bool(((labels == 0) | (labels == 1)).all()):
        raise InterpolantError(f"labels must be 0/1 of shape ({x.shape[0]},), one per sample")
    if bool(labels.all()) or not bool(labels.any()):
        raise InterpolantError("a boundary needs samples of both labels")
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
