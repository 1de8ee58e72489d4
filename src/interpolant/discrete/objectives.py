"""Training objectives on tokens: per-sequence bounds on ``-log p(x_0)`` in nats, ``(B,)``.

A ``model(x_t, t, cond)`` returns logits ``(B, L, K)`` of ``pi(x_0^i | x_t)``; ``t`` is a
float64 ``(B,)`` tensor (networks cast it to their own dtype).

    masked_elbo   MD4/MDLM (Shi et al. 2024 eq. 5; Sahoo et al. 2024):
                  L = int_0^1 -alpha'(t) / (1 - alpha(t)) E_q sum_{i: x_t^i = mask}
                      -log pi(x_0^i | x_t) dt
    ctmc_elbo     the continuous-time bound of any process with rates (Lou et al. 2024, "SEDD"
                  thm 3.6, the diffusion-weighted denoising score entropy; for the uniform
                  process it is UDLM's ELBO, Schiff et al. 2024; for the masked one it equals
                  masked_elbo term by term):
                  L = int_0^1 E_q sum_i sum_{y != x_t^i} rate(t)[y, x_t^i]
                      ( s_y - r_y log s_y + r_y (log r_y - 1) ) dt,
                  r_y = q_t(y | x_0^i) / q_t(x_t^i | x_0^i),  s the model's concrete score
                  (see :mod:`.processes`); prior and reconstruction terms vanish since
                  alpha(1) = 0, alpha(0) = 1
    d3pm_loss     D3PM hybrid loss (Austin et al. 2021 eq. 5): T E_k KL(q(x_{k-1} | x_k, x_0)
                  || p(x_{k-1} | x_k)) + KL(q(x_T | x_0) || prior) + lambda E_k
                  sum_i -log pi(x_0^i | x_k); the k = 1 term is -log p(x_0 | x_1)

Times are drawn by MD4's low-discrepancy rule ``t_b = (u + b / B) mod 1`` (one uniform ``u``
per batch), an unbiased estimate with less variance than i.i.d. times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from .processes import Process, check_process, check_tokens, gather_rows

__all__ = [
    "OBJECTIVES", "ctmc_elbo", "d3pm_loss", "d3pm_step_kl", "loss_for", "masked_elbo",
    "model_log_probs", "prior_kl",
]

Model = Callable[..., Tensor]


def _times(batch: int, generator: torch.Generator | None) -> Tensor:
    u = torch.rand((), dtype=torch.float64, generator=generator)
    t = (u + torch.arange(batch, dtype=torch.float64) / batch) % 1.0
    return t.clamp(1e-9, 1.0 - 1e-9)


def model_log_probs(model: Model, x_t: Tensor, t: Tensor, cond: Any, k: int) -> Tensor:
    """``log pi(x_0^i | x_t)`` float64 ``(B, L, K)`` from ``model``'s logits (shape checked)."""
    logits = model(x_t, t, cond)
    if logits.shape != (*x_t.shape, k):
        raise InterpolantError(
            f"model must return logits of shape (B, L, K) = {(*x_t.shape, k)}, "
            f"got {tuple(logits.shape)}"
        )
    return torch.log_softmax(logits.to(torch.float64), -1)


def masked_elbo(
    model: Model, process: Process, x0: Tensor, generator: torch.Generator | None = None,
    cond: Any = None, t: Tensor | None = None,
) -> Tensor:
    """MD4's weighted cross-entropy bound (module docstring), one time per sequence."""
    if process.mask_id is None or not process.continuous:
        raise InterpolantError("masked_elbo needs the continuous-time Masked process")
    check_tokens(x0, process.num_tokens, "x0")
    t = _times(x0.shape[0], generator) if t is None else t
    x_t = process.noise(x0, t, generator)
    logp = model_log_probs(model, x_t, t, cond, process.num_tokens)
    ce = -logp.gather(-1, x0[..., None])[..., 0]
    masked = x_t == process.mask_id
    sched = process.schedule
    weight = -sched.dalpha(t) / (1.0 - sched.alpha(t))
    return weight * torch.where(masked, ce, torch.zeros_like(ce)).sum(1)


