"""DPM-OT (Li et al., ICCV 2023, "DPM-OT: a new diffusion probabilistic model based on optimal
transport"): a semi-discrete optimal-transport map from white noise to the data's latents at an
intermediate time ``t_s``, the "expressway", followed by a few solver steps from ``t_s`` to data.

**Semi-discrete OT.** The targets are ``n`` points ``y_i`` with weights ``nu_i`` (the paper:
the training data diffused forward to ``t_s``, ``y_i = alpha_s x0_i + sigma_s eps_i``, uniform
weights); the source is ``mu = N(0, I)``. For the quadratic cost the optimal map is the gradient
of the Brenier potential ``u_h(z) = max_i <z, y_i> + h_i``::

    T(z) = y_{i(z)},   i(z) = argmax_i <z, y_i> + h_i,

with cells ``W_i(h) = {z : i(z) = i}``. ``h`` minimises the convex energy
``E(h) = E_mu[u_h(z)] - sum_i nu_i h_i`` (equivalently maximises the Kantorovich dual), whose
gradient is ``dE/dh_i = mu(W_i(h)) - nu_i``: the cell masses minus the target weights. The
masses are Monte Carlo estimates on a batch of noise, the step is Adam (as in the authors'
code), and ``h`` is centred after each step (``E`` is invariant to adding a constant). At the
optimum every cell carries exactly its weight, and ``T`` pushes ``mu`` forward to ``sum nu_i
delta_{y_i}``; in one dimension ``T`` is the monotone quantile map (cell ``i`` is the interval
``[Phi^-1(nu_1 + .. + nu_{i-1}), Phi^-1(nu_1 + .. + nu_i)]``).

**Sampling.** ``x_s = T(z)`` costs no network evaluation; the teacher then runs ``nfe`` steps of
its solver from ``t_s`` to ``t_min`` (:class:`OTStudent`). With a small ``t_s`` the map returns
nearly the training points themselves: measure against held-out data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..grids import make as make_grid
from ..predictions import Denoiser
from ..solvers import sample as solve
from .loop import check_data, noisy

__all__ = ["SemiDiscreteOT", "fit_semidiscrete_ot", "expressway_targets", "OTStudent", "dpm_ot"]


@dataclass
class SemiDiscreteOT:
    """The Brenier map ``T(z) = y_{argmax_i <z, y_i> + h_i}`` to ``targets`` (n, ...)."""

    targets: Tensor
    h: Tensor
    weights: Tensor
    chunk: int = 4096

    def cells(self, z: Tensor) -> Tensor:
        """The cell index ``i(z)`` of every row of ``z`` (targets scanned in chunks)."""
        flat = z.reshape(z.shape[0], -1).to(self.targets.dtype)
        ys = self.targets.reshape(self.targets.shape[0], -1)
        if flat.shape[1] != ys.shape[1]:
            raise InterpolantError(f"noise of shape {tuple(z.shape[1:])} does not match the OT "
                                   f"targets' shape {tuple(self.targets.shape[1:])}")
        best = torch.full((flat.shape[0],), -torch.inf, dtype=flat.dtype, device=flat.device)
        idx = torch.zeros(flat.shape[0], dtype=torch.long, device=flat.device)
        for start in range(0, ys.shape[0], self.chunk):
            u = flat @ ys[start:start + self.chunk].T + self.h[start:start + self.chunk]
            val, arg = u.max(dim=1)
            better = val > best
            best = torch.where(better, val, best)
            idx = torch.where(better, arg + start, idx)
        return idx

    def __call__(self, z: Tensor) -> Tensor:
        return self.targets[self.cells(z)].to(z.dtype)

    def masses(self, n: int, generator: torch.Generator | None = None,
               batch: int = 8192) -> Tensor:
        """Monte Carlo cell masses ``mu(W_i)`` from ``n`` standard normal draws."""
        counts = torch.zeros(self.targets.shape[0], dtype=torch.float64)
        done = 0
        while done < n:
            m = min(batch, n - done)
            z = torch.randn((m, *self.targets.shape[1:]), generator=generator,
                            dtype=self.targets.dtype)
            counts += torch.bincount(self.cells(z), minlength=len(counts)).to(torch.float64)
            done += m
        return counts / n


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InterpolantError(f"{name} must be a positive integer, got {value!r}")
    return value


def fit_semidiscrete_ot(targets: Tensor, weights: Tensor | None = None, *, steps: int = 2000,
                        batch: int = 4096, lr: float = 0.05, final_lr: float = 3e-3,
                        generator: torch.Generator | None = None) -> SemiDiscreteOT:
    """The dual potential ``h`` of the semi-discrete OT from ``N(0, I)`` to ``targets``.

    Minimises ``E(h)`` by Adam on ``grad E = mu(W(h)) - nu`` estimated from ``batch`` noise
    draws per step, the step size decaying geometrically from ``lr`` to ``final_lr``
    (module docstring). ``weights`` default to uniform.
    """
    targets = check_data(targets, "the OT targets")
    n = targets.shape[0]
    steps, batch = _positive_int(steps, "steps"), _positive_int(batch, "batch")
    if weights is None:
        weights = torch.full((n,), 1.0 / n, dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if weights.shape != (n,) or not bool((weights > 0).all()) \
            or abs(float(weights.sum()) - 1.0) > 1e-9:
        raise InterpolantError(f"the OT weights must be {n} positive numbers summing to 1, got "
                               f"shape {tuple(weights.shape)} and sum {float(weights.sum()):g}")
    if not 0 < final_lr <= lr:
        raise InterpolantError(f"need 0 < final_lr <= lr, got lr={lr}, final_lr={final_lr}")
    ot = SemiDiscreteOT(targets.detach(), torch.zeros(n, dtype=targets.dtype), weights)
    m, v = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    mean_h = torch.zeros_like(ot.h)
    decay = (final_lr / lr) ** (1.0 / max(steps - 1, 1))
    for k in range(steps):
        z = torch.randn((batch, *targets.shape[1:]), generator=generator, dtype=targets.dtype)
        grad = torch.bincount(ot.cells(z), minlength=n).to(torch.float64) / batch - weights
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        step = lr * decay ** k * (m / (1 - 0.9 ** (k + 1))) \
            / ((v / (1 - 0.999 ** (k + 1))).sqrt() + 1e-8)
        h = ot.h - step.to(ot.h.dtype)
        ot.h = h - h.mean()
        if k >= steps // 2:
            mean_h += (ot.h - mean_h) / (k - steps // 2 + 1)
    ot.h = mean_h
    return ot


def expressway_targets(path: Any, data: Tensor, t_start: float,
                       generator: torch.Generator | None = None) -> Tensor:
    """The data's latents at ``t_start``: ``alpha_s x0_i + sigma_s eps_i``, one draw each."""
    data = check_data(data)
    t = torch.full((data.shape[0],), float(t_start), dtype=data.dtype)
    eps = torch.randn(data.shape, generator=generator, dtype=data.dtype)
    return noisy(path, data, t, eps)


