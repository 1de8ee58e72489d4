"""Measures of token samples: n-gram perplexity under a model fitted on held-out data, and
the fraction of distinct n-grams (diversity).

``NGramModel(n, vocab)`` is an order-``n`` model with add-``k`` (Lidstone) smoothing,

    p(x_i | x_{i-n+1..i-1}) = (c(context, x_i) + k) / (c(context) + k V),

fitted on the n-grams inside each sequence (contexts shorter than ``n - 1`` at a sequence's
start use the lower orders' counts the same way). ``perplexity = exp(mean -log p)`` over all
tokens of the samples: the analogue of "generative perplexity" for a character model.
"""

from __future__ import annotations

import math
from collections import Counter

import torch
from torch import Tensor

from ..errors import InterpolantError
from .processes import check_tokens

__all__ = ["NGramModel", "distinct_ngrams"]


class NGramModel:
    """An add-``k`` smoothed n-gram model over a vocabulary of ``vocab`` tokens."""

    def __init__(self, tokens: Tensor, n: int = 3, vocab: int | None = None, k: float = 0.1):
        if n < 1 or k <= 0:
            raise InterpolantError(f"NGramModel needs n >= 1 and k > 0, got n={n}, k={k}")
        vocab = vocab or int(tokens.max()) + 1
        check_tokens(tokens, vocab, "n-gram training tokens")
        self.n, self.vocab, self.k = n, vocab, k
        self.counts: Counter = Counter()  # (context tuple, token) and (context tuple,) counts
        for row in tokens.tolist():
            for i, token in enumerate(row):
                context = tuple(row[max(0, i - n + 1) : i])
                self.counts[(context, token)] += 1
                self.counts[(context,)] += 1

    def log_prob(self, tokens: Tensor) -> Tensor:
        """``(N,)``: ``sum_i log p(x_i | context)`` in nats."""
        check_tokens(tokens, self.vocab, "tokens")
        out = []
        for row in tokens.tolist():
            total = 0.0
            for i, token in enumerate(row):
                context = tuple(row[max(0, i - self.n + 1) : i])
                num = self.counts[(context, token)] + self.k
                total += math.log(num / (self.counts[(context,)] + self.k * self.vocab))
            out.append(total)
        return torch.tensor(out, dtype=torch.float64)

    def perplexity(self, tokens: Tensor) -> float:
        """``exp(-mean log p)`` per token."""
        return math.exp(-float(self.log_prob(tokens).sum()) / tokens.numel())


def distinct_ngrams(tokens: Tensor, n: int = 2) -> float:
    """Distinct n-grams over all n-grams inside the sequences (1 = no repeats)."""
    if tokens.ndim != 2 or tokens.shape[1] < n:
        raise InterpolantError(f"tokens must be (N, L) with L >= n={n}")
    grams = tokens.unfold(1, n, 1).reshape(-1, n)
    return len(torch.unique(grams, dim=0)) / len(grams)
