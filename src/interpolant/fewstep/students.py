"""Few-step students as values: a consistency model with its multistep sampler, or a denoiser
with the solver and grid it was distilled for. :func:`interpolant.fewstep.sample` draws from
either with 1, 2 or 4 network evaluations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..grids import make as make_grid
from ..predictions import Denoiser
from ..solvers import sample as solve
from .consistency import ConsistencyModel, consistency_sample, multistep_times

__all__ = ["ConsistencyStudent", "SolverStudent"]


def _check_nfe(nfe: Any) -> int:
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise InterpolantError(f"nfe must be a positive integer (1, 2, 4, ...), got {nfe!r}")
    return nfe


@dataclass
class ConsistencyStudent:
    """A consistency model (CD or iCT); ``eta`` as in :func:`.consistency.consistency_sample`
    (1: Song et al.'s Algorithm 1, 0: deterministic)."""

    model: ConsistencyModel
    method: str
    eta: float = 1.0
    losses: list[float] = field(default_factory=list, repr=False)

    @property
    def path(self):
        return self.model.path

    @torch.no_grad()
    def sample(self, x1: Tensor, nfe: int = 1, generator: torch.Generator | None = None,
               cond: Any = None, times: Tensor | None = None) -> Tensor:
        times = multistep_times(self.path, _check_nfe(nfe)) if times is None else times
        self.model.eval()
        return consistency_sample(self.model, self.path, x1, times, generator, cond, self.eta)


@dataclass
class SolverStudent:
    """A denoiser sampled with ``solver`` on ``grid`` (a name, or the explicit grid it was
    distilled on, used when ``nfe`` equals its steps; a named grid of ``nfe`` steps otherwise)."""

    denoiser: Denoiser
    method: str
    solver: str
    grid: str
    trained_grid: Tensor | None = None
    losses: list[float] = field(default_factory=list, repr=False)

    @property
    def path(self):
        return self.denoiser.path

    @torch.no_grad()
    def sample(self, x1: Tensor, nfe: int = 1, generator: torch.Generator | None = None,
               cond: Any = None) -> Tensor:
        nfe = _check_nfe(nfe)
        grid = self.trained_grid
        if grid is None or len(grid) != nfe + 1:
            grid = make_grid(self.grid, self.path, nfe)
        model = self.denoiser.model
        if isinstance(model, torch.nn.Module):
            model.eval()
        return solve(self.denoiser, x1, solver=self.solver, grid=grid, cond=cond,
                     generator=generator)
