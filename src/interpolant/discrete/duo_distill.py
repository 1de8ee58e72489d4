"""Discrete Consistency Distillation through the diffusion duality (Sahoo et al. 2025, "Duo").

A Gaussian path on one-hot vectors, ``w_t = a(t) e_{x_0} + s(t) eps``, induces through
``argmax`` the uniform-state process with ``alpha_U(t) = duo_alpha(a(t) / s(t), K)``
(:mod:`.duality`); :class:`DuoSchedule` is that schedule, so a denoiser of
``Uniform(DuoSchedule(path, K), K)`` is the "discrete side" of the Gaussian path.

The Gaussian side has deterministic trajectories: for one draw of ``eps`` the points
``w_t`` and ``w_s`` (``s = t - dt``) lie on the same line from ``e_{x_0}``. Reading both
through ``argmax`` gives a coupled pair of discrete states ``(z_t, z_s)``, each with the
uniform process's exact marginal (:func:`trajectory_pair`). DCD trains a student at
``(z_t, t)`` to predict what a frozen teacher predicts one step further along the trajectory,
at ``(z_s, s)``:

    L = E KL(student(z_t, t) || teacher(z_s, s))        ("kl-bwd", the paper's default)
    L = E KL(teacher(z_s, s) || student(z_t, t))        ("kl-fwd")

summed over positions. :func:`distill` runs the paper's rounds: the teacher is the student as
it was at the start of a round, and the step doubles each round, ``dt = 2^n / T``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError, unknown_name
from ..paths import GaussianPath
from .duality import duo_alpha
from .objectives import model_log_probs
from .processes import Uniform, check_tokens
from .schedules import Schedule

__all__ = ["DuoSchedule", "dcd_loss", "distill", "duo_process", "trajectory_pair"]

LOSSES = ("kl-bwd", "kl-fwd")


class DuoSchedule(Schedule):
    """``alpha_U(t) = duo_alpha(a(t) / s(t), K)`` of a Gaussian ``path``, tabulated on
    ``points`` times and interpolated linearly (``alpha_U(0) = 1``, ``alpha_U(1) = 0`` when the
    path ends in pure noise)."""

    name = "duo"

    def __init__(self, path: GaussianPath, num_tokens: int, points: int = 513) -> None:
        if not isinstance(path, GaussianPath):
            raise InterpolantError("DuoSchedule needs a Gaussian path of interpolant.paths")
        self.path, self.num_tokens = path, num_tokens
        t = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
        a, s = path.alpha(t), path.sigma(t)
        nu = torch.where(s > 0, a / s.clamp_min(1e-300), torch.full_like(a, 1e6)).clamp_max(1e6)
        self.times, self.alphas = t, duo_alpha(nu, num_tokens).clamp(0.0, 1.0)

    def alpha(self, t: Tensor | float) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        return _interp(t, self.times, self.alphas)

    def dalpha(self, t: Tensor | float) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        h = 1.0 / (len(self.times) - 1)
        lo, hi = (t - h).clamp_min(0.0), (t + h).clamp_max(1.0)
        return (self.alpha(hi) - self.alpha(lo)) / (hi - lo)

    def t_of_alpha(self, alpha: Tensor | float) -> Tensor:
        raise InterpolantError("DuoSchedule has no inverse (the first-hitting sampler is for "
                               "the masked process)")

    def __repr__(self) -> str:
        return f"DuoSchedule({type(self.path).__name__}, K={self.num_tokens})"


def _interp(x: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
    i = torch.searchsorted(xs, x.clamp(0.0, 1.0), right=True).clamp(1, len(xs) - 1)
    w = (x.clamp(0.0, 1.0) - xs[i - 1]) / (xs[i] - xs[i - 1])
    return ys[i - 1] + w * (ys[i] - ys[i - 1])


def trajectory_pair(x0: Tensor, t: Tensor, s: Tensor, path: GaussianPath, num_tokens: int,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``(argmax w_t, argmax w_s)`` for ``w_r = a(r) e_{x_0} + s(r) eps`` with ONE ``eps`` per
    position: two points of the same deterministic Gaussian trajectory, read as tokens."""
    check_tokens(x0, num_tokens, "x0")
    eps = torch.randn((*x0.shape, num_tokens), generator=generator, dtype=torch.float64)
    one_hot = nn.functional.one_hot(x0, num_tokens).to(torch.float64)

    def point(r: Tensor) -> Tensor:
        r = r.to(torch.float64)[:, None, None]
        return (path.alpha(r) * one_hot + path.sigma(r) * eps).argmax(-1)

    return point(t), point(s)


