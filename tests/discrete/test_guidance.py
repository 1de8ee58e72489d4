"""Discrete classifier-free guidance against exact class-conditional oracles."""

from __future__ import annotations

import pytest
import torch

from interpolant import discrete as dd
from interpolant.errors import InterpolantError

K, N = 4, 12_000


@pytest.fixture(scope="module")
def classes():
    """Two correlated class-conditional laws over length-3 sequences, equal class weights."""
    return [dd.TokenOracle.random(K, 3, seed=s, sharpness=1.5) for s in (11, 12)]


def model_for(classes, process):
    return dd.labelled_model(classes, torch.tensor([0.5, 0.5]), process)


@pytest.mark.parametrize("process", [dd.Masked("cosine", K), dd.Uniform("linear", K)],
                         ids=["masked", "uniform"])
def test_scale_one_and_zero_are_the_conditional_and_unconditional_steps(classes, process):
    """gamma = 1 gives the conditional reverse transition exactly, gamma = 0 the unconditional."""
    model = model_for(classes, process)
    g = torch.Generator().manual_seed(0)
    x_t = process.noise(classes[0].support[torch.randint(64, (32,), generator=g)], 0.6, g)
    t = torch.full((32,), 0.6, dtype=torch.float64)
    y = torch.randint(2, (32,), generator=g)
    plain = dd.TokenDenoiser(model, process)
    for gamma, labels in ((1.0, y), (0.0, None)):
        want = plain.reverse(x_t, 0.3, t, labels)
        got = dd.CFGTokenDenoiser(model, process, gamma).reverse(x_t, 0.3, t, y)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_first_hitting_with_scale_one_samples_the_class_law(classes, stats):
    """First-hitting + CFG(gamma = 1) draws exactly from P(x | y): TV at the sampling floor, and
    2 NFE per token."""
    process = dd.Masked("linear", K)
    y = torch.zeros(N, dtype=torch.long)
    out = dd.sample(model_for(classes, process), process, N, 3, sampler="first-hitting",
                    generator=torch.Generator().manual_seed(1), cond=y, guidance=1.0)
    assert out.nfe == 6
    law = stats.empirical_law(out.tokens, K)
    assert stats.tv(law, classes[0].probs) < stats.tv_bound(classes[0].probs, N)


@pytest.mark.parametrize("process", [dd.Masked("linear", K), dd.Uniform("linear", K)],
                         ids=["masked", "uniform"])
def test_stronger_guidance_raises_the_exact_class_probability(classes, process):
    """E[p(y = 0 | x)] under the exact classifier grows with gamma = 0, 1, 3 (ancestral, 8
    steps, 6000 draws), each step beyond 4 standard errors."""
    model = model_for(classes, process)
    n = N // 2
    y = torch.zeros(n, dtype=torch.long)
    joint = torch.stack([0.5 * c.probs for c in classes])
    posterior0 = joint[0] / joint.sum(0)
    means = []
    for gamma in (0.0, 1.0, 3.0):
        out = dd.sample(model, process, n, 3, steps=8, cond=y, guidance=gamma,
                        generator=torch.Generator().manual_seed(2))
        p = posterior0[(out.tokens * torch.tensor([16, 4, 1])).sum(1)]
        means.append((float(p.mean()), float(p.std()) / n**0.5))
    for (a, sa), (b, sb) in zip(means, means[1:]):
        assert b - a > 4 * (sa**2 + sb**2) ** 0.5, means


def test_guidance_errors():
    process = dd.Masked("linear", K)
    model = lambda x, t, cond=None: torch.zeros(*x.shape, K)  # noqa: E731
    with pytest.raises(InterpolantError, match="gamma"):
        dd.CFGTokenDenoiser(model, process, -1.0)
    with pytest.raises(InterpolantError, match="labels"):
        dd.sample(model, process, 2, 3, guidance=2.0)
    classifier = lambda x, t: torch.zeros(len(x), 2)  # noqa: E731
    with pytest.raises(InterpolantError, match="labels"):
        dd.sample(dd.ClassifierGuidedDenoiser(model, process, classifier, 1.0), process, 2, 3)


def test_exact_classifier_guidance_at_scale_one_approaches_the_class_law(classes, stats):
    """Uniform process, ancestral, exact noisy classifier: gamma = 1 draws approach P(x | y)
    as steps grow (exact in the small-step limit), while unguided draws stay at the mixture."""
    process = dd.Uniform("linear", K)
    weights = torch.tensor([0.5, 0.5])
    model = dd.labelled_model(classes, weights, process)
    classifier = dd.labelled_classifier(classes, weights, process)
    n = N // 2
    y = torch.zeros(n, dtype=torch.long)
    tvs = []
    for gamma, steps in ((1.0, 4), (1.0, 32), (0.0, 32)):
        den = dd.ClassifierGuidedDenoiser(model, process, classifier, gamma)
        out = dd.sample(den, process, n, 3, steps=steps, cond=y,
                        generator=torch.Generator().manual_seed(4))
        tvs.append(stats.tv(stats.empirical_law(out.tokens, K), classes[0].probs))
    floor = stats.tv_bound(classes[0].probs, n)
    assert tvs[1] < tvs[0] and tvs[1] < floor + 0.06 and tvs[2] > tvs[1] + floor, (tvs, floor)
