"""Superposition of diffusion models: OR with the Itô density estimator (SuperDiff).

Skreta et al. (2025), "The Superposition of Diffusion Models Using the Itô Density Estimator".
Models ``i = 1..M`` on one path with marginals ``q^i_t`` and scores ``s_i``; their mixture
``sum_i w_i q^i`` (OR) has the score

    s = sum_i kappa_i s_i,        kappa = softmax_i(log w_i + log q^i_t(x)),

which needs every model's log-density along the sampling trajectory. For the forward SDE
``dx = f x dt + g dW`` of the path (``f = alpha'/alpha``, ``g^2 = 2 sigma sigma' - 2 sigma^2 f``),
Itô's formula on a reverse-time trajectory whose noise is the path's own ``g`` (any SDE sampler
at the natural diffusion) gives, over a step from ``(x_a, t_a)`` to ``(x_b, t_b)``,

    log q^i_{t_b}(x_b) - log q^i_{t_a}(x_a)
        = [-f D - f x_a . s_i + g^2 / 2 |s_i|^2] (t_b - t_a) + s_i . (x_b - x_a),

``s_i`` at ``(x_a, t_a)``, ``D`` the dimension: the Fokker-Planck Laplacian cancels against the
Itô correction, so no divergence is needed (the paper's Theorem 1, rederived here for a general
Gaussian path; its error is ``O(sqrt(dt))`` along a path).

:class:`SuperDiffOR` sees the trajectory through its calls: it is valid with samplers that
evaluate once per step at the state, with the path's natural noise (``euler-maruyama`` with
``diffusion=1``, ``ddpm``), and it keeps the running log-densities between calls (a call at a
larger ``t`` or another batch size starts a new run). The AND superposition, which solves for
``kappa`` given the step's noise, needs the sampler's noise: it is its own sampler,
:func:`interpolant.guidance.superdiff_and.superdiff_and`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from .base import Guided, new_run

__all__ = ["SuperDiffOR", "ito_increment"]


class SuperDiffOR(Guided):
    """``sum_i kappa_i D_i`` with ``kappa = softmax(log w_i + log q^i_t(x_t))`` tracked by the
    Itô density estimator (Skreta et al. 2025), as a denoiser; ``M`` NFE per call.

    Args:
        dens: the models (one path).
        weights: mixture weights ``w_i`` (default equal).
        initial: ``log q^i`` at the first call's ``(x, t)``, shape ``(B, M)``; by default all
            zero, exact in the softmax when the run starts from pure noise (equal marginals).

    ``log_q`` holds the current estimates ``(B, M)`` at the last call's ``(x, t)``.
    """

    def __init__(self, *dens: Any, weights: Any = None, initial: Tensor | None = None) -> None:
        if len(dens) < 2:
            raise InterpolantError("SuperDiffOR superposes at least two denoisers")
        super().__init__(**{f"model {i}": den for i, den in enumerate(dens)})
        self.dens = dens
        w = torch.ones(len(dens), dtype=torch.float64) if weights is None else torch.as_tensor(
            weights, dtype=torch.float64)
        if w.shape != (len(dens),) or not bool((w > 0).all()) or not bool(w.isfinite().all()):
            raise InterpolantError(f"weights must be {len(dens)} positive finite numbers")
        self.log_w = torch.log(w / w.sum())
        self.initial = initial
        self.reset()

    def reset(self) -> None:
        """Forget the current run."""
        self.log_q: Tensor | None = None
        self._last: tuple[float, Tensor, Tensor] | None = None  # (t, x, scores (M, B, ...))

    def _guide(self, x: Tensor, t: Tensor | float, cond: Any, target: str) -> Tensor:
        if not isinstance(t, float):
            raise InterpolantError("SuperDiffOR follows one time per batch; pass t as a float")
        outs = torch.stack([self._eval(den, x, t, cond, target) for den in self.dens])
        scores = torch.stack([self._convert(o, target, "score", x, t) for o in outs])
        last = self._last
        if new_run(None if last is None else (last[0], last[1].shape[0]), t, x)[0]:
            self.log_q = self._start(x)
        else:
            self.log_q = self.log_q + self._increment(*last, t, x)  # type: ignore[operator,misc]
        self._last = (t, x.detach().clone(), scores)
        kappa = torch.softmax(self.log_w.to(x.device) + self.log_q, dim=1).to(x.dtype)
        return torch.einsum("bm,mb...->b...", kappa, outs)

    def _start(self, x: Tensor) -> Tensor:
        m = len(self.dens)
        if self.initial is None:
            return torch.zeros(x.shape[0], m, dtype=torch.float64, device=x.device)
        if self.initial.shape != (x.shape[0], m):
            raise InterpolantError(f"initial must have shape ({x.shape[0]}, {m})")
        return self.initial.to(device=x.device, dtype=torch.float64)

    def _increment(self, t_a: float, x_a: Tensor, s_a: Tensor, t_b: float, x_b: Tensor) -> Tensor:
        return ito_increment(self.path, t_a, x_a, s_a, t_b, x_b)


def ito_increment(path: Any, t_a: float, x_a: Tensor, s_a: Tensor, t_b: float,
                  x_b: Tensor) -> Tensor:
    """The Itô step of every model's ``log q`` (module formula) from ``(x_a, t_a)`` to
    ``(x_b, t_b)`` with the scores ``s_a`` ``(M, B, ...)`` at ``(x_a, t_a)``; shape ``(B, M)``."""
    a, s, da, ds = path.scalars(t_a)
    f = da / a
    g2 = 2.0 * s * ds - 2.0 * s * s * f
    dims = tuple(range(2, s_a.ndim))
    flat_dim = x_a[0].numel()
    drift = (-f * flat_dim - f * (x_a * s_a).sum(dims) + 0.5 * g2 * (s_a * s_a).sum(dims))
    change = (s_a * (x_b - x_a)).sum(dims)
    return (drift * (t_b - t_a) + change).T.to(torch.float64)
