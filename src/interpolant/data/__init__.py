"""Embedded data sets (nothing is downloaded) and a deterministic batch iterator.

>>> import interpolant.data as data
>>> x = data.toy("moons", 1000, seed=0)               # (1000, 2), mean ~0, variance ~1
>>> images, labels = data.digits("train")              # (1500, 1, 8, 8) in [-1, 1], int64
>>> x, labels = data.load("digits")                    # dispatch by name
>>> x, labels = data.load("my_images/", size=32)       # or the user's own file or folder
>>> for xb, yb in data.batches(images, labels, 64, seed=0, epochs=1):
...     pass

Names for :func:`load` are listed by :func:`available`; any other string is a path to the
user's own data (:mod:`.sources`: image folders, ``.npy``, ``.npz``, ``.safetensors``,
``.pt``, ``.csv``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from .images import DIGITS_TEST_SIZE, digits, photo_patches
from .sources import is_source, load_source
from .toys import GMM_PRESETS, TOY_NAMES, check_count, check_seed, gmm, toy

__all__ = [
    "DEFAULT_N",
    "DIGITS_TEST_SIZE",
    "available",
    "batches",
    "check_source",
    "digits",
    "epoch_permutation",
    "gmm",
    "load",
    "load_source",
    "photo_patches",
    "toy",
]

DEFAULT_N = 10_000
"""Points drawn by :func:`load` for sampled sets (toys, mixtures, photo patches) when ``n`` is
not given."""

_IMAGE_SETS = ("digits", "digits-test", "digits-all", "photos", "photos-gray")


def available() -> list[str]:
    """All names :func:`load` accepts, sorted."""
    return sorted(set(TOY_NAMES) | set(GMM_PRESETS) | set(_IMAGE_SETS))


def check_source(name: str | Path) -> None:
    """Refuse a ``name`` that is neither a bundled data set nor an existing file or folder."""
    if name not in available() and not is_source(name):
        raise InterpolantError(
            f"{unknown_name('data set', name, available())}; or give the path of a file or "
            "folder of your own data"
        )


def load(
    name: str | Path, n: int | None = None, seed: int = 0, **options: Any
) -> tuple[Tensor, Tensor | None]:
    """A data set by name or path: ``(x, labels)``, ``labels`` int64 ``(N,)`` or ``None``.

    - ``"digits"``, ``"digits-test"``, ``"digits-all"``: :func:`digits` with split train, test,
      all (``seed`` fixes the split); ``n`` takes the first ``n`` images (at most the split).
    - ``"photos"``, ``"photos-gray"``: ``n`` (default :data:`DEFAULT_N`) 16x16 patches from
      :func:`photo_patches`, RGB or gray; no labels.
    - mixture presets ``"aniso2d"``, ``"gauss2d"``, ``"mix8d"``: :func:`gmm`, float32, with
      the component labels.
    - other toys: :func:`toy` (float32), no labels.
    - anything else: the user's own file or folder, by :func:`load_source` with ``options``
      (``size``, ``channels``, ``label``); ``n`` keeps ``n`` samples drawn without
      replacement by ``seed`` (in file order: a folder lists its classes one after another).
    """
    check_source(name)
    if n is not None:
        n = check_count(n)
    if name not in available():
        x, labels = load_source(name, **options)
        if n is not None and n < len(x):
            g = torch.Generator().manual_seed(check_seed(seed))
            keep = torch.randperm(len(x), generator=g)[:n].sort().values
            x, labels = x[keep], None if labels is None else labels[keep]
        return _first(x, labels, n, name)
    if options:
        raise InterpolantError(f"options {sorted(options)} apply to files and folders, not to "
                               f"the bundled data set {name!r}")
    if name.startswith("digits"):
        split = {"digits": "train", "digits-test": "test", "digits-all": "all"}[name]
        return _first(*digits(split, seed), n, name)
    count = DEFAULT_N if n is None else n
    if name.startswith("photos"):
        return photo_patches(count, size=16, seed=seed, gray=name == "photos-gray"), None
    if name in GMM_PRESETS:
        x, labels = gmm(name, count, seed)
        return x.to(torch.float32), labels
    return toy(name, count, seed), None


def _first(
    x: Tensor, labels: Tensor | None, n: int | None, name: str
) -> tuple[Tensor, Tensor | None]:
    """The first ``n`` examples (all with ``n=None``)."""
    if n is None:
        return x, labels
    if n > len(x):
        raise InterpolantError(f"n must be at most {len(x)} for {name!r}, got {n}")
    return x[:n], None if labels is None else labels[:n]


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The permutation of ``range(n)`` used in ``epoch``: ``torch.randperm`` from a
    ``torch.Generator`` seeded with ``(seed * 2**32 + epoch) mod 2**63``."""
    seed_value = (check_seed(seed) * 2**32 + int(epoch)) % 2**63
    generator = torch.Generator().manual_seed(seed_value)
    return torch.randperm(n, generator=generator)


def batches(
    x: Tensor,
    labels: Tensor | None,
    batch_size: int,
    seed: int = 0,
    *,
    epochs: int | None = None,
    start_epoch: int = 0,
    drop_last: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Shuffled mini-batches ``(x_b, labels_b)`` (``labels_b`` is ``None`` without labels).

    Epoch ``e`` (from ``start_epoch``; ``epochs=None`` runs forever) visits the data in the
    order :func:`epoch_permutation` ``(N, seed, e)``: the same on every rank and every run.

    Sharding: the permutation is cut to a multiple of ``world_size`` and rank ``r`` takes
    positions ``r, r + W, r + 2W, ...``, then batches of ``batch_size`` (per rank). The ranks
    thus see disjoint slices, all ranks yield the same number of batches, and step ``k`` of
    all ranks together covers positions ``[k B W, (k + 1) B W)`` of the permutation: the same
    examples one process would see with batch size ``B W``. With ``drop_last`` a final
    partial batch is dropped.
    """
    if not isinstance(x, Tensor) or x.ndim < 1 or len(x) == 0:
        raise InterpolantError("x must be a non-empty tensor with the examples along dim 0")
    if labels is not None and (not isinstance(labels, Tensor) or labels.shape[:1] != x.shape[:1]):
        raise InterpolantError(f"labels must be a tensor of length {len(x)} (or None)")
    batch_size = check_count(batch_size, "batch_size")
    world_size = check_count(world_size, "world_size")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise InterpolantError(f"rank must be an integer in [0, {world_size}), got {rank!r}")
    bad_epochs = isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0
    if epochs is not None and bad_epochs:
        raise InterpolantError(f"epochs must be a non-negative integer or None, got {epochs!r}")
    per_rank = len(x) // world_size
    if per_rank < (batch_size if drop_last else 1):
        raise InterpolantError(
            f"{len(x)} examples over {world_size} rank(s) cannot fill a batch of {batch_size}"
        )
    epoch = start_epoch
    while epochs is None or epoch < start_epoch + epochs:
        order = epoch_permutation(len(x), seed, epoch)[: per_rank * world_size]
        mine = order[rank::world_size]
        stop = per_rank - per_rank % batch_size if drop_last else per_rank
        for begin in range(0, stop, batch_size):
            index = mine[begin : begin + batch_size]
            yield x[index], None if labels is None else labels[index]
        epoch += 1
