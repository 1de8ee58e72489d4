"""A discrete DDPM schedule ``alphas_cumprod[k]`` as a continuous variance-preserving path.

Training index ``k`` (0..N-1) sits at the knot ``t_k = (k + 1) / N`` with
``log alpha(t_k) = log(alphas_cumprod[k]) / 2`` exactly; between the knots ``log alpha`` is

* ``interpolation="linear"`` (default): linear in ``t``, the convention of DPM-Solver
  (Lu et al. 2022) and of the diffusers schedulers built on it;
* ``interpolation="cubic"``: the monotone piecewise-cubic Hermite interpolant (PCHIP: Fritsch &
  Carlson 1980, with the harmonic-mean knot slopes of Fritsch & Butland 1984, as scipy's
  ``PchipInterpolator``), continuously differentiable and decreasing wherever the data are.

Outside ``[t_0, t_{N-1}]`` both extrapolate linearly with the end secants, stopping at
``alpha = 1`` (``sigma = 0``) below ``t_min = 1 / N``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from .vp import _VP

_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
INTERPOLATIONS = ("linear", "cubic")
_NEWTON = 40  # at most this many safeguarded Newton steps in the cubic inverse (3-6 used)

__all__ = ["VPDiscrete", "beta_schedule", "INTERPOLATIONS"]


def beta_schedule(
    schedule: str = "linear",
    num_train_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> Tensor:
    """``alphas_cumprod`` (float64) of the beta schedules of diffusers' ``DDPMScheduler``.

    ``linear``: betas evenly spaced; ``scaled_linear``: their square roots evenly spaced
    (Stable Diffusion, usually with 0.00085, 0.012); ``squaredcos_cap_v2``:
    ``beta_k = min(1 - abar((k+1)/N) / abar(k/N), 0.999)`` with the cosine ``abar``.
    """
    n = num_train_timesteps
    if schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float64)
    elif schedule == "scaled_linear":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2
    elif schedule == "squaredcos_cap_v2":
        k = torch.arange(n, dtype=torch.float64)
        abar = lambda u: torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = torch.clamp(1 - abar((k + 1) / n) / abar(k / n), max=0.999)
    else:
        raise InterpolantError(
            f"unknown beta schedule {schedule!r}; choose one of: {', '.join(_BETA_SCHEDULES)}"
        )
    return torch.cumprod(1.0 - betas, dim=0)


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation with linear extrapolation; ``xp`` increasing."""
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    x_lo, x_hi, f_lo, f_hi = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    return f_lo + (x - x_lo) * (f_hi - f_lo) / (x_hi - x_lo)


def _end_slope(h0: float, h1: float, m0: float, m1: float) -> float:
    """PCHIP's one-sided three-point slope at an end, limited to keep monotonicity."""
    d = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if d * m0 <= 0.0:
        return 0.0
    if m0 * m1 < 0.0 and abs(d) > 3.0 * abs(m0):
        return 3.0 * m0
    return d


def pchip_slopes(xp: Tensor, fp: Tensor) -> Tensor:
    """Knot slopes of the monotone cubic through ``(xp, fp)``: ``d_k`` is the weighted harmonic
    mean of the secants ``m_{k-1}, m_k`` (0 where they differ in sign), which keeps every
    segment monotone (Fritsch & Carlson's condition ``d / m <= 3``)."""
    h = xp[1:] - xp[:-1]
    m = (fp[1:] - fp[:-1]) / h
    if m.numel() == 1:
        return torch.cat([m, m])
    w1, w2 = 2.0 * h[1:] + h[:-1], h[1:] + 2.0 * h[:-1]
    inner = torch.where(m[:-1] * m[1:] > 0, (w1 + w2) / (w1 / m[:-1] + w2 / m[1:]), 0.0)
    h_, m_ = h.tolist(), m.tolist()
    first = _end_slope(h_[0], h_[1], m_[0], m_[1])
    last = _end_slope(h_[-1], h_[-2], m_[-1], m_[-2])
    return torch.cat([inner.new_tensor([first]), inner, inner.new_tensor([last])])


