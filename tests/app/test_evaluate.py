"""The evaluation's per-cell measures on real digits, where their answers are known."""

from __future__ import annotations

import torch

from interpolant import data
import pytest

from interpolant import paths
from interpolant.app.draw import _spent, plan_steps
from interpolant.app.evaluate import noise_floor, quality
from interpolant.errors import InterpolantError
from interpolant.app.runs import RunConfig


def test_quality_of_real_and_copied_digits():
    config = RunConfig()
    train, _ = data.digits("train")
    test, test_labels = data.digits("test")
    real = quality(config, test[:150], test[150:], train=train, labels=test_labels[:150])
    # held-out digits: read as their labels (classifier accuracy 97.6%), all classes present,
    # no closer to the training set than other held-out digits are
    assert real["label_accuracy"] > 0.95
    assert real["class_entropy"] > 0.98
    assert 0.8 < real["nn_ratio"] < 1.25
    copies = quality(config, train[:300], test, train=train)
    assert copies["nn_ratio"] == 0.0  # memorised samples are caught
    shuffled = quality(config, test, train[:500], labels=test_labels.roll(1))
    assert shuffled["label_accuracy"] < 0.2  # wrong conditioning labels are caught
    noise = 0.8 * torch.randn(test[:150].shape, generator=torch.Generator().manual_seed(0))
    noisy = quality(config, test[:150] + noise, test[150:])
    assert noisy["digits_fd"] > 3 * real["digits_fd"]


@pytest.mark.parametrize("solver, budget", [("ddim", 10), ("heun", 5), ("heun", 10),
                                            ("dpm2", 6), ("dpm3", 8), ("pndm", 12),
                                            ("dpm-fast", 7)])
def test_steps_for_an_nfe_budget_keep_it_and_use_it(solver, budget):
    path = paths.get("vp-cosine")
    steps = plan_steps(solver, budget, path)
    assert _spent(solver, steps, path) <= budget  # kept
    after = _spent(solver, steps + 1, path)
    assert after is None or after > budget  # and no further step would fit


@pytest.mark.parametrize("solver, budget", [("heun", 1), ("plms", 1), ("pndm", 9),
                                            ("dpm-adaptive", 3)])
def test_a_budget_below_the_solvers_smallest_run_is_refused(solver, budget):
    with pytest.raises(InterpolantError, match="spends at least"):
        plan_steps(solver, budget, paths.get("vp-cosine"))


def test_noise_floor_is_what_real_digits_drawn_like_the_samples_score():
    # #17.10: a perfect model's samples (real training digits with the samples' class mix,
    # as many as the samples) must not read as better than the floor. The old floor (the
    # first n training digits, class mix ignored) scored 3.8 where such samples score ~2.7.
    config, n = RunConfig(), 500
    train, train_labels = data.digits("train")
    test, _ = data.digits("test")
    labels = torch.arange(n) % 10
    floor = noise_floor(config, train, train_labels, test, n, labels, seed=0)
    assert str(n) in floor["method"] and "classes" in floor["method"]
    low, high = floor["range"]["digits_fd"]
    assert low <= floor["mean"]["digits_fd"] <= high
    perfect = [noise_floor(config, train, train_labels, test, n, labels, seed=s)["mean"]
               for s in (11, 12)]
    for other in perfect:
        assert 0.75 * floor["mean"]["digits_fd"] < other["digits_fd"] < 1.33 * floor["mean"][
            "digits_fd"]
