"""DDPM ancestral sampling with learned variances (improved DDPM).

Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models" (ICML 2021), eq. 15:
the network outputs, besides its prediction (``eps``), one raw value ``r`` per dimension, and
the reverse kernel ``p(x_t | x_s) = N(mu, Sigma)`` (``s`` noisier than ``t``) has

    v = (r + 1) / 2,     log Sigma = v log beta + (1 - v) log beta~,

between the forward step's variance ``beta`` and the posterior variance ``beta~`` (the
``learned_range`` of guided-diffusion and diffusers). On any Gaussian path, with
``h = lam_t - lam_s > 0``, the step's posterior ``q(x_t | x_s, x0) = N(c_0 x0 + c_x x_s, beta~)``
has (Ho et al. 2020, eq. 7, in path form)::

    c_0 = alpha_t (1 - exp(-2h)),   c_x = (sigma_t / sigma_s) exp(-h),
    beta = sigma_s^2 (1 - exp(-2h)),   beta~ = sigma_t^2 (1 - exp(-2h)),

which on a VP schedule are DDPM's ``sqrt(abar_t) beta_s / (1 - abar_s)``,
``sqrt(alpha_s) (1 - abar_t) / (1 - abar_s)``, ``beta_s = 1 - abar_s / abar_t`` and
``(1 - abar_t) / (1 - abar_s) beta_s``. The mean ``mu`` is the posterior mean at the network's
``x0``. At a step to clean data (``sigma_t = 0``) ``beta~ = 0``: the step returns the mean
(``x0``) and draws no noise, as diffusers does at ``t = 0``; :func:`posterior_step` then
takes ``log beta~`` from ``clip_next`` (guided-diffusion's clipped log-variance) when given.

The network's output has twice the channels of ``x`` (dim 1): :class:`LearnedRangeDenoiser`
wraps it and answers the target :data:`WITH_RANGE` (``x0`` and ``r`` concatenated) with one
evaluation. The solver :class:`DDPMLearned` is used as a value:
``ip.sample(LearnedRangeDenoiser(net, path), x1, solver=DDPMLearned(), grid=ts)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..network import ModelLike, call_network, takes_cond
from ..paths import GaussianPath, broadcast_time
from ..predictions import TARGETS, convert_with
from .base import Model, Noise, Solver, State

WITH_RANGE = "x0+range"  # the target asking for the data prediction and r in one evaluation

__all__ = ["WITH_RANGE", "PosteriorStep", "posterior_step", "learned_log_variance",
           "LearnedRangeDenoiser", "DDPMLearned"]


class PosteriorStep(NamedTuple):
    """The step ``s -> t``: posterior mean ``c_0 x0 + c_x x_s`` and the two variances (with
    their logs; ``log_beta_tilde`` is ``-inf`` at a step to clean data unless clipped)."""

    c_0: float
    c_x: float
    beta: float
    beta_tilde: float
    log_beta: float
    log_beta_tilde: float


def posterior_step(path: GaussianPath, s: float, t: float,
                   clip_next: float | None = None) -> PosteriorStep:
    """:class:`PosteriorStep` of ``q(x_t | x_s, x0)`` for ``t < s`` (float64 scalars).

    ``clip_next``: where ``beta~ = 0`` (``sigma_t = 0``), take ``log beta~`` of the next step
    up, ``posterior_step(path, clip_next, s)``, instead of ``-inf`` (guided-diffusion's
    ``posterior_log_variance_clipped``, used by the bound's decoder)."""
    if not t < s:
        raise InterpolantError(f"a reverse step needs t < s, got s={s}, t={t}")
    a_t, sig_s, sig_t = path.alpha(t), path.sigma(s), path.sigma(t)
    h = path.lam(t) - path.lam(s)  # +inf at sigma_t = 0
    one_minus = -math.expm1(-2.0 * h)
    c_x = sig_t / sig_s * math.exp(-h)
    beta, beta_tilde = sig_s**2 * one_minus, sig_t**2 * one_minus
    log_bt = math.log(beta_tilde) if beta_tilde > 0.0 else -math.inf
    if beta_tilde == 0.0 and clip_next is not None:
        log_bt = posterior_step(path, clip_next, s).log_beta_tilde
    return PosteriorStep(a_t * one_minus, c_x, beta, beta_tilde, math.log(beta), log_bt)


def learned_log_variance(r: Tensor, step: PosteriorStep) -> Tensor:
    """``log Sigma = v log beta + (1 - v) log beta~`` with ``v = (r + 1) / 2``."""
    v = (r + 1.0) / 2.0
    return v * step.log_beta + (1.0 - v) * step.log_beta_tilde


class LearnedRangeDenoiser:
    """A network with ``2C`` output channels (dim 1): its prediction (``prediction``, usually
    ``eps``) and the raw variance output ``r`` of :func:`learned_log_variance`.

    ``den(x, t, cond, target)`` answers every target of :data:`interpolant.predictions.TARGETS`
    (from the first half) and :data:`WITH_RANGE` (``x0`` and ``r`` concatenated along dim 1);
    :meth:`outputs` gives the raw ``(prediction, r)``. ``time_scale``, ``time_shift`` map
    ``t`` to the network's time as in :class:`interpolant.Denoiser` (``1000, -1`` for DDPM
    indices ``k = 1000 t - 1``). ``nfe`` counts evaluations."""

    def __init__(self, model: ModelLike, path: GaussianPath, prediction: str = "eps", *,
                 time_scale: float = 1.0, time_shift: float = 0.0) -> None:
        if not isinstance(path, GaussianPath):
            raise InterpolantError(
                f"LearnedRangeDenoiser needs a Gaussian path, got {type(path).__name__}")
        if prediction not in TARGETS:
            raise InterpolantError(f"prediction must be one of {', '.join(TARGETS)}, "
                                   f"got {prediction!r}")
        self.model, self.path, self.prediction = model, path, prediction
        self.time_scale, self.time_shift = float(time_scale), float(time_shift)
        self._with_cond = takes_cond(model)
        self.nfe = 0

    def outputs(self, x: Tensor, t: float | Tensor, cond: Any = None) -> tuple[Tensor, Tensor]:
        """``(prediction, r)``: the two halves of one network evaluation at ``(x, t)``."""
        t_vec = (torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
                 if not isinstance(t, Tensor) or t.ndim == 0 else t.to(x.dtype))
        out = call_network(self.model, self._with_cond, x,
                           t_vec * self.time_scale + self.time_shift, cond)
        self.nfe += 1
        if not isinstance(out, Tensor) or out.ndim != x.ndim or out.shape[1] != 2 * x.shape[1]:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InterpolantError(
                f"a learned-variance network must return twice the channels of x "
                f"{tuple(x.shape)} along dim 1 (prediction, then r); it returned {shape}")
        pred, r = out.to(x.dtype).split(x.shape[1], dim=1)
        return pred, r

    def to_target(self, pred: Tensor, x: Tensor, t: float | Tensor, target: str) -> Tensor:
        """The network's prediction ``pred`` at ``(x, t)`` as ``target`` (``t`` a float or
        ``(B,)``)."""
        if target not in TARGETS:
            raise InterpolantError(f"target must be one of {', '.join(TARGETS)} or "
                                   f"{WITH_RANGE!r}, got {target!r}")
        if isinstance(t, Tensor) and t.ndim == 1:
            t64 = t.to(torch.float64)
            coefs = [broadcast_time(fn(t64).to(x.dtype), x) for fn in
                     (self.path.alpha, self.path.sigma, self.path.d_alpha, self.path.d_sigma)]
        else:
            coefs = list(self.path.scalars(float(t)))
        return convert_with(pred, self.prediction, target, x, *coefs)

    def __call__(self, x: Tensor, t: float | Tensor, cond: Any = None,
                 target: str = "x0") -> Tensor:
        pred, r = self.outputs(x, t, cond)
        if target == WITH_RANGE:
            return torch.cat([self.to_target(pred, x, t, "x0"), r], dim=1)
        return self.to_target(pred, x, t, target)


@dataclass(frozen=True)
class DDPMLearned(Solver):
    """Ancestral sampling ``x_t = c_0 x0 + c_x x_s + exp(log Sigma / 2) z`` with the learned
    ``log Sigma`` of :func:`learned_log_variance`; one evaluation (of :data:`WITH_RANGE`) per
    step. ``clip`` clamps ``x0`` to ``[-clip, clip]`` (diffusers' ``clip_sample``); None keeps
    it. Parity with diffusers' ``DDPMScheduler(variance_type="learned_range")`` is tested."""

    clip: float | None = None

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return True

    def run(self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
            ) -> Iterator[State]:
        times = ts.tolist()
        channels = x.shape[1]
        for i, (s, t) in enumerate(zip(times[:-1], times[1:])):
            step = posterior_step(path, s, t)
            x0, r = model(x, s, WITH_RANGE).split(channels, dim=1)
            if self.clip is not None:
                x0 = x0.clamp(-self.clip, self.clip)
            x = step.c_0 * x0 + step.c_x * x
            if step.beta_tilde > 0.0:
                x = x + torch.exp(0.5 * learned_log_variance(r, step)) * noise.like(x)
            yield State(i + 1, t, x, x0, model.nfe)