def _segment(xp: Tensor, fp: Tensor, dp: Tensor, k: Tensor) -> tuple[Tensor, ...]:
    """Left end, width, end values and width-scaled end slopes of segments ``[k, k + 1]``."""
    h = xp[k + 1] - xp[k]
    return xp[k], h, fp[k], fp[k + 1], dp[k] * h, dp[k + 1] * h


def _hermite(u: Tensor, f0: Tensor, f1: Tensor, m0: Tensor, m1: Tensor) -> Tensor:
    """The cubic with values ``f0, f1`` and slopes ``m0, m1`` (per unit ``u``) at ``u = 0, 1``:
    ``(1 + 2u)(1-u)^2 f0 + u(1-u)^2 m0 + u^2(3 - 2u) f1 - u^2(1-u) m1`` (exact at the ends)."""
    v = 1.0 - u
    return (1.0 + 2.0 * u) * v * v * f0 + u * v * v * m0 + u * u * (3.0 - 2.0 * u) * f1 \
        - u * u * v * m1


def _d_hermite(u: Tensor, f0: Tensor, f1: Tensor, m0: Tensor, m1: Tensor) -> Tensor:
    """``d/du`` of :func:`_hermite`."""
    v = 1.0 - u
    return 6.0 * u * v * (f1 - f0) + v * (1.0 - 3.0 * u) * m0 + u * (3.0 * u - 2.0) * m1


def _hermite_inverse(y: Tensor, xp: Tensor, fp: Tensor, dp: Tensor) -> Tensor:
    """``t`` in ``[xp[0], xp[-1]]`` where the (decreasing) interpolant equals ``y``: Newton's
    method from the linear guess, kept inside a bisection bracket of the segment."""
    n = fp.numel()
    k = (n - 1) - torch.searchsorted(fp.flip(0), y.contiguous()).clamp(1, n - 1)
    x0, h, f0, f1, m0, m1 = _segment(xp, fp, dp, k)
    u = ((f0 - y) / (f0 - f1)).clamp(0.0, 1.0)
    lo, hi = torch.zeros_like(u), torch.ones_like(u)
    for _ in range(_NEWTON):
        g = _hermite(u, f0, f1, m0, m1) - y
        above = g > 0  # decreasing: the root lies right of u
        lo, hi = torch.where(above, u, lo), torch.where(above, hi, u)
        step = u - g / _d_hermite(u, f0, f1, m0, m1)
        inside = (step > lo) & (step < hi)
        u, previous = torch.where(g == 0, u, torch.where(inside, step, 0.5 * (lo + hi))), u
        if not bool(((u - previous).abs() > 1e-15).any()):  # converged (u is in [0, 1])
            break
    return x0 + u * h


