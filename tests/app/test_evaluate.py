"""The evaluation's per-cell measures on real digits, where their answers are known."""

from __future__ import annotations

import torch

from interpolant import data
from interpolant.app.evaluate import quality, steps_for
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


def test_steps_for_an_nfe_budget():
    assert steps_for("ddim", 10) == 10
    assert steps_for("heun", 10) == 5 and steps_for("heun", 5) == 2
    assert steps_for("dpm3", 2) == 1
