"""Samplers on tokens: ancestral, tau-leaping and the first-hitting sampler.

Each sampler runs from ``x`` at ``t = 1`` to ``t = 0`` with a :class:`TokenDenoiser` (a
logits network turned into float64 probabilities ``pi(x_0^i | x_t)``, counting NFE); every
categorical draw is float64 Gumbel-max from the explicit generator.

    ancestral     x_s ~ prod_i p(x_s^i | x_t) on the grid 1 = t_0 > ... > t_N = 0, the reverse
                  of :meth:`Process.reverse` (D3PM, Austin et al. 2021; MDLM's sampler)
    tau_leaping   Campbell et al. 2022: over a step h each position draws Poisson(h R_y) jumps
                  to every y (reverse rates R of :meth:`Process.reverse_rates`, evaluated at
                  the step's midpoint time, where they are finite); it moves if exactly one
                  jump happened (categorical data: several jumps are rejected); the last step
                  to t = 0 is an ancestral step
    first_hitting Zheng et al. 2024 ("Masked diffusion models are secretly time-agnostic..."),
                  masked process only: with n masked tokens at time t, each stays masked
                  down to s with probability (1 - alpha_s) / (1 - alpha_t), so the first
                  unmasking time tau solves  1 - alpha(tau) = (1 - alpha(t)) u^(1/n),
                  u ~ U(0, 1); one uniformly chosen masked position is drawn from
                  pi(. | x, tau). Exactly one network call per token: at most L NFE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from .categorical import categorical
from .objectives import model_log_probs
from .processes import Process, check_process, check_tokens, times_of

__all__ = [
    "SAMPLERS", "Samples", "TokenDenoiser", "ancestral", "first_hitting", "sample", "tau_leaping",
]


class TokenDenoiser:
    """``den(x_t, t, cond) -> pi(x_0^i | x_t)`` float64 ``(B, L, K)``; ``den.nfe`` counts calls."""

    def __init__(self, model: Callable[..., Tensor], process: Process) -> None:
        self.model, self.process, self.nfe = model, process, 0

    def __call__(self, x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        self.nfe += 1
        return model_log_probs(self.model, x_t, t, cond, self.process.num_tokens).exp()

    def reverse(self, x_t: Tensor, s: float, t: Tensor, cond: Any = None) -> Tensor:
        """``(B, L, S)``: ``p(x_s^i | x_t)`` from this denoiser (one NFE)."""
        return self.process.reverse(x_t, self(x_t, t, cond), s, t)


def ancestral(
    den: TokenDenoiser, x: Tensor, steps: int, generator: torch.Generator | None,
    cond: Any = None,
) -> Tensor:
    """Ancestral sampling on ``process.grid(steps)`` (module docstring); ``steps`` NFE."""
    process, batch = den.process, x.shape[0]
    grid = process.grid(steps)
    for t, s in zip(grid[:-1].tolist(), grid[1:].tolist()):
        x = categorical(den.reverse(x, s, times_of(t, batch), cond), generator)
    return x


def tau_leaping(
    den: TokenDenoiser, x: Tensor, steps: int, generator: torch.Generator | None,
    cond: Any = None,
) -> Tensor:
    """Tau-leaping with rejection of multiple jumps (module docstring); ``steps`` NFE."""
    process, batch = den.process, x.shape[0]
    if not process.continuous:
        raise InterpolantError("tau-leaping needs a continuous-time process (Masked, Uniform, Blackout)")
    grid = process.grid(steps)
    for t, s in zip(grid[:-2].tolist(), grid[1:-1].tolist()):
        probs0 = den(x, times_of(t, batch), cond)
        rates = process.reverse_rates(x, probs0, 0.5 * (t + s))
        jumps = torch.poisson(rates * (t - s), generator=generator)
        x = torch.where(jumps.sum(-1) == 1, jumps.argmax(-1), x)
    return categorical(den.reverse(x, 0.0, times_of(float(grid[-2]), batch), cond), generator)


def first_hitting(
    den: TokenDenoiser, x: Tensor, steps: int | None, generator: torch.Generator | None,
    cond: Any = None,
) -> Tensor:
    """The first-hitting sampler (module docstring); ``steps`` is ignored (NFE = #masked)."""
    process = den.process
    if process.mask_id is None or not process.continuous:
        raise InterpolantError("the first-hitting sampler needs the continuous-time Masked process")
    sched, batch = process.schedule, x.shape[0]
    x = x.clone()
    t = torch.ones(batch, dtype=torch.float64)
    rows = torch.arange(batch)
    while True:
        masked = x == process.mask_id
        n = masked.sum(1)
        active = n > 0
        if not bool(active.any()):
            return x
        u = torch.rand(batch, dtype=torch.float64, generator=generator)
        one_minus = (1.0 - sched.alpha(t)) * u ** (1.0 / n.clamp_min(1))
        t = torch.where(active, sched.t_of_alpha(1.0 - one_minus).clamp(0.0, 1.0), t)
        pos = categorical((masked | ~active[:, None]).to(torch.float64), generator)
        probs0 = den(x, t, cond)[rows, pos]  # (B, K)
        token = categorical(probs0, generator)
        x[rows, pos] = torch.where(active, token, x[rows, pos])


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "ancestral": ancestral, "tau-leaping": tau_leaping, "first-hitting": first_hitting,
}


class Samples(NamedTuple):
    tokens: Tensor  # int64 (B, L) in [0, K)
    nfe: int


def sample(
    model: Callable[..., Tensor], process: Process, n: int, length: int,
    sampler: str = "ancestral", steps: int | None = 100, generator: torch.Generator | None = None,
    cond: Any = None, x_start: Tensor | None = None, guidance: float | None = None,
) -> Samples:
    """Draw ``n`` sequences of ``length`` tokens: start from the prior at ``t = 1`` (or
    ``x_start``) and run ``sampler`` (``ancestral``, ``tau-leaping``, ``first-hitting``).

    ``guidance=gamma`` with labels ``cond`` samples with discrete classifier-free guidance
    (:class:`~.guidance.CFGTokenDenoiser`, 2 NFE per step)."""
    check_process(process)
    if sampler not in SAMPLERS:
        raise unknown_name("discrete sampler", sampler, SAMPLERS)
    if x_start is None:
        prior = process.prior().expand(n, length, process.num_states)
        x_start = categorical(prior, generator)
    check_tokens(x_start, process.num_states, "x_start")
    if guidance is not None:
        from .guidance import CFGTokenDenoiser

        den: TokenDenoiser = CFGTokenDenoiser(model, process, guidance)
    else:
        den = model if isinstance(model, TokenDenoiser) else TokenDenoiser(model, process)
    start = den.nfe
    with torch.no_grad():
        tokens = SAMPLERS[sampler](den, x_start, steps, generator, cond)
    return Samples(tokens, den.nfe - start)