@dataclass(frozen=True, eq=False)
class VPDiscrete(_VP):
    """A discrete DDPM schedule ``alphas_cumprod[k]``, k = 0..N-1, as a continuous path.

    Training index ``k`` sits at ``t = (k + 1) / N``; a model trained on integer timesteps
    ``k`` is evaluated at ``k = t N - 1``. Without ``alphas_cumprod`` the schedule is DDPM's
    (diffusers' default): linear betas from 1e-4 to 0.02 over 1000 steps, as
    ``VPDiscrete.from_betas("linear", 1000)``.

    ``interpolation`` places ``log alpha`` between the knots (see :mod:`.discrete`). With the
    default ``"linear"`` the time derivative of ``log alpha`` jumps at every knot, so solvers
    that step the velocity ``dx/dt`` in ``t`` (``euler``, ``heun``) stall at an error of about
    ``1 / N`` however many steps they take (``heun`` on the default schedule, log-SNR grid:
    7.8e-4 at 64 steps, 5.3e-4 at 128). Solvers that see the path only through ``lam`` (or
    ``sigma / alpha``) at their grid points (DDIM, DPM-Solver, UniPC, PNDM, ``edm``) are not
    affected. ``"cubic"`` is a monotone C1 cubic through the same knots (the same
    ``alphas_cumprod`` at every ``t = (k + 1) / N``), on which ``heun`` is second order again
    (5.4e-4, 1.4e-4).
    """

    alphas_cumprod: Tensor | None = None
    interpolation: str = "linear"
    _log_alpha_table: Tensor = field(init=False, repr=False)
    _t_table: Tensor = field(init=False, repr=False)
    _slopes: Tensor | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ac = beta_schedule() if self.alphas_cumprod is None else self.alphas_cumprod
        ac = torch.as_tensor(ac).detach().to("cpu", torch.float64).flatten()
        if ac.numel() < 2:
            raise InterpolantError("VPDiscrete needs at least 2 values of alphas_cumprod")
        if not (torch.all(ac > 0) and torch.all(ac < 1) and torch.all(ac[1:] < ac[:-1])):
            raise InterpolantError(
                "alphas_cumprod must lie in (0, 1) and be strictly decreasing "
                "(index 0 is the least noisy)"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise unknown_name("VPDiscrete interpolation", self.interpolation, INTERPOLATIONS)
        n = ac.numel()
        t_table = torch.arange(1, n + 1, dtype=torch.float64) / n
        log_alpha = 0.5 * torch.log(ac)
        slopes = pchip_slopes(t_table, log_alpha) if self.interpolation == "cubic" else None
        for name, value in (("alphas_cumprod", ac), ("_log_alpha_table", log_alpha),
                            ("_t_table", t_table), ("_slopes", slopes)):
            object.__setattr__(self, name, value)

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    @property
    def t_min(self) -> float:  # type: ignore[override]
        return 1.0 / self.num_train_timesteps

    @classmethod
    def from_betas(
        cls,
        schedule: str = "linear",
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        interpolation: str = "linear",
    ) -> VPDiscrete:
        """The beta schedules of diffusers (``DDPMScheduler(beta_schedule=...)``); see
        :func:`beta_schedule`."""
        return cls(beta_schedule(schedule, num_train_timesteps, beta_start, beta_end),
                   interpolation)

    def _cubic_at(self, t: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]] | None:
        """``(u, width, (f0, f1, m0, m1))`` of the segment of each ``t`` for the cubic
        (``u = 1`` at a knot ``t``: exact), or None for the linear interpolation."""
        if self._slopes is None:
            return None
        xp = self._t_table
        k = (torch.searchsorted(xp, t.contiguous()) - 1).clamp(0, xp.numel() - 2)
        x0, h, *ends = _segment(xp, self._log_alpha_table, self._slopes, k)
        return (t - x0) / h, h, tuple(ends)

    def _inside(self, t: Tensor) -> Tensor:
        return (t >= self._t_table[0]) & (t <= self._t_table[-1])

    def _log_alpha(self, t: Tensor) -> Tensor:
        # Below t = 1/N the linear extrapolation would pass alpha = 1; it stops there
        # (sigma = 0, clean data) instead of giving alpha > 1 and sigma = NaN.
        la = _interp(t, self._t_table, self._log_alpha_table)
        cubic = self._cubic_at(t)
        if cubic is not None:
            u, _, ends = cubic
            la = torch.where(self._inside(t), _hermite(u, *ends), la)
        return la.clamp(max=0.0)

    def _d_log_alpha(self, t: Tensor) -> Tensor:
        xp, fp = self._t_table, self._log_alpha_table
        idx = torch.searchsorted(xp, t.contiguous()).clamp(1, xp.numel() - 1)
        slope = (fp[idx] - fp[idx - 1]) / (xp[idx] - xp[idx - 1])
        cubic = self._cubic_at(t)
        if cubic is not None:
            u, h, ends = cubic
            slope = torch.where(self._inside(t), _d_hermite(u, *ends) / h, slope)
        return torch.where(self._log_alpha(t) < 0.0, slope, torch.zeros_like(slope))

    def _t_of_lam(self, lam: Tensor) -> Tensor:
        log_alpha = self._log_alpha_of_lam(lam)
        t = _interp(log_alpha, self._log_alpha_table.flip(0), self._t_table.flip(0))
        if self._slopes is None:
            return t
        fp = self._log_alpha_table
        inside = (log_alpha <= fp[0]) & (log_alpha >= fp[-1])
        return torch.where(inside, _hermite_inverse(log_alpha, self._t_table, fp, self._slopes), t)

    def __hash__(self) -> int:
        return id(self)