@dataclass
class OTStudent:
    """DPM-OT sampling: ``x_s = T(z)`` (no network call), then ``nfe`` steps of ``solver`` on
    the ``grid`` from ``t_start`` to ``t_min``."""

    denoiser: Denoiser
    ot: SemiDiscreteOT
    t_start: float
    solver: str = "ddim"
    grid: str = "logsnr"
    method: str = "dpm-ot"

    @property
    def path(self):
        return self.denoiser.path

    @torch.no_grad()
    def sample(self, x1: Tensor, nfe: int = 1, generator: torch.Generator | None = None,
               cond: Any = None) -> Tensor:
        grid = make_grid(self.grid, self.path, _positive_int(nfe, "nfe"), self.t_start)
        return solve(self.denoiser, self.ot(x1), solver=self.solver, grid=grid, cond=cond,
                     generator=generator)


def dpm_ot(teacher: Denoiser, data: Tensor, *, t_start: float = 0.5, solver: str = "ddim",
           grid: str = "logsnr", steps: int = 2000, batch: int = 4096, lr: float = 0.05,
           final_lr: float = 3e-3, generator: torch.Generator | None = None) -> OTStudent:
    """DPM-OT with ``teacher``: the OT map from noise to ``data`` diffused to ``t_start``
    (``steps`` dual steps of :func:`fit_semidiscrete_ot`), sampled by :class:`OTStudent`."""
    if not isinstance(teacher, Denoiser):
        raise InterpolantError("DPM-OT needs the teacher as an interpolant.Denoiser, got "
                               f"{type(teacher).__name__}")
    t_start = float(t_start)
    if not teacher.path.t_min < t_start <= 1.0:
        raise InterpolantError(f"t_start must lie in ({teacher.path.t_min:g}, 1], the time "
                               f"of the latents the OT map reaches; got {t_start}")
    targets = expressway_targets(teacher.path, data, t_start, generator)
    ot = fit_semidiscrete_ot(targets, steps=steps, batch=batch, lr=lr, final_lr=final_lr,
                             generator=generator)
    return OTStudent(teacher, ot, t_start, solver, grid)
