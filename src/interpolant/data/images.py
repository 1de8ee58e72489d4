"""Image data embedded in scikit-learn: the 8x8 digits and patches of the two sample photos.

Images follow the library convention: ``(N, C, H, W)`` float32 in ``[-1, 1]``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from .toys import check_count, check_seed

__all__ = ["DIGITS_TEST_SIZE", "digits", "photo_patches"]

DIGITS_TEST_SIZE = 297
"""Images held out by :func:`digits` for ``split="test"``; the other 1500 are ``"train"``."""

_SPLITS = ("train", "test", "all")


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # sklearn costs 0.3 s: imported when used

    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def digits(split: str = "train", seed: int = 0) -> tuple[Tensor, Tensor]:
    """The UCI handwritten digits (1797 images of 8x8, 10 classes) from scikit-learn.

    Pixel values ``v`` in ``0..16`` become ``v / 8 - 1``, so images lie in ``[-1, 1]``
    (float32, shape ``(N, 1, 8, 8)``); labels are int64 ``(N,)`` in ``0..9``.

    Splits: ``"all"`` is the 1797 images in scikit-learn's order. ``"train"`` (1500) and
    ``"test"`` (297) are a stratified split by ``sklearn.model_selection.train_test_split(
    test_size=297, stratify=labels, random_state=seed)``: disjoint, covering all images, class
    proportions kept to within one image per class, and fixed by ``seed`` (both splits come
    back in that function's shuffled order).
    """
    if split not in _SPLITS:
        raise unknown_name("digits split", split, _SPLITS)
    images, labels = _digits_arrays()
    if split != "all":
        index = np.arange(len(labels))
        from sklearn.model_selection import train_test_split

        train, test = train_test_split(
            index, test_size=DIGITS_TEST_SIZE, stratify=labels, random_state=check_seed(seed)
        )
        chosen = train if split == "train" else test
        images, labels = images[chosen], labels[chosen]
    x = torch.from_numpy(images / 8.0 - 1.0).to(torch.float32)[:, None]
    return x, torch.from_numpy(labels.copy())


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(img, dtype=np.uint8) for img in load_sample_images().images)


def photo_patches(n: int, size: int = 16, seed: int = 0, gray: bool = False) -> Tensor:
    """``n`` random square crops ``(n, C, size, size)`` in ``[-1, 1]`` of scikit-learn's two
    sample photos ("china.jpg" and "flower.jpg", 427x640 RGB).

    Each crop picks a photo uniformly, then a top-left corner uniformly among the valid ones,
    from ``numpy.random.default_rng(seed)``. Pixels ``v`` in ``0..255`` become
    ``v / 127.5 - 1``. With ``gray=True`` there is one channel, the Rec. 601 luma
    ``0.299 R + 0.587 G + 0.114 B``; otherwise three (RGB).
    """
    n = check_count(n)
    size = check_count(size, "size")
    photos = _photos()
    height, width = photos[0].shape[:2]
    if size > min(height, width):
        raise InterpolantError(f"size must be at most {min(height, width)} pixels, got {size}")
    rng = np.random.default_rng(check_seed(seed))
    which = rng.integers(0, len(photos), n)
    top = rng.integers(0, height - size + 1, n)
    left = rng.integers(0, width - size + 1, n)
    crops = np.stack(
        [photos[k][i : i + size, j : j + size] for k, i, j in zip(which, top, left)]
    ).astype(np.float32)
    if gray:
        crops = crops @ np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None]
    x = torch.from_numpy(crops / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()
    return x.clamp_(-1.0, 1.0)
