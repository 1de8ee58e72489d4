"""Forward processes on tokens, all written as transition matrices over ``S`` states.

Tokens are int64 ``(B, L)`` in ``[0, K)``; an absorbing process adds the mask id ``K`` (so
``S = K + 1``), other processes have ``S = K``. Positions are corrupted independently, so one
``S x S`` matrix (row = from, column = to) describes a position:

    bar(t)[x, y]         = q(x_t = y | x_0 = x)                      ("Q-bar_t", D3PM)
    transition(s, t)     = q(x_t = y | x_s = x),    s < t
    rate(t)[x, y]        = forward jump rate x -> y (continuous time; rows sum to 0)

Everything else is one generic formula over these matrices (Austin et al. 2021, "D3PM";
Campbell et al. 2022; Lou et al. 2024, "SEDD"), given a denoiser's per-position law
``pi(x_0^i | x_t)``:

    reverse:  p(x_s^i = y | x_t) = sum_x0 pi(x0) q(x_t^i | x_s^i = y) q(y | x0) / q(x_t^i | x0)
              (the exact per-position marginal of q(x_s | x_t) when pi is exact; D3PM eq. 4
              drops the division, which is only a re-parametrisation of pi)
    ratios:   s(x_t)_y = p_t(y) / p_t(x_t) = sum_x0 pi(x0) q(y | x0) / q(x_t^i | x0)
              (a sequence differing from x_t at position i only: the "concrete score")
    rates:    reverse rate x_t -> y = rate(t)[y, x_t] * s(x_t)_y

``pi`` is first restricted to the ``x_0`` that could have produced ``x_t`` (for the masked
process: an unmasked token is its own ``x_0``, MDLM's carry-over).

Processes here (continuous time, ``alpha(t)`` from :mod:`.schedules`):

    Masked(schedule, K)    bar(t) = alpha I + (1 - alpha) 1 e_mask^T      (MD4, MDLM)
    Uniform(schedule, K)   bar(t) = alpha I + (1 - alpha) 1 1^T / K        (UDLM, Duo)

Both are ``alpha I + (1 - alpha) 1 pi^T`` with ``pi`` the noise law, so
``transition(s, t)`` has ``alpha_t / alpha_s`` in place of ``alpha`` and
``rate(t) = beta(t) (1 pi^T - I)`` with ``beta = -alpha' / alpha``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InterpolantError
from .categorical import categorical
from .schedules import Schedule, schedule as as_schedule

__all__ = [
    "Masked", "Process", "Uniform", "check_process", "check_tokens", "gather_rows", "times_of",
]

_TINY = 1e-300


def check_tokens(x: object, states: int, what: str = "tokens") -> Tensor:
    """``x`` must be an int64 ``(B, L)`` tensor with values in ``[0, states)``."""
    if not isinstance(x, Tensor) or x.dtype != torch.int64 or x.ndim != 2:
        got = f"{x.dtype}, shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise InterpolantError(
            f"{what} must be an int64 tensor of shape (B, L); got {got}; convert with .long()"
        )
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= states):
        raise InterpolantError(
            f"{what} must lie in [0, {states}), got values in [{int(x.min())}, {int(x.max())}]; "
            "quantize the data to the vocabulary first"
        )
    return x


def check_process(process: object) -> "Process":
    """``process`` must be a discrete process (not a Gaussian path of ``interpolant.paths``)."""
    if not isinstance(process, Process):
        raise InterpolantError(
            f"tokens need a discrete process (Masked, Uniform, D3PM, Blackout), got "
            f"{type(process).__name__}; Gaussian paths are for continuous data"
        )
    return process


def times_of(t: Tensor | float, batch: int) -> Tensor:
    """A float64 ``(B,)`` tensor of times from a float, a 0-d or a ``(B,)`` tensor."""
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.shape != (batch,) or not bool(((t >= 0) & (t <= 1)).all()):
        raise InterpolantError(f"times must be ({batch},) values in [0, 1], got {t.tolist()[:5]}")
    return t


def gather_rows(mat: Tensor, index: Tensor) -> Tensor:
    """``out[b, l] = mat[b, index[b, l]]`` for ``mat (B, N, M)``, ``index (B, L)``."""
    return mat[torch.arange(mat.shape[0])[:, None], index]


class Process:
    """A corruption of tokens, independent across positions (see module docstring)."""

    num_tokens: int  # K, data categories
    num_states: int  # S, K or K + 1
    mask_id: int | None = None
    continuous: bool = True
    name = ""

    def bar(self, t: Tensor) -> Tensor:
        """``(B, S, S)`` float64: ``q(x_t = y | x_0 = x)`` for times ``t (B,)``."""
        raise NotImplementedError

    def transition(self, s: Tensor, t: Tensor) -> Tensor:
        """``(B, S, S)`` float64: ``q(x_t = y | x_s = x)`` for ``s < t``."""
        raise NotImplementedError

    def rate(self, t: Tensor) -> Tensor:
        """``(B, S, S)`` float64 forward generator (continuous-time processes)."""
        raise InterpolantError(f"the {self.name} process has no continuous-time rates")

    def prior(self) -> Tensor:
        """``(S,)`` float64 law of each token at ``t = 1`` (the sampler's start)."""
        raise NotImplementedError

    def grid(self, steps: int) -> Tensor:
        """``steps + 1`` float64 times from 1 down to 0, uniform in ``t``."""
        if not isinstance(steps, int) or steps < 1:
            raise InterpolantError(f"steps must be a positive int, got {steps!r}")
        return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)

    # ---- generic formulas over the matrices ---------------------------------------------

    def marginal(self, x0: Tensor, t: Tensor | float) -> Tensor:
        """``(B, L, S)``: ``q(x_t^i | x_0^i) = bar(t)[x_0^i]``."""
        check_tokens(x0, self.num_tokens, "x0")
        return gather_rows(self.bar(times_of(t, x0.shape[0])), x0)

    def noise(self, x0: Tensor, t: Tensor | float, generator: torch.Generator | None) -> Tensor:
        """A draw of ``x_t ~ q(x_t | x_0)`` (float64 categorical draws)."""
        return categorical(self.marginal(x0, t), generator)

    def _restricted(self, x_t: Tensor, probs0: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(w, qbar_t, lik)``: ``w = pi(x0) / q(x_t^i | x0)`` on consistent ``x0`` (else 0),
        ``pi`` renormalised over them; ``qbar_t = bar(t)[:K]``, ``lik = q(x_t^i | x0)``."""
        k = self.num_tokens
        check_tokens(x_t, self.num_states, "x_t")
        if probs0.shape != (*x_t.shape, k):
            raise InterpolantError(
                f"denoiser output must have shape (B, L, K) = {(*x_t.shape, k)}, "
                f"got {tuple(probs0.shape)}"
            )
        qbar = self.bar(t)[:, :k, :]
        lik = gather_rows(qbar.transpose(1, 2), x_t)  # (B, L, K): q(x_t^i | x0)
        pi = probs0.to(torch.float64) * (lik > 0)
        pi = pi / pi.sum(-1, keepdim=True).clamp_min(_TINY)
        w = torch.where(lik > 0, pi / lik.clamp_min(_TINY), torch.zeros_like(pi))
        return w, qbar, lik

    def ratios(self, x_t: Tensor, probs0: Tensor, t: Tensor | float) -> Tensor:
        """``(B, L, S)`` concrete score ``s_y = sum_x0 pi(x0) q_t(y|x0) / q_t(x_t^i|x0)``."""
        t = times_of(t, x_t.shape[0])
        w, qbar, _ = self._restricted(x_t, probs0, t)
        return torch.bmm(w, qbar)

    def reverse_rates(self, x_t: Tensor, probs0: Tensor, t: Tensor | float) -> Tensor:
        """``(B, L, S)`` reverse jump rates ``rate(t)[y, x_t] s_y``; zero at ``y = x_t``."""
        t = times_of(t, x_t.shape[0])
        into = gather_rows(self.rate(t).transpose(1, 2), x_t)  # rate(t)[y, x_t] over y
        out = into * self.ratios(x_t, probs0, t)
        return out.scatter(-1, x_t[..., None], 0.0)

    def reverse(
        self, x_t: Tensor, probs0: Tensor, s: Tensor | float, t: Tensor | float
    ) -> Tensor:
        """``(B, L, S)``: ``p(x_s^i | x_t)`` from ``pi(x_0^i | x_t)`` (module docstring)."""
        batch = x_t.shape[0]
        s, t = times_of(s, batch), times_of(t, batch)
        if bool((s > t).any()):
            raise InterpolantError("a reverse step goes from t down to s <= t; got s > t")
        w, _, _ = self._restricted(x_t, probs0, t)
        qs = self.bar(s)[:, : self.num_tokens, :]
        into = gather_rows(self.transition(s, t).transpose(1, 2), x_t)  # q(x_t^i | x_s = y)
        p = torch.bmm(w, qs) * into
        return p / p.sum(-1, keepdim=True).clamp_min(_TINY)


class _Mixing(Process):
    """``bar(t) = alpha(t) I + (1 - alpha(t)) 1 pi^T``: keep the token or draw it from ``pi``."""

    def __init__(self, schedule: str | Schedule, num_tokens: int, num_states: int) -> None:
        if not isinstance(num_tokens, int) or num_tokens < 2:
            raise InterpolantError(f"num_tokens (K) must be an int >= 2, got {num_tokens!r}")
        self.schedule = as_schedule(schedule)
        self.num_tokens, self.num_states = num_tokens, num_states

    def noise_law(self) -> Tensor:
        raise NotImplementedError

    def prior(self) -> Tensor:
        return self.noise_law()

    def _mix(self, keep: Tensor) -> Tensor:
        eye = torch.eye(self.num_states, dtype=torch.float64)
        jump = torch.ones(self.num_states, 1, dtype=torch.float64) * self.noise_law()[None]
        keep = keep[:, None, None]
        return keep * eye + (1.0 - keep) * jump

    def bar(self, t: Tensor) -> Tensor:
        return self._mix(self.schedule.alpha(t))

    def transition(self, s: Tensor, t: Tensor) -> Tensor:
        a_s, a_t = self.schedule.alpha(s), self.schedule.alpha(t)
        return self._mix(torch.where(a_s > 0, a_t / a_s.clamp_min(_TINY), torch.ones_like(a_s)))

    def rate(self, t: Tensor) -> Tensor:
        beta = -self.schedule.dalpha(t) / self.schedule.alpha(t)
        return beta[:, None, None] * (self._mix(torch.zeros_like(t)) - torch.eye(self.num_states))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.schedule!r}, num_tokens={self.num_tokens})"


class Masked(_Mixing):
    """Absorbing/masked diffusion (Shi et al. 2024, "MD4"; Sahoo et al. 2024, "MDLM"): each
    token is masked independently with probability ``1 - alpha(t)``; mask id ``K``."""

    name = "masked"

    def __init__(self, schedule: str | Schedule = "linear", num_tokens: int = 2) -> None:
        super().__init__(schedule, num_tokens, num_tokens + 1)
        self.mask_id = num_tokens

    def noise_law(self) -> Tensor:
        law = torch.zeros(self.num_states, dtype=torch.float64)
        law[self.mask_id] = 1.0
        return law


class Uniform(_Mixing):
    """Uniform-state diffusion (Schiff et al. 2024, "UDLM"; Sahoo et al. 2025, "Duo"):
    ``x_t = x_0`` with probability ``alpha(t)``, else uniform over the ``K`` tokens.

    Its discrete-time form is multinomial diffusion (Hoogeboom et al. 2021); with ``K = 2`` it
    is the XOR bit-flip process of Binary Diffusion, ``x_t = x_0 xor b``,
    ``b ~ Bernoulli((1 - alpha) / 2)``."""

    name = "uniform"

    def __init__(self, schedule: str | Schedule = "linear", num_tokens: int = 2) -> None:
        super().__init__(schedule, num_tokens, num_tokens)

    def noise_law(self) -> Tensor:
        return torch.full((self.num_states,), 1.0 / self.num_states, dtype=torch.float64)