def dcd_loss(student: Callable[..., Tensor], teacher: Callable[..., Tensor], x0: Tensor,
             t: Tensor, dt: float, path: GaussianPath, num_tokens: int,
             generator: torch.Generator | None = None, cond: Any = None,
             loss: str = "kl-bwd") -> Tensor:
    """Per-sequence DCD loss (module docstring), ``s = max(t - dt, 0)``; no gradient reaches
    the teacher."""
    if loss not in LOSSES:
        raise unknown_name("DCD loss", loss, LOSSES)
    if not 0.0 <= dt <= 1.0:
        raise InterpolantError(f"dt must lie in [0, 1], got {dt}")
    s = (t - dt).clamp_min(0.0)
    z_t, z_s = trajectory_pair(x0, t, s, path, num_tokens, generator)
    log_student = model_log_probs(student, z_t, t, cond, num_tokens)
    with torch.no_grad():
        log_teacher = model_log_probs(teacher, z_s, s, cond, num_tokens)
    if loss == "kl-bwd":
        kl = (log_student.exp() * (log_student - log_teacher)).sum(-1)
    else:
        kl = (log_teacher.exp() * (log_teacher - log_student)).sum(-1)
    return kl.sum(-1)


def distill(student: nn.Module, tokens: Tensor, path: GaussianPath, rounds: int,
            steps_per_round: int, T: int = 64, batch_size: int = 64, lr: float = 1e-3,
            seed: int = 0, loss: str = "kl-bwd") -> list[float]:
    """DCD rounds on ``tokens (N, L)``: in round ``n`` the teacher is a frozen copy of the
    student at the round's start and ``dt = 2^n / T``; returns the per-step losses (nats per
    token). The student must denoise ``Uniform(DuoSchedule(path, K), K)``."""
    if rounds < 1 or steps_per_round < 1 or T < 1:
        raise InterpolantError("rounds, steps_per_round and T must be positive")
    num_tokens = int(student.num_tokens) if hasattr(student, "num_tokens") else None
    if num_tokens is None:
        raise InterpolantError("the student must say its vocabulary (a num_tokens attribute)")
    check_tokens(tokens, num_tokens, "tokens")
    g = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(student.parameters(), lr=lr)
    losses = []
    for n in range(rounds):
        teacher = copy.deepcopy(student).eval().requires_grad_(False)
        dt = min(1.0, 2 ** n / T)
        for _ in range(steps_per_round):
            batch = tokens[torch.randint(len(tokens), (batch_size,), generator=g)]
            t = dt + (1 - dt) * torch.rand(batch_size, generator=g, dtype=torch.float64)
            value = dcd_loss(student, teacher, batch, t, dt, path, num_tokens, g,
                             loss=loss).mean() / tokens.shape[1]
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            optimiser.step()
            losses.append(float(value))
            if not torch.isfinite(value):
                raise InterpolantError(f"non-finite DCD loss in round {n}; lower lr")
    return losses


def duo_process(path: GaussianPath, num_tokens: int) -> Uniform:
    """The uniform process that ``argmax`` of ``path`` on one-hot vectors induces."""
    return Uniform(DuoSchedule(path, num_tokens), num_tokens)
