"""Classifier guidance: with the exact noise-aware classifier (the oracle's class posterior)
it is Bayes' rule, so scale 1 is the exact conditional denoiser and scale w equals CFG at w;
the trainable classifier learns the classes of a noisy 2-D mixture."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.labels import NULL_LABEL
from interpolant.predictions import TARGETS

F64 = torch.float64


@pytest.mark.parametrize("t", [0.1, 0.6])
def test_exact_classifier_at_scale_one_is_the_conditional_denoiser(path, gmm, points, labels, t):
    den = gmm.denoiser(path)
    g = ip.guidance.ClassifierGuidance(den, gmm.classifier(path), 1.0)
    for target in TARGETS:
        torch.testing.assert_close(g(points, t, labels, target), den(points, t, labels, target),
                                   rtol=1e-9, atol=1e-9)


def test_exact_classifier_at_scale_w_is_cfg_at_w(gmm, points, labels):
    """grad log p(c | x_t) = score_c - score_u, so score_u + w (score_c - score_u) either way."""
    path = ip.paths.Trig()
    den = gmm.denoiser(path)
    t = torch.linspace(0.05, 0.95, 8, dtype=F64)
    cg = ip.guidance.ClassifierGuidance(den, gmm.classifier(path), 3.0)
    cfg = ip.guidance.CFG(den, 3.0)
    torch.testing.assert_close(cg(points, t, labels, "eps"), cfg(points, t, labels, "eps"),
                               rtol=1e-9, atol=1e-9)


def test_null_rows_are_unguided_and_inference_mode_works(gmm, points, labels):
    path = ip.paths.VPLinear()
    den = gmm.denoiser(path)
    g = ip.guidance.ClassifierGuidance(den, gmm.classifier(path), 2.0)
    mixed = labels.clone()
    mixed[1::2] = NULL_LABEL
    with torch.inference_mode():
        out = g(points, 0.4, mixed)
    torch.testing.assert_close(out[1::2], den(points[1::2], 0.4), rtol=0, atol=0)


@pytest.fixture(scope="module")
def trained():
    """Four separated classes on VPCosine and a classifier trained for 300 Adam steps."""
    torch.manual_seed(0)
    means = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]], dtype=F64)
    covs = 0.15 * torch.eye(2, dtype=F64).expand(4, 2, 2)
    gmm = ip.oracle.GaussianMixture(means, covs, labels=torch.arange(4))
    path = ip.paths.VPCosine()
    g = torch.Generator().manual_seed(1)
    data, comp = gmm.sample(4096, g, return_labels=True)
    clf = ip.guidance.NoiseAwareClassifier(2, 4, hidden=64).double()
    losses = ip.guidance.train_classifier(clf, data, comp, path, steps=300, generator=g)
    return gmm, path, clf, losses


def test_noise_aware_classifier_learns_a_noisy_mixture(trained):
    """The learned classifier is within a few points of the Bayes accuracy of the exact
    classifier, at low and at high noise."""
    gmm, path, clf, losses = trained
    assert sum(losses[-20:]) / 20 < 0.6 * sum(losses[:20]) / 20
    g = torch.Generator().manual_seed(2)
    test, truth = gmm.sample(2000, g, return_labels=True)
    for t in (0.1, 0.6):
        tt = torch.full((2000,), t, dtype=F64)
        xt = path.sample(test, tt, torch.randn(test.shape, generator=g, dtype=F64))
        bayes = (gmm.class_log_posterior(xt, t, path).argmax(1) == truth).double().mean()
        with torch.no_grad():
            learned = (clf(xt, tt).argmax(1) == truth).double().mean()
        assert learned > bayes - 0.04, (t, float(learned), float(bayes))


def test_trained_classifier_steers_the_unconditional_model_to_the_class(trained):
    """Guiding the unconditional oracle with the learned classifier (scale 1) lands nearly
    every sample in the requested class, as the exact conditional denoiser does."""
    gmm, path, clf, _ = trained
    labels = torch.arange(400) % 4
    x1 = torch.randn(400, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    g = ip.guidance.ClassifierGuidance(gmm.denoiser(path), clf, 1.0)
    x = ip.sample(g, x1, "dpm++2m", 20, cond=labels, t_start=0.999)
    hit = (gmm.class_log_posterior(x, path.t_min, path).argmax(1) == labels).double().mean()
    assert hit > 0.95
    plain = ip.sample(gmm.denoiser(path), x1, "dpm++2m", 20, t_start=0.999)
    missed = gmm.class_log_posterior(plain, path.t_min, path).argmax(1) != labels
    assert missed.double().mean() > 0.5


def test_bad_classifier_output_and_labels(gmm, points, labels):
    path = ip.paths.VPLinear()
    den = gmm.denoiser(path)
    g = ip.guidance.ClassifierGuidance(den, lambda x, t: x.sum(1), 1.0)
    with pytest.raises(InterpolantError, match="logits"):
        g(points, 0.5, labels)
    g = ip.guidance.ClassifierGuidance(den, lambda x, t: x[:, :2], 1.0)
    with pytest.raises(InterpolantError, match="outside the classifier"):
        g(points, 0.5, labels)
    with pytest.raises(InterpolantError, match="callable"):
        ip.guidance.ClassifierGuidance(den, "clf")


def test_exact_classifier_guidance_samples_like_the_conditional_model_with_every_solver(
        gmm, samples_alike):
    """Scale 1 with the exact classifier is the conditional denoiser, so every solver gives
    the conditional model's samples (same grid, same noise)."""
    path = ip.paths.VPLinear()
    den = gmm.denoiser(path)
    x1 = torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(5))
    samples_alike(ip.guidance.ClassifierGuidance(den, gmm.classifier(path), 1.0), den, x1,
                  torch.tensor([0, 1, 2, 0, 1, 2]), 1e-7)


def test_no_shift_at_pure_noise():
    """On the cosine path alpha(1) = 6e-17: x_1 carries nothing of x_0, the exact guidance
    gradient is 0 there, and a learned classifier's leftover (times sigma^2 / alpha ~ 1e16)
    would wreck the first step. The guided x0 at t = 1 is the model's; at t = 0.99 it is not."""
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    path = ip.paths.VPCosine()
    den = gmm.denoiser(path)

    def leftover(x, t):  # logits whose gradient does not vanish at t = 1
        return torch.stack([x[:, 0], -x[:, 0]], 1)

    g = ip.guidance.ClassifierGuidance(den, leftover, 2.0)
    x, labels = torch.randn(4, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.long)
    for t in (1.0, torch.ones(4, dtype=torch.float64)):
        torch.testing.assert_close(g(x, t, labels, "x0"), den(x, t, None, "x0"))
    assert float((g(x, 0.99, labels, "x0") - den(x, 0.99, None, "x0")).abs().max()) > 1e-3
