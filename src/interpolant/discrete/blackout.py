"""Blackout diffusion (Santos et al. 2023): integer intensities decay to an empty image.

Tokens are counts ``n`` in ``[0, K)`` (the 8x8 digits' intensities 0..16 with ``K = 17``).
Each unit of a count dies independently at rate ``beta(t) = -alpha'(t) / alpha(t)``, so a unit
survives to time ``t`` with probability ``alpha(t)`` (a schedule of :mod:`.schedules`, ending at
``alpha(1) = 0``: every image is black at ``t = 1``):

    bar(t)[n, m]        = Binomial(m; n, alpha(t))                    (m <= n)
    transition(s, t)    = Binomial(m; n, alpha(t) / alpha(s))
    rate(t)[n, n - 1]   = n beta(t),   rate(t)[n, n] = -n beta(t)     (a pure death process)

The reverse process is a birth process; its rates, the posterior step, the continuous-time
bound and every sampler come from the generic formulas of :class:`~.processes.Process`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InterpolantError
from .processes import Process
from .schedules import Schedule, schedule as as_schedule

__all__ = ["Blackout"]


class Blackout(Process):
    """The count-decay process on ``K`` intensity levels (module docstring)."""

    name = "blackout"

    def __init__(self, schedule: str | Schedule = "linear", num_tokens: int = 17) -> None:
        if not isinstance(num_tokens, int) or num_tokens < 2:
            raise InterpolantError(f"num_tokens (K) must be an int >= 2, got {num_tokens!r}")
        self.schedule = as_schedule(schedule)
        self.num_tokens = self.num_states = num_tokens
        counts = torch.arange(num_tokens, dtype=torch.float64)
        self._n, self._m = counts[:, None], counts[None, :]
        self._log_choose = torch.where(
            self._m <= self._n,
            torch.lgamma(self._n + 1) - torch.lgamma(self._m + 1)
            - torch.lgamma((self._n - self._m).clamp_min(0) + 1),
            torch.full_like(self._n * self._m, -torch.inf),
        )

    def _binomial(self, keep: Tensor) -> Tensor:
        """``(B, K, K)``: ``Binomial(m; n, keep)`` with ``0^0 = 1``."""
        p = keep[:, None, None]
        m, rest = self._m, self._n - self._m
        log_p = torch.where(m > 0, m * torch.log(p), torch.zeros_like(p * m))
        log_q = torch.where(rest > 0, rest.clamp_min(0) * torch.log1p(-p), torch.zeros_like(p * m))
        return torch.exp(self._log_choose + log_p + log_q)

    def bar(self, t: Tensor) -> Tensor:
        return self._binomial(self.schedule.alpha(t))

    def transition(self, s: Tensor, t: Tensor) -> Tensor:
        a_s, a_t = self.schedule.alpha(s), self.schedule.alpha(t)
        keep = torch.where(a_s > 0, a_t / a_s.clamp_min(1e-300), torch.ones_like(a_s))
        return self._binomial(keep.clamp(0.0, 1.0))

    def rate(self, t: Tensor) -> Tensor:
        beta = -self.schedule.dalpha(t) / self.schedule.alpha(t)
        n = torch.arange(self.num_states, dtype=torch.float64)
        generator = torch.diag(n[1:], -1) - torch.diag(n)
        return beta[:, None, None] * generator

    def prior(self) -> Tensor:
        law = torch.zeros(self.num_states, dtype=torch.float64)
        law[0] = 1.0
        return law

    def __repr__(self) -> str:
        return f"Blackout({self.schedule!r}, num_tokens={self.num_tokens})"
