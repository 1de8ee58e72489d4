"""Discrete classifier-free guidance (Schiff et al. 2024, "Simple Guidance Mechanisms for
Discrete Diffusion Models", UDLM), for the masked and uniform processes alike:

    p_gamma(x_s^i | x_t, y)  ∝  p(x_s^i | x_t, y)^gamma  p(x_s^i | x_t)^(1 - gamma)

per position, renormalised over the states: a tempered product of the conditional and the
unconditional (label ``NULL_LABEL``) reverse transitions. ``gamma = 1`` is the conditional
model, ``gamma = 0`` the unconditional one, ``gamma > 1`` sharpens toward the label.
Ancestral and tau-leaping steps to ``t = 0`` use the transition form; called as a denoiser
(the first-hitting sampler) the same product is taken over ``pi(x_0^i | x_t)``, which for the
masked process gives the transition form's law of the revealed token (only the unmasking
rate differs). Each call evaluates the network once on the batch ``[cond; NULL]``: 2 NFE.

Classifier guidance (same paper): with a noisy classifier ``log p(y | x_s, s)``,

    p_gamma(x_s^i = v | x_t, y)  ∝  p(x_s^i = v | x_t)  p(y | x_t with x^i = v, s)^gamma,

the classifier evaluated on every single-token substitution of ``x_t`` (``L S`` sequences per
sample, one batched call). As ``q(x_s | x_t, y) ∝ q(x_s | x_t) p(y | x_s)``, ``gamma = 1`` with
an exact classifier is exact conditioning in the small-step limit, where at most one position
changes per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..labels import NULL_LABEL
from .processes import Process
from .sampling import TokenDenoiser

__all__ = ["CFGTokenDenoiser", "ClassifierGuidedDenoiser", "tempered_product"]


def tempered_product(cond: Tensor, uncond: Tensor, gamma: float) -> Tensor:
    """``cond^gamma uncond^(1 - gamma)`` renormalised on the last axis; 0 where either is 0."""
    both = (cond > 0) & (uncond > 0)
    log = gamma * torch.log(cond.clamp_min(1e-300)) + (1 - gamma) * torch.log(
        uncond.clamp_min(1e-300)
    )
    log = torch.where(both, log, torch.full_like(log, -torch.inf))
    return torch.softmax(log, -1)


class CFGTokenDenoiser(TokenDenoiser):
    """A :class:`~.sampling.TokenDenoiser` guided toward labels ``cond`` with scale ``gamma``."""

    def __init__(self, model: Callable[..., Tensor], process: Process, gamma: float) -> None:
        super().__init__(model, process)
        if not gamma >= 0:
            raise InterpolantError(f"guidance scale gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def _pair(self, x_t: Tensor, t: Tensor, cond: Any) -> tuple[Tensor, Tensor]:
        if not isinstance(cond, Tensor) or cond.shape != (x_t.shape[0],):
            raise InterpolantError("classifier-free guidance needs int64 labels cond of shape (B,)")
        labels = torch.cat([cond, torch.full_like(cond, NULL_LABEL)])
        both = super().__call__(torch.cat([x_t, x_t]), torch.cat([t, t]), labels)
        self.nfe += 1  # two sequences per sample in one batched call
        return both.chunk(2)

    def __call__(self, x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        return tempered_product(*self._pair(x_t, t, cond), self.gamma)

    def reverse(self, x_t: Tensor, s: float, t: Tensor, cond: Any = None) -> Tensor:
        probs_c, probs_u = self._pair(x_t, t, cond)
        rev = self.process.reverse
        return tempered_product(rev(x_t, probs_c, s, t), rev(x_t, probs_u, s, t), self.gamma)


class ClassifierGuidedDenoiser(TokenDenoiser):
    """A denoiser whose reverse steps are tilted by ``classifier(x, t) -> logits (B, C)``."""

    def __init__(
        self, model: Callable[..., Tensor], process: Process,
        classifier: Callable[[Tensor, Tensor], Tensor], gamma: float,
    ) -> None:
        super().__init__(model, process)
        if not gamma >= 0:
            raise InterpolantError(f"guidance scale gamma must be >= 0, got {gamma}")
        self.classifier, self.gamma = classifier, float(gamma)

    def reverse(self, x_t: Tensor, s: float, t: Tensor, cond: Any = None) -> Tensor:
        if not isinstance(cond, Tensor) or cond.shape != (x_t.shape[0],):
            raise InterpolantError("classifier guidance needs int64 labels cond of shape (B,)")
        base = self.process.reverse(x_t, self(x_t, t, None), s, t)  # (B, L, S)
        b, length = x_t.shape
        states = self.process.num_states
        subs = x_t[:, None, None, :].repeat(1, length, states, 1)  # (B, L, S, L)
        pos = torch.arange(length)
        subs[:, pos, :, pos] = torch.arange(states).expand(length, b, states)
        s_b = torch.full((b * length * states,), float(s), dtype=torch.float64)
        logits = self.classifier(subs.reshape(-1, length), s_b).to(torch.float64)
        labels = cond.repeat_interleave(length * states)
        log_y = torch.log_softmax(logits, -1).gather(-1, labels[:, None]).reshape(base.shape)
        tilt = torch.exp(self.gamma * (log_y - log_y.max(-1, keepdim=True).values))
        out = base * tilt
        return out / out.sum(-1, keepdim=True)
