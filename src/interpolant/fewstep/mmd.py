"""MMD-DDM (Aiello, Valsesia & Magli 2023, "Fast Inference in Denoising Diffusion Models via
MMD Finetuning"): fine-tune a denoiser for one fixed short sampler by the maximum mean
discrepancy between its samples and the data, in a feature space.

The sampler (``nfe`` steps of a deterministic solver on a fixed grid) is differentiated end to
end: ``x = Sampler_theta(x1)``, and ``theta`` minimises the unbiased ``MMD^2`` of
``phi(x)`` against ``phi(x0)`` for a data batch ``x0`` (Gretton et al. 2012, eq. 3) with a sum
of Gaussian kernels ``k(a, b) = sum_h exp(-|a - b|^2 / (2 h^2))``. ``phi`` is the identity for
low-dimensional data; for images pass a feature network (the paper uses Inception features;
:func:`interpolant.metrics.digits_features` fits the 8x8 digits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..grids import make as make_grid
from ..predictions import Denoiser
from ..solvers import sample as solve
from .loop import check_data, check_student, draw_batch, fit
from .students import SolverStudent

__all__ = ["mmd2", "mmd_finetune"]


def mmd2(x: Tensor, y: Tensor, bandwidths: Sequence[float] = (0.1, 0.3, 1.0, 3.0)) -> Tensor:
    """Differentiable unbiased ``MMD^2`` of the rows of ``x`` and ``y`` (module docstring)."""
    x, y = x.flatten(1), y.flatten(1)
    if x.shape[0] < 2 or y.shape[0] < 2 or x.shape[1] != y.shape[1]:
        raise InterpolantError(f"MMD needs two sets of >= 2 points of one dimension, got "
                               f"{tuple(x.shape)} and {tuple(y.shape)}")
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    k = sum(torch.exp(-d2 / (2.0 * h * h)) for h in bandwidths)
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    within = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + \
        (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within - 2.0 * kxy.mean()


def mmd_finetune(
    den: Denoiser, data: Tensor, *, steps: int, nfe: int = 2, solver: str = "ddim",
    grid: str = "uniform", features: Callable[[Tensor], Tensor] | None = None,
    bandwidths: Sequence[float] = (0.1, 0.3, 1.0, 3.0), batch_size: int = 256, lr: float = 1e-4,
    generator: torch.Generator | None = None,
) -> SolverStudent:
    """Fine-tune ``den.model`` in place for ``solver`` with ``nfe`` steps on ``grid``."""
    if not isinstance(den, Denoiser) or not isinstance(den.model, torch.nn.Module):
        raise InterpolantError("MMD fine-tuning needs a Denoiser around a torch network")
    data = check_data(data)
    check_student(den.model, data[:2])
    ts = make_grid(grid, den.path, nfe)
    phi = features if features is not None else (lambda v: v)

    def loss(k: int) -> Tensor:
        x0, x1 = draw_batch(data, batch_size, generator)
        x = solve(den, x1, solver=solver, grid=ts)
        return mmd2(phi(x), phi(x0), bandwidths)

    losses = fit(den.model, loss, steps, lr, name="MMD fine-tuning")
    return SolverStudent(den, "mmd", solver, grid, ts, losses)
