"""Embedded data: determinism under seed, documented scale and ranges, splits, batching."""

from __future__ import annotations

import pytest
import torch

import interpolant.data as data
from interpolant.errors import InterpolantError
from interpolant.oracle import GaussianMixture

STANDARDISED = ("moons", "circles", "swissroll", "checkerboard", "spirals", "8gaussians")


@pytest.mark.parametrize("name", data.toys.TOY_NAMES)
def test_toys_are_deterministic_under_seed_and_differ_across_seeds(name: str) -> None:
    a, b, c = data.toy(name, 256, seed=3), data.toy(name, 256, seed=3), data.toy(name, 256, seed=4)
    assert a.shape == (256, 2) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert data.toy(name, 8, seed=3, dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("name", STANDARDISED)
def test_standardised_toys_have_zero_mean_and_unit_variance(name: str) -> None:
    x = data.toy(name, 20_000, seed=1).double()
    assert x.mean(0).abs().max() < 0.05
    assert abs(x.var(0).mean().item() - 1.0) < 0.05
    # isotropic scaling keeps the shape: neither coordinate is collapsed
    assert x.var(0).min() > 0.3


def test_mixture_toys_are_oracle_samples_in_oracle_coordinates() -> None:
    x, labels = data.gmm("aniso2d", 500, seed=7)
    expected = GaussianMixture.preset("aniso2d").sample(
        500, torch.Generator().manual_seed(7), return_labels=True
    )
    assert torch.equal(x, expected[0]) and torch.equal(labels, expected[1])
    assert torch.equal(data.toy("aniso2d", 500, seed=7, dtype=torch.float64), x)
    x8, labels8 = data.gmm("mix8d", 100, seed=0)
    assert x8.shape == (100, 8) and labels8.dtype == torch.int64


def test_digits_range_counts_and_stratified_disjoint_split() -> None:
    x_all, y_all = data.digits("all")
    assert x_all.shape == (1797, 1, 8, 8) and x_all.dtype == torch.float32
    assert y_all.dtype == torch.int64
    assert x_all.min() == -1.0 and x_all.max() == 1.0
    # pixel values v in 0..16 map to v/8 - 1: a grid of step 1/8
    assert torch.equal(x_all * 8, (x_all * 8).round())
    x_tr, y_tr = data.digits("train", seed=0)
    x_te, y_te = data.digits("test", seed=0)
    assert len(y_tr) == 1500 and len(y_te) == 297
    # disjoint and covering: the multiset of (image, label) rows is preserved
    rows = lambda x, y: {(tuple(a.flatten().tolist()), int(b)) for a, b in zip(x, y)}  # noqa: E731
    train_rows, test_rows = rows(x_tr, y_tr), rows(x_te, y_te)
    assert len(train_rows & test_rows) <= 2  # the data holds a few duplicate images
    assert len(train_rows | test_rows) == len(rows(x_all, y_all))
    # stratified: every class's share of the test set is within one image of proportional
    counts_all, counts_te = torch.bincount(y_all, minlength=10), torch.bincount(y_te, minlength=10)
    assert torch.all((counts_te - counts_all * 297 / 1797).abs() <= 1.0)
    # fixed by seed, different for another seed
    assert torch.equal(data.digits("test", seed=0)[1], y_te)
    assert not torch.equal(data.digits("test", seed=1)[0], x_te)


def test_photo_patches_shapes_range_and_seed() -> None:
    rgb = data.photo_patches(32, size=16, seed=0)
    assert rgb.shape == (32, 3, 16, 16) and rgb.dtype == torch.float32
    assert rgb.min() >= -1.0 and rgb.max() <= 1.0 and rgb.std() > 0.1
    assert torch.equal(rgb, data.photo_patches(32, size=16, seed=0))
    assert not torch.equal(rgb, data.photo_patches(32, size=16, seed=1))
    gray = data.photo_patches(32, size=8, seed=0, gray=True)
    assert gray.shape == (32, 1, 8, 8)


def test_load_dispatches_and_rejects_bad_names_and_counts() -> None:
    assert {"digits", "moons", "photos", "mix8d"} <= set(data.available())
    x, labels = data.load("digits", n=100)
    assert x.shape == (100, 1, 8, 8) and labels.shape == (100,)
    x, labels = data.load("moons", n=50, seed=2)
    assert labels is None and torch.equal(x, data.toy("moons", 50, seed=2))
    with pytest.raises(InterpolantError, match="unknown data set 'mnist'.*digits"):
        data.load("mnist")
    with pytest.raises(InterpolantError, match="positive integer"):
        data.load("moons", n=0)
    with pytest.raises(InterpolantError, match="at most 1500"):
        data.load("digits", n=5000)
    with pytest.raises(InterpolantError, match="unknown toy data set"):
        data.toy("mnist", 10)
    with pytest.raises(InterpolantError, match=r"seed must be an integer in \[0, 2\*\*32\)"):
        data.toy("moons", 10, seed=-1)
    with pytest.raises(InterpolantError, match="unknown digits split 'val'"):
        data.digits("val")


def test_batches_are_deterministic_permutations_per_epoch() -> None:
    x, labels = torch.arange(10.0), torch.arange(10)
    epoch0 = list(data.batches(x, labels, 4, seed=5, epochs=1))
    assert len(epoch0) == 2  # drop_last drops the 2 left over
    for xb, yb in epoch0:
        assert torch.equal(xb.long(), yb)
    assert epoch0[0][0].tolist() == data.epoch_permutation(10, 5, 0)[:4].float().tolist()
    again = list(data.batches(x, labels, 4, seed=5, epochs=1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epoch0, again))
    two = list(data.batches(x, None, 5, seed=5, epochs=2))
    assert sorted(torch.cat([b for b, _ in two[:2]]).tolist()) == x.tolist()
    assert not torch.equal(two[0][0], two[2][0])  # a new permutation each epoch
    tail = list(data.batches(x, None, 4, seed=5, epochs=1, drop_last=False))
    assert [len(b) for b, _ in tail] == [4, 4, 2]


def test_batches_shard_disjointly_across_ranks() -> None:
    x = torch.arange(23.0)
    world = 3
    shards = [list(data.batches(x, None, 2, seed=0, epochs=1, rank=r, world_size=world))
              for r in range(world)]
    assert len({len(s) for s in shards}) == 1
    seen = [set(torch.cat([b for b, _ in s]).tolist()) for s in shards]
    assert all(not (seen[i] & seen[j]) for i in range(world) for j in range(i + 1, world))
    # step k over all ranks = positions [k*B*W, (k+1)*B*W) of the shared permutation
    order = data.epoch_permutation(23, 0, 0)
    step0 = set(torch.cat([s[0][0] for s in shards]).long().tolist())
    assert step0 == set(order[:6].tolist())
    with pytest.raises(InterpolantError, match="rank"):
        next(data.batches(x, None, 2, rank=3, world_size=3))