def ctmc_elbo(
    model: Model, process: Process, x0: Tensor, generator: torch.Generator | None = None,
    cond: Any = None, t: Tensor | None = None,
) -> Tensor:
    """The continuous-time bound of any process with rates (module docstring; UDLM's ELBO)."""
    check_tokens(x0, process.num_tokens, "x0")
    t = _times(x0.shape[0], generator) if t is None else t
    x_t = process.noise(x0, t, generator)
    probs = model_log_probs(model, x_t, t, cond, process.num_tokens).exp()
    score = process.ratios(x_t, probs, t)  # (B, L, S)
    bar = process.bar(t)
    q_x0 = gather_rows(bar, x0)  # (B, L, S): q_t(y | x0^i)
    r = q_x0 / q_x0.gather(-1, x_t[..., None])
    into = gather_rows(process.rate(t).transpose(1, 2), x_t).scatter(-1, x_t[..., None], 0.0)
    zero = torch.zeros_like(r)
    r_log_s = torch.where(r > 0, r * torch.log(score), zero)
    r_log_r = torch.where(r > 0, r * (torch.log(r) - 1.0), zero)
    terms = torch.where(into > 0, into * (score - r_log_s + r_log_r), zero)
    return terms.sum((1, 2))


def d3pm_step_kl(
    model: Model, process: Process, x0: Tensor, x_t: Tensor, s: Tensor, t: Tensor,
    cond: Any = None,
) -> tuple[Tensor, Tensor]:
    """``(kl, ce)``, each ``(B,)``: ``sum_i KL(q(x_s^i | x_t, x_0) || p(x_s^i | x_t))`` and
    ``sum_i -log pi(x_0^i | x_t)``. At ``s = 0`` the KL is ``-log p(x_0 | x_t)``."""
    logp = model_log_probs(model, x_t, t, cond, process.num_tokens)
    onehot = torch.nn.functional.one_hot(x0, process.num_tokens).to(torch.float64)
    q = process.reverse(x_t, onehot, s, t)
    p = process.reverse(x_t, logp.exp(), s, t)
    kl = torch.where(q > 0, q * (torch.log(q) - torch.log(p)), torch.zeros_like(q))
    return kl.sum((1, 2)), -logp.gather(-1, x0[..., None])[..., 0].sum(1)


def d3pm_loss(
    model: Model, process: Process, x0: Tensor, generator: torch.Generator | None = None,
    cond: Any = None, hybrid: float = 0.01, steps: int | None = None,
) -> Tensor:
    """D3PM's ``L_vb + hybrid * L_ce`` (module docstring) with one step ``k`` per sequence;
    ``steps`` is T (default: the D3PM's own; required for continuous-time processes)."""
    check_tokens(x0, process.num_tokens, "x0")
    steps = steps or getattr(process, "steps", None)
    if not isinstance(steps, int) or steps < 1:
        raise InterpolantError("d3pm_loss on a continuous-time process needs steps=T")
    b = x0.shape[0]
    k = torch.randint(1, steps + 1, (b,), generator=generator).to(torch.float64)
    t, s = k / steps, (k - 1) / steps
    x_t = process.noise(x0, t, generator)
    kl, ce = d3pm_step_kl(model, process, x0, x_t, s, t, cond)
    return steps * kl + prior_kl(process, x0) + hybrid * ce


def prior_kl(process: Process, x0: Tensor) -> Tensor:
    """``(B,)``: ``sum_i KL(q(x_1^i | x_0^i) || prior)`` (0 when the process ends in its prior)."""
    q = process.marginal(x0, 1.0)
    prior = process.prior().expand_as(q)
    kl = torch.where(q > 0, q * (torch.log(q) - torch.log(prior)), torch.zeros_like(q))
    return kl.sum((1, 2))


OBJECTIVES: dict[str, Callable[..., Tensor]] = {
    "md4": masked_elbo, "ctmc": ctmc_elbo, "d3pm": d3pm_loss,
}


def loss_for(process: Process, name: str | None = None) -> Callable[..., Tensor]:
    """The objective ``name`` (``md4``, ``ctmc``, ``d3pm``) or the process's default: MD4 for
    masked, the CTMC bound (UDLM) for uniform, the hybrid loss for D3PM matrices."""
    check_process(process)
    if name is None:
        masked = process.mask_id is not None
        name = "d3pm" if not process.continuous else "md4" if masked else "ctmc"
    if name not in OBJECTIVES:
        raise unknown_name("discrete objective", name, OBJECTIVES)
    if name == "md4" and (process.mask_id is None or not process.continuous):
        raise InterpolantError("the md4 objective needs the Masked process; use ctmc or d3pm")
    return OBJECTIVES[name]
