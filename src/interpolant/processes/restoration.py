"""Training the restoration networks of cold diffusion and of RDDM.

* Cold diffusion (Bansal et al. 2022, eq. 1): a restoration operator ``R(x, t)`` is trained to
  invert the degradation ``D`` at levels ``t = k / levels``, ``k ~ U{1..levels}``::

      min_R E || R(D(x_0, t), t) - x_0 ||          (the paper's L1; ``norm="l2"`` here by default)

  whose L2 minimiser is the conditional expectation ``E[x_0 | D(x_0, t)]``. The trained ``R``
  drives :func:`interpolant.processes.cold.sample` (:func:`cold_restoration`).
* RDDM (Liu et al., CVPR 2024, eq. 6-8): with ``x_t = x_0 + eta (x_1 - x_0) + kappa z`` (a
  residual path of :mod:`.residual`), a residual network and a noise network are trained on

      L_res = E | r(x_t, t) - (x_1 - x_0) |^2,      L_eps = E | e(x_t, t) - z |^2,

  minimised by ``E[x_1 - x_0 | x_t]`` and ``E[z | x_t]``. Together they give the clean image
  ``x_0^ = x_t - eta r - kappa e`` (eq. 9) that :func:`interpolant.processes.residual.sample`
  steps with (:func:`rddm_restoration`); at the exact fields ``x_0^ = E[x_0 | x_t]``. Networks
  here are unconditional (``x_1`` from a second data set, as in RDDM's generation mode).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import InterpolantError, unknown_name
from ..interpolants.training import interpolate
from ..network import call_network, takes_cond
from ..paths.interpolant import Interpolant
from ..training.fit import fit
from .cold import Degradation, Restoration

__all__ = ["cold_loss", "train_cold", "cold_restoration", "rddm_losses", "train_rddm",
           "rddm_restoration"]

NORMS = ("l2", "l1")
Pairs = Callable[[int, torch.Generator], tuple[Tensor, Tensor]]


def _call(net: nn.Module | Callable[..., Tensor], x: Tensor, t: Tensor) -> Tensor:
    return call_network(net, takes_cond(net), x, t.to(x.dtype), None)


def _check_training(steps: int, batch_size: int, lr: float) -> None:
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise InterpolantError(f"need steps >= 1, batch_size >= 1 and lr > 0, got {steps}, "
                               f"{batch_size}, {lr}")


def cold_loss(net: nn.Module | Callable[..., Tensor], degrade: Degradation, x0: Tensor,
              levels: Tensor, n_levels: int, norm: str = "l2") -> Tensor:
    """Per-sample ``|| R(D(x_0, t), t) - x_0 ||`` (mean over dimensions; squared for ``l2``)
    at ``t = levels / n_levels`` (``levels`` int64 ``(B,)`` in ``1..n_levels``)."""
    if norm not in NORMS:
        raise unknown_name("norm", norm, NORMS)
    if n_levels < 1 or bool((levels < 1).any() | (levels > n_levels).any()):
        raise InterpolantError(f"levels must lie in 1..{n_levels} (n_levels >= 1)")
    t = levels.to(torch.float64) / n_levels
    y = torch.empty_like(x0)
    for k in levels.unique().tolist():
        rows = levels == k
        y[rows] = degrade(x0[rows], k / n_levels)
    err = _call(net, y, t) - x0
    return (err.pow(2) if norm == "l2" else err.abs()).flatten(1).mean(1)


def train_cold(net: nn.Module, degrade: Degradation, data: Callable[[int, torch.Generator],
               Tensor], n_levels: int, steps: int, batch_size: int = 128, lr: float = 2e-3,
               norm: str = "l2", seed: int = 0) -> list[float]:
    """Fit ``net`` as cold diffusion's ``R`` with Adam; returns the loss curve."""
    _check_training(steps, batch_size, lr)
    gen = torch.Generator().manual_seed(seed)

    def batch_loss(step: int) -> Tensor:
        x0 = data(batch_size, gen)
        levels = torch.randint(1, n_levels + 1, (batch_size,), generator=gen)
        return cold_loss(net, degrade, x0, levels, n_levels, norm).mean()
    return fit(net, batch_loss, steps, lr, name="cold-diffusion restoration", clip=None)


def cold_restoration(net: nn.Module | Callable[..., Tensor]) -> Restoration:
    """The trained ``R`` as :func:`interpolant.processes.cold.sample` calls it: ``(x, t)``."""
    def restore(x: Tensor, t: float) -> Tensor:
        with torch.no_grad():
            return _call(net, x, torch.full((x.shape[0],), float(t), dtype=torch.float64))
    return restore


def rddm_losses(res_net: nn.Module | Callable[..., Tensor], eps_net: nn.Module | Callable[
        ..., Tensor], path: Interpolant, x0: Tensor, x1: Tensor, t: Tensor, z: Tensor
                ) -> tuple[Tensor, Tensor]:
    """Per-sample ``(L_res, L_eps)`` (sums over dimensions) at times ``t`` ``(B,)``."""
    if x0.shape != x1.shape or z.shape != x0.shape:
        raise InterpolantError(f"x_0, x_1 and z must have one shape, got {tuple(x0.shape)}, "
                               f"{tuple(x1.shape)}, {tuple(z.shape)}")
    xt, _ = interpolate(path, x0, x1, z, t)
    res = (_call(res_net, xt, t) - (x1 - x0)).pow(2).flatten(1).sum(1)
    eps = (_call(eps_net, xt, t) - z).pow(2).flatten(1).sum(1)
    return res, eps


def train_rddm(res_net: nn.Module, eps_net: nn.Module, path: Interpolant, pairs: Pairs,
               steps: int, batch_size: int = 128, lr: float = 2e-3, seed: int = 0
               ) -> list[float]:
    """Fit RDDM's two networks together (``L_res + L_eps``, ``t ~ U[0, 1]``) with Adam;
    returns the curve of the summed loss."""
    _check_training(steps, batch_size, lr)
    gen = torch.Generator().manual_seed(seed)

    def batch_loss(step: int) -> Tensor:
        x0, x1 = pairs(batch_size, gen)
        t = torch.rand(batch_size, generator=gen, dtype=torch.float64)
        z = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        res, eps = rddm_losses(res_net, eps_net, path, x0, x1, t, z)
        return (res + eps).mean()
    return fit(nn.ModuleList([res_net, eps_net]), batch_loss, steps, lr, name="RDDM training",
               clip=None)


def rddm_restoration(res_net: nn.Module | Callable[..., Tensor], eps_net: nn.Module | Callable[
        ..., Tensor], path: Interpolant) -> Restoration:
    """``x_0^ = x_t - eta(t) r(x_t, t) - kappa(t) e(x_t, t)`` as ``(x, t) -> x_0^`` for
    :func:`interpolant.processes.residual.sample`."""
    if any(abs(path.a(t) + path.b(t) - 1.0) > 1e-12 for t in (0.0, 0.3, 0.7, 1.0)):
        raise InterpolantError(f"RDDM's x_0 = x_t - eta r - kappa e needs a residual path "
                               f"(a = 1 - b, see processes.residual); {path.name} is not one")

    def restore(x: Tensor, t: float) -> Tensor:
        tt = torch.full((x.shape[0],), float(t), dtype=torch.float64)
        with torch.no_grad():
            return x - path.b(t) * _call(res_net, x, tt) - path.gamma(t) * _call(eps_net, x, tt)
    return restore
