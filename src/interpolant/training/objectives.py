"""Denoising / flow-matching objectives for any Gaussian path and any prediction target.

With ``x_t = alpha(t) x0 + sigma(t) eps`` the regression targets are

    eps:       eps                          (Ho et al. 2020)
    x0:        x0
    v:         alpha eps - sigma x0         (Salimans & Ho 2022)
    velocity:  alpha'(t) x0 + sigma'(t) eps (flow matching, Lipman et al. 2023; rectified flow)
    score:     -eps / sigma                 (denoising score matching, Vincent 2011)

and the per-sample loss is

    L_i = w_T(t_i) * mean_j (model(x_t, t, cond)_ij - T_ij)^2,

the mean over the non-batch dimensions, with the weight ``w_T`` of
:mod:`interpolant.training.weights` (stated in x0-space, translated to the target's space).
Times come from a density of :mod:`interpolant.training.densities`. Path coefficients are
computed in float64 and cast to the data's dtype; a low-precision model output (bf16
autocast) is upcast to float32 before the squared error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..paths import GaussianPath, broadcast_time
from ..predictions import TARGETS, call_network, combine, definition_coefficients, takes_cond
from . import densities as _densities
from . import weights as _weights

__all__ = ["Objective", "regression_target"]


def regression_target(target: str, x0: Tensor, noise: Tensor, t: Tensor,
                      path: GaussianPath) -> Tensor:
    """The target ``T = A x0 + B eps`` the network regresses onto, in ``x0``'s dtype.

    ``(A, B)`` at each sample's time come from the conversion table of
    :mod:`interpolant.predictions` (:func:`~interpolant.predictions.definition_coefficients`),
    so the target is by construction what ``convert`` makes of the true ``x0``.
    """
    if target not in TARGETS:
        raise unknown_name("prediction target", target, TARGETS)
    t64 = t.to(torch.float64)
    a, s, da, ds = (broadcast_time(fn(t64).to(device=x0.device, dtype=x0.dtype), x0)
                    for fn in (path.alpha, path.sigma, path.d_alpha, path.d_sigma))
    c_x0, c_eps = definition_coefficients(target, a, s, da, ds)
    return combine(c_x0, x0, c_eps, noise)


class Objective:
    """``Objective(path, target="eps", density="uniform", weight="uniform")``.

    ``density`` is a name (``uniform``, ``logit-normal``, ``edm``) or a callable
    ``(n, generator, path) -> t``; ``weight`` a name (``uniform``, ``snr``, ``snr+1``,
    ``min-snr[-gamma]``, ``edm``) or a callable ``(alpha, sigma) -> w_x0``.
    """

    def __init__(self, path: GaussianPath, target: str = "eps",
                 density: str | _densities.Density = "uniform",
                 weight: str | _weights.Weight | Callable[[Tensor, Tensor], Tensor] = "uniform",
                 ) -> None:
        if not isinstance(path, GaussianPath):
            raise InterpolantError(
                f"Objective needs a Gaussian path from interpolant.paths, got {type(path).__name__}"
            )
        if target not in TARGETS:
            raise unknown_name("prediction target", target, TARGETS)
        self.path = path
        self.target = target
        self.density = _densities.get(density)
        self.weight = _weights.get(weight, path)

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` training times from the density (float64)."""
        return _densities.draw(self.density, n, generator, self.path)

    def weight_of(self, t: Tensor) -> Tensor:
        """Per-sample weights ``w_T(t)`` in the target's space (float64)."""
        return _weights.target_weight(self.weight, self.target, self.path, t)

    def per_sample(self, model: Callable[..., Tensor], x0: Tensor, noise: Tensor, t: Tensor,
                   cond: Any = None) -> Tensor:
        """``L_i`` of shape ``(B,)`` in float32 (float64 for float64 data)."""
        _, out = self.outputs(model, x0, noise, t, cond)
        return self.loss_of(out, x0, noise, t)

    def outputs(self, model: Callable[..., Tensor], x0: Tensor, noise: Tensor, t: Tensor,
                cond: Any = None) -> tuple[Tensor, Tensor]:
        """``(x_t, model(x_t, t, cond))`` after checking the shapes and the path's range."""
        if noise.shape != x0.shape:
            raise InterpolantError(f"noise has shape {tuple(noise.shape)} but x0 has shape "
                                   f"{tuple(x0.shape)}")
        if t.shape != (x0.shape[0],):
            raise InterpolantError(f"t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")
        t64 = t.to(torch.float64)
        coefs = torch.stack([self.path.alpha(t64), self.path.sigma(t64)])
        if not bool(torch.isfinite(coefs).all()):
            bad = t64[~torch.isfinite(coefs).all(0)][0]
            raise InterpolantError(f"{type(self.path).__name__} has no finite alpha, sigma at "
                                   f"t = {float(bad):.6g}; "
                                   f"draw times in [t_min, t_max] = [{self.path.t_min}, "
                                   f"{self.path.t_max}]")
        x_t = self.path.sample(x0, t64, noise).to(x0.dtype)
        out = call_network(model, takes_cond(model), x_t,
                           t.to(device=x0.device, dtype=x0.dtype), cond)
        if not isinstance(out, Tensor) or out.shape != x0.shape:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InterpolantError(f"the model returned {shape} for data of shape "
                                   f"{tuple(x0.shape)}; it must return the data's shape")
        return x_t, out

    def loss_of(self, out: Tensor, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """``L_i = w_T(t_i) mean_j (out_ij - T_ij)^2`` for a network output ``out``."""
        dtype = torch.promote_types(x0.dtype, torch.float32)
        err = out.to(dtype) - regression_target(self.target, x0, noise, t, self.path).to(dtype)
        mse = err.pow(2).flatten(1).mean(1)
        return self.weight_of(t).to(device=mse.device, dtype=dtype) * mse

    def __call__(self, model: Callable[..., Tensor], x0: Tensor, noise: Tensor, t: Tensor,
                 cond: Any = None) -> Tensor:
        """The batch loss: the mean of :meth:`per_sample`."""
        return self.per_sample(model, x0, noise, t, cond).mean()

    def __repr__(self) -> str:
        return (f"Objective({self.path!r}, target={self.target!r}, density={self.density!r}, "
                f"weight={self.weight!r})")
