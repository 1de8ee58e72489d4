"""Feynman--Kac correctors with drift control (DriftLite) for a reward-tilted target.

Particles follow the model's reverse SDE plus a control drift ``u`` and carry weights, so that
the weighted population tracks the annealed path

    q_t(x) ∝ p_t(x) exp(lam_t r(x)),     lam_t = scale (t_start - t) / (t_start - t_end),

which ends at the tilted target ``p exp(scale r)`` (:func:`interpolant.guidance.tilted`). In
reverse time ``tau`` (``d tau = -dt``) the base SDE is ``dx = b dtau + g dW`` with
``b = -f x + g^2 s`` (``f = alpha'/alpha``, ``g^2 = 2 sigma sigma' - 2 f sigma^2``, ``s`` the
model's score). The Fokker--Planck equation of ``dx = (b + u) dtau + g dW`` with weights
``d log w = G dtau`` gives ``q_t`` when (Skreta et al. 2025, "Feynman-Kac Correctors in
Diffusion", the derivation of their weights for any target path)

    G = lam' r - lam f x.grad r - g^2 lam / 2 (lap r + lam |grad r|^2)
        + div u + u . (s + lam grad r)                              (+ a constant).

Every drift ``u`` is exact; only the weights' variance depends on it (the degree of freedom
DriftLite uses: Ren et al. 2025, "DriftLite: Lightweight Drift Control for Inference-Time
Scaling of Diffusion Models"). With ``u = theta grad r`` the potential is ``G0 + theta A``,
``A = lap r + grad r . (s + lam grad r)``, and ``control`` picks ``theta`` per step:

- ``"none"``: ``theta = 0`` (pure reweighting of the model's own SDE);
- ``"guidance"``: ``theta = g^2 lam`` (the drift of the score of ``q_t``: reward guidance, with
  the weights that make it exact);
- ``"vcg"``: variance-controlling guidance, ``theta = -Cov_w(G0, A) / Var_w(A)`` over the
  weighted particles, the ``theta`` that minimises the weights' variance this step.

Steps are Euler--Maruyama with left-point weights (first order); resampling as in
:func:`interpolant.guidance.smc` (ESS below ``ess_threshold K``). ``grad r`` is taken by autograd
and ``lap r`` exactly (``-tr P`` for the closed-form rewards; one backward pass per coordinate
otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..paths import GaussianPath
from ..solvers import Noise
from ..solvers.sampling import make_grid
from .particles import Particles, ess, resample_indices
from .steering_base import check_count, rewards_of

__all__ = ["CONTROLS", "driftlite"]

CONTROLS = ("vcg", "guidance", "none")


def _reward_terms(reward: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``r (K,)``, ``grad r`` (like ``x``) and ``lap r (K,)`` at ``x``."""
    with torch.inference_mode(False), torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        r = rewards_of(reward, xg)
        (grad,) = torch.autograd.grad(r.sum(), xg, create_graph=not hasattr(reward, "P"))
        if hasattr(reward, "P"):  # the closed-form rewards: r = -x^T P x / 2 + h^T x + c
            lap = torch.full_like(r, -float(torch.trace(reward.P)))
        else:
            flat = grad.flatten(1)
            lap = torch.zeros_like(r)
            for i in range(flat.shape[1]):
                (row,) = torch.autograd.grad(flat[:, i].sum(), xg, retain_graph=True)
                lap = lap + row.flatten(1)[:, i]
    return r.detach().to(torch.float64), grad.detach(), lap.detach().to(torch.float64)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).flatten(1).sum(1).to(torch.float64)


def driftlite(den: Any, x1: Tensor, reward: Callable[[Tensor], Tensor], *, scale: float = 1.0,
              control: str = "vcg", steps: int = 50, grid: str | Tensor | None = "quadratic",
              t_start: float = 1.0, t_end: float | None = None, ess_threshold: float = 0.5,
              cond: Any = None, generator: torch.Generator | None = None) -> Particles:
    """Run ``K = x1.shape[0]`` weighted particles from ``x1`` (noise at ``t_start``) to the
    data end (module docstring); returns :class:`~interpolant.guidance.Particles` (one network
    evaluation per step and particle)."""
    check_count(x1.shape[0] if isinstance(x1, Tensor) and x1.ndim else 0, "particles")
    if control not in CONTROLS:
        raise unknown_name("drift control", control, CONTROLS)
    path = getattr(den, "path", None)
    if not isinstance(path, GaussianPath):
        raise InterpolantError("driftlite needs a denoiser on a Gaussian path (it uses the "
                               "path's SDE: alpha, sigma and their derivatives)")
    ts = make_grid(grid, path, steps, t_start, t_end)
    times, k, noise = ts.tolist(), x1.shape[0], Noise(generator)
    span = times[0] - times[-1]
    x, log_w, log_z, ess_log, resampled = x1, torch.zeros(k, dtype=torch.float64), 0.0, [], []
    for i, (t, t_next) in enumerate(zip(times[:-1], times[1:])):
        ess_log.append(ess(log_w))
        if ess_log[-1] < ess_threshold * k:
            idx = resample_indices(log_w, "systematic", generator)
            log_z += float(torch.logsumexp(log_w, 0)) - math.log(k)
            x, log_w = x[idx], torch.zeros_like(log_w)
            resampled.append(i)
        a, s, da, ds = path.scalars(t)
        f = da / a
        g2 = 2 * s * ds - 2 * f * s * s
        lam, lam_rate = scale * (times[0] - t) / span, scale / span
        score = den(x, t, cond, "score")
        r, grad_r, lap_r = _reward_terms(reward, x)
        g0 = (lam_rate * r - lam * f * _dot(x, grad_r)
              - 0.5 * g2 * lam * (lap_r + lam * _dot(grad_r, grad_r)))
        slope = lap_r + _dot(grad_r, score + lam * grad_r)
        theta = _theta(control, g0, slope, log_w, g2 * lam)
        dtau = t - t_next
        log_w = log_w + (g0 + theta * slope) * dtau
        if not bool(torch.isfinite(log_w).all()):
            raise InterpolantError(f"a particle weight is not finite at step {i}; check the "
                                   "reward (finite, differentiable) or lower scale")
        drift = -f * x + g2 * score + theta * grad_r
        x = x + drift * dtau + math.sqrt(g2 * dtau) * noise.like(x)
    log_z += float(torch.logsumexp(log_w, 0)) - math.log(k)
    return Particles(x, log_w - torch.logsumexp(log_w, 0), log_z, tuple(ess_log),
                     tuple(resampled), len(times) - 1)


def _theta(control: str, g0: Tensor, slope: Tensor, log_w: Tensor, guide: float) -> float:
    """The control's coefficient this step (module docstring)."""
    if control == "none":
        return 0.0
    if control == "guidance":
        return guide
    w = torch.softmax(log_w, 0)
    da, dg = slope - w @ slope, g0 - w @ g0
    var = float(w @ (da * da))
    return 0.0 if var <= 1e-300 else -float(w @ (da * dg)) / var
