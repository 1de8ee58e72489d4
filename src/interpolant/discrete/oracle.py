"""An exact discrete oracle: a known joint law over all ``K^L`` sequences, enumerated.

For a table ``P(x_0)`` over sequences of length ``L`` in ``[0, K)`` and any process of
:mod:`.processes` (positions corrupted independently),

    q(x_t | x_0)   = prod_i bar(t)[x_0^i, x_t^i]
    p(x_0 | x_t)   = P(x_0) q(x_t | x_0) / sum_x0' P(x_0') q(x_t | x_0')        (full posterior)
    p(x_0^i | x_t) = sum over x_0 with that i-th token                           (marginals)
    q(x_t)         = sum_x0 P(x_0) q(x_t | x_0)                                  (over S^L states)

:meth:`TokenOracle.model` is a network stand-in returning ``log p(x_0^i | x_t)`` as logits, so
objectives and samplers run on it unchanged. :meth:`masked_bound` is the MD4 bound in closed
form: with ``u = 1 - alpha`` and ``M`` the masked set, the time integral of MD4's weighted
cross-entropy is schedule-free,

    NELBO(x_0) = sum_M B(|M|, L - |M| + 1) sum_{i in M} -log pi(x_0^i | x_0 with M masked),

``B`` the Beta function (``int_0^1 u^{m-1} (1-u)^{L-m} du``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from .processes import Process, check_tokens, gather_rows, times_of

__all__ = ["TokenOracle", "all_sequences", "labelled_classifier", "labelled_model"]


def all_sequences(states: int, length: int) -> Tensor:
    """Every sequence of ``length`` over ``states`` symbols, int64 ``(states^length, length)``,
    in row-major order (the index of ``x`` is ``sum_i x_i states^(L-1-i)``)."""
    return torch.tensor(list(itertools.product(range(states), repeat=length)), dtype=torch.int64)


def _index(x: Tensor, states: int) -> Tensor:
    powers = states ** torch.arange(x.shape[1] - 1, -1, -1)
    return (x * powers).sum(1)


class TokenOracle:
    """Exact reference for a joint law ``probs`` of shape ``(K,) * L`` (non-negative, sums to 1)."""

    def __init__(self, probs: Tensor) -> None:
        probs = torch.as_tensor(probs, dtype=torch.float64)
        k = probs.shape[0] if probs.ndim else 0
        if probs.ndim < 1 or any(n != k for n in probs.shape) or k < 2:
            raise InterpolantError(f"probs must have shape (K,) * L with K >= 2, got {probs.shape}")
        if bool((probs < 0).any()) or abs(float(probs.sum()) - 1.0) > 1e-9:
            raise InterpolantError("probs must be non-negative and sum to 1")
        self.num_tokens, self.length = k, probs.ndim
        self.table = probs
        self.support = all_sequences(k, self.length)  # (N, L), N = K^L
        self.probs = probs.reshape(-1)

    @classmethod
    def random(cls, num_tokens: int = 4, length: int = 3, seed: int = 0, sharpness: float = 2.0):
        """A correlated random law: ``P ∝ exp(sharpness * z)``, z standard normal per sequence."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn((num_tokens,) * length, dtype=torch.float64, generator=g)
        p = torch.exp(sharpness * z)
        return cls(p / p.sum())

    def prob(self, x0: Tensor) -> Tensor:
        """``P(x_0)`` for int64 ``(B, L)`` sequences."""
        check_tokens(x0, self.num_tokens, "x0")
        return self.probs[_index(x0, self.num_tokens)]

    def nll(self, x0: Tensor) -> Tensor:
        """``-log P(x_0)`` in nats, ``(B,)``."""
        return -torch.log(self.prob(x0))

    def likelihood(self, process: Process, x_t: Tensor, t: Tensor | float) -> Tensor:
        """``(B, N)``: ``q(x_t | x_0)`` for every support sequence ``x_0``."""
        self._check_process(process)
        check_tokens(x_t, process.num_states, "x_t")
        bar = process.bar(times_of(t, x_t.shape[0]))  # (B, S, S)
        cols = gather_rows(bar.transpose(1, 2), x_t)  # (B, L, S): q(x_t^i | x0^i = .)
        lik = torch.ones(x_t.shape[0], len(self.probs), dtype=torch.float64)
        for i in range(self.length):
            lik = lik * cols[:, i, :][:, self.support[:, i]]
        return lik

    def posterior(self, process: Process, x_t: Tensor, t: Tensor | float) -> Tensor:
        """``(B, N)``: the full posterior ``p(x_0 | x_t)`` over the support."""
        joint = self.probs[None] * self.likelihood(process, x_t, t)
        total = joint.sum(1, keepdim=True)
        if bool((total <= 0).any()):
            raise InterpolantError("x_t has probability 0 under this process and law")
        return joint / total

    def marginals(self, process: Process, x_t: Tensor, t: Tensor | float) -> Tensor:
        """``(B, L, K)``: ``p(x_0^i = k | x_t)``, the exact denoiser (computed once per
        distinct ``x_t`` when all times are equal, as in a sampler's batch)."""
        onehot = torch.nn.functional.one_hot(self.support, self.num_tokens).to(torch.float64)

        def exact(x: Tensor, times: Tensor) -> Tensor:
            return torch.einsum("bn,nlk->blk", self.posterior(process, x, times), onehot)

        return _per_distinct(exact, x_t, times_of(t, x_t.shape[0]), process.num_states)

    def marginal_xt(self, process: Process, t: float) -> tuple[Tensor, Tensor]:
        """``(states, q)``: all ``S^L`` noisy sequences and their exact probabilities ``q(x_t)``."""
        states = all_sequences(process.num_states, self.length)
        lik = self.likelihood(process, states, t)
        return states, lik @ self.probs

    def model(self, process: Process) -> Callable[..., Tensor]:
        """A network stand-in ``model(x_t, t, cond=None) -> log p(x_0^i | x_t)`` ``(B, L, K)``."""

        def exact(x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
            return torch.log(self.marginals(process, x_t, t))

        return exact

    def masked_bound(self, model: Callable[..., Tensor], process: Process) -> Tensor:
        """``(N,)``: MD4's continuous-time NELBO of every support sequence, in closed form over
        mask sets (module docstring), with ``model``'s predictions at the masked inputs.

        The closed form needs a time-agnostic model (as the exact masked denoiser is: which
        tokens are masked says nothing about ``t``); the model is called at ``t = 0.5``."""
        if process.mask_id is None:
            raise InterpolantError("masked_bound needs an absorbing (masked) process")
        n, length = len(self.probs), self.length
        total = torch.zeros(n, dtype=torch.float64)
        for m in range(1, length + 1):
            weight = math.gamma(m) * math.gamma(length - m + 1) / math.gamma(length + 1)
            for subset in itertools.combinations(range(length), m):
                x_t = self.support.clone()
                x_t[:, list(subset)] = process.mask_id
                t = torch.full((n,), 0.5, dtype=torch.float64)  # the bound needs no t
                logp = torch.log_softmax(model(x_t, t, None).to(torch.float64), -1)
                picked = logp.gather(-1, self.support[..., None])[..., 0]  # (N, L)
                total -= weight * picked[:, list(subset)].sum(1)
        return total

    def _check_process(self, process: Process) -> None:
        if process.num_tokens != self.num_tokens:
            raise InterpolantError(
                f"process has K={process.num_tokens} tokens but the oracle has {self.num_tokens}"
            )


def labelled_model(
    oracles: list[TokenOracle], weights: Tensor, process: Process
) -> Callable[..., Tensor]:
    """The exact class-conditional network stand-in: ``model(x_t, t, cond)`` returns
    ``log p(x_0^i | x_t, y)`` for the law ``P(x_0 | y) = oracles[y]``, and for ``cond`` None or
    ``NULL_LABEL`` entries that of the mixture ``sum_y weights[y] P(x_0 | y)``."""
    from ..labels import NULL_LABEL

    weights = torch.as_tensor(weights, dtype=torch.float64)
    mixture = TokenOracle(sum(w * o.table for w, o in zip(weights.tolist(), oracles)))

    def exact(x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        t = times_of(t, x_t.shape[0])
        labels = torch.full((x_t.shape[0],), NULL_LABEL) if cond is None else cond
        out = torch.empty(*x_t.shape, mixture.num_tokens, dtype=torch.float64)
        for y, law in [(NULL_LABEL, mixture), *enumerate(oracles)]:
            rows = labels == y
            if bool(rows.any()):
                out[rows] = law.marginals(process, x_t[rows], t[rows])
        return torch.log(out)

    return exact


def labelled_classifier(
    oracles: list[TokenOracle], weights: Tensor, process: Process
) -> Callable[[Tensor, Tensor], Tensor]:
    """The exact noisy classifier ``classifier(x_t, t) -> log p(y | x_t)`` ``(B, C)``:
    ``p(y | x_t) ∝ weights[y] sum_x0 P(x_0 | y) q(x_t | x_0)``."""
    weights = torch.as_tensor(weights, dtype=torch.float64)
    laws = torch.stack([o.probs for o in oracles], 1)  # (N, C)

    def exact(x: Tensor, times: Tensor) -> Tensor:
        joint = (oracles[0].likelihood(process, x, times) @ laws) * weights
        return torch.log(joint / joint.sum(1, keepdim=True))

    def classifier(x_t: Tensor, t: Tensor) -> Tensor:
        return _per_distinct(exact, x_t, times_of(t, x_t.shape[0]), process.num_states)

    return classifier


def _per_distinct(
    fn: Callable[[Tensor, Tensor], Tensor], x_t: Tensor, t: Tensor, states: int
) -> Tensor:
    """``fn(x_t, t)``, evaluated once per distinct row of ``x_t`` when all times are equal."""
    if len(t) > 1 and bool((t == t[0]).all()):
        codes, inverse = torch.unique(_index(x_t, states), return_inverse=True)
        if len(codes) < len(x_t):
            unique = x_t.new_empty(len(codes), x_t.shape[1])
            unique[inverse] = x_t
            return fn(unique, t[: len(codes)])[inverse]
    return fn(x_t, t)
