"""D3PM: discrete-time transition matrices (Austin et al. 2021, "Structured Denoising
Diffusion Models in Discrete State-Spaces").

Step ``k = 1..T`` sits at time ``t = k / T``; ``q(x_k | x_{k-1}) = Cat(x_{k-1} Q_k)`` and

    bar(k/T) = Q_1 Q_2 ... Q_k                                  (Q-bar_0 = I)
    uniform     Q_k = (1 - b_k) I + b_k 1 1^T / K                  (also Hoogeboom et al. 2021)
    absorbing   Q_k = (1 - b_k) I + b_k 1 e_mask^T                 (S = K + 1 states)
    gaussian    Q_k[i, j] = exp(-4 (i-j)^2 / ((K-1)^2 b_k)) / sum_{n=-(K-1)}^{K-1}
                            exp(-4 n^2 / ((K-1)^2 b_k))   (i != j),  Q_k[i, i] = 1 - sum_{j!=i}
                (discretised Gaussian, for ordinal data such as pixel intensities)

Default ``b_k``: for uniform and absorbing, ``b_k = 1 - alpha(k/T) / alpha((k-1)/T)`` from a
continuous schedule (linear for absorbing, giving D3PM's ``b_k = 1/(T - k + 1)``; cosine for
uniform), so that ``bar(k/T)`` equals :class:`~.processes.Masked` / :class:`~.processes.Uniform`
on the grid; for gaussian ``b_k`` linear from 0.02 to 1. The posterior, reverse step and
losses are the generic ones of :class:`~.processes.Process`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from .processes import Process
from .schedules import Schedule, schedule as as_schedule

__all__ = ["D3PM"]

_KINDS = ("absorbing", "gaussian", "uniform")


def _gaussian_matrix(k: int, beta: float) -> Tensor:
    """D3PM's discretised-Gaussian step matrix (module docstring), ``(K, K)`` float64."""
    n = torch.arange(-(k - 1), k, dtype=torch.float64)
    weights = torch.exp(-4.0 * n**2 / ((k - 1) ** 2 * beta))
    idx = torch.arange(k)
    diff = (idx[:, None] - idx[None, :]).to(torch.float64)
    q = torch.exp(-4.0 * diff**2 / ((k - 1) ** 2 * beta)) / weights.sum()
    q.fill_diagonal_(0.0)
    return q + torch.diag(1.0 - q.sum(1))


class D3PM(Process):
    """Discrete-time D3PM process of ``kind`` uniform, absorbing or gaussian over K tokens."""

    continuous = False

    def __init__(
        self,
        kind: str,
        num_tokens: int,
        steps: int = 100,
        betas: Tensor | None = None,
        schedule: str | Schedule | None = None,
    ) -> None:
        if kind not in _KINDS:
            raise unknown_name("D3PM matrix kind", kind, _KINDS)
        if not isinstance(num_tokens, int) or num_tokens < 2:
            raise InterpolantError(f"num_tokens (K) must be an int >= 2, got {num_tokens!r}")
        if not isinstance(steps, int) or steps < 1:
            raise InterpolantError(f"steps (T) must be a positive int, got {steps!r}")
        self.kind, self.num_tokens, self.steps = kind, num_tokens, steps
        self.name = f"d3pm-{kind}"
        self.num_states = num_tokens + (kind == "absorbing")
        self.mask_id = num_tokens if kind == "absorbing" else None
        self.betas = self._betas(betas, schedule)
        self.matrices = torch.stack([self._step_matrix(float(b)) for b in self.betas])
        bars = [torch.eye(self.num_states, dtype=torch.float64)]
        for q in self.matrices:
            bars.append(bars[-1] @ q)
        self.bars = torch.stack(bars)  # (T + 1, S, S)

    def _betas(self, betas: Tensor | None, schedule: str | Schedule | None) -> Tensor:
        if betas is not None:
            betas = torch.as_tensor(betas, dtype=torch.float64)
            if betas.shape != (self.steps,) or not bool(((betas > 0) & (betas <= 1)).all()):
                raise InterpolantError(f"betas must be {self.steps} values in (0, 1]")
            return betas
        if self.kind == "gaussian":
            return torch.linspace(0.02, 1.0, self.steps, dtype=torch.float64)
        sched = as_schedule(schedule or ("linear" if self.kind == "absorbing" else "cosine"))
        alpha = sched.alpha(torch.linspace(0.0, 1.0, self.steps + 1, dtype=torch.float64))
        return (1.0 - alpha[1:] / alpha[:-1].clamp_min(1e-300)).clamp(1e-12, 1.0)

    def _step_matrix(self, beta: float) -> Tensor:
        s = self.num_states
        eye = torch.eye(s, dtype=torch.float64)
        if self.kind == "gaussian":
            return _gaussian_matrix(s, beta)
        target = self.prior()[None].expand(s, s)
        return (1.0 - beta) * eye + beta * target

    def prior(self) -> Tensor:
        if self.kind == "absorbing":
            law = torch.zeros(self.num_states, dtype=torch.float64)
            law[-1] = 1.0
            return law
        return torch.full((self.num_states,), 1.0 / self.num_states, dtype=torch.float64)

    def index(self, t: Tensor) -> Tensor:
        """Step indices ``k = t T`` (int64); times off the grid ``k / T`` raise."""
        k = torch.round(t * self.steps)
        if bool(((k - t * self.steps).abs() > 1e-6).any()):
            raise InterpolantError(
                f"D3PM with T={self.steps} steps only has times k/T; got {t.tolist()[:5]}"
            )
        return k.long()

    def grid(self, steps: int) -> Tensor:
        """``steps + 1`` grid times from 1 to 0; ``steps`` must divide ``T`` (respacing)."""
        if not isinstance(steps, int) or steps < 1 or self.steps % steps:
            raise InterpolantError(f"steps must divide the D3PM's T={self.steps}, got {steps!r}")
        return super().grid(steps)

    def bar(self, t: Tensor) -> Tensor:
        return self.bars[self.index(t)]

    def transition(self, s: Tensor, t: Tensor) -> Tensor:
        """``Q_{k_s + 1} ... Q_{k_t}``, one product per distinct ``(k_s, k_t)`` pair."""
        ks, kt = self.index(s), self.index(t)
        out = torch.empty(len(ks), self.num_states, self.num_states, dtype=torch.float64)
        for code in torch.unique(ks * (self.steps + 1) + kt).tolist():
            a, b = divmod(code, self.steps + 1)
            prod = torch.eye(self.num_states, dtype=torch.float64)
            for q in self.matrices[a:b]:
                prod = prod @ q
            out[(ks == a) & (kt == b)] = prod
        return out

    def __repr__(self) -> str:
        return f"D3PM({self.kind!r}, num_tokens={self.num_tokens}, steps={self.steps})"
