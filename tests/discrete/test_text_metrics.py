"""n-gram perplexity and distinct n-grams on small hand-checked cases and on the docs text."""

from __future__ import annotations

import math

import torch

from interpolant import discrete as dd


def test_ngram_model_is_normalised_and_matches_hand_counts():
    data = torch.tensor([[0, 1, 1, 2], [1, 1, 0, 2]])
    model = dd.NGramModel(data, n=2, vocab=3, k=0.5)
    # context (1,) is followed by 1, 2?  pairs: (0,1) (1,1) (1,2) | (1,1) (1,0) (0,2)
    # after 1: {1: 2, 2: 1, 0: 1}, total 4 -> p(1 | 1) = (2 + 0.5) / (4 + 1.5)
    two = torch.tensor([[1, 1]])
    first = (1 + 0.5) / (2 + 1.5)  # empty context: starts are 0 and 1 once each
    assert abs(float(model.log_prob(two)) - math.log(first * 2.5 / 5.5)) < 1e-12
    for context in ([0], [1], [2]):
        rows = torch.tensor([context + [v] for v in range(3)])
        last = model.log_prob(rows) - model.log_prob(rows[:, :1])
        assert abs(float(last.exp().sum()) - 1) < 1e-12


def test_text_perplexity_separates_real_from_shuffled_and_random_text():
    """Held-out documentation is far more predictable than the same characters shuffled or than
    uniform random characters (perplexity near the vocabulary size or above)."""
    train, test = dd.text_tokens(64), dd.text_tokens(64, "test")
    model = dd.NGramModel(train[:2000], n=3, vocab=len(dd.TEXT_VOCAB))
    g = torch.Generator().manual_seed(0)
    shuffled = test.reshape(-1)[torch.randperm(test.numel(), generator=g)].reshape(test.shape)
    uniform = torch.randint(0, 96, test.shape, generator=g)
    real, mixed, noise = (model.perplexity(x) for x in (test, shuffled, uniform))
    assert real < 12 and 3 * real < mixed and 3 * real < noise and noise > 90


def test_distinct_ngrams():
    assert dd.distinct_ngrams(torch.zeros(3, 5, dtype=torch.long), 2) == 1 / 12
    assert dd.distinct_ngrams(torch.arange(12).reshape(2, 6), 3) == 1.0
