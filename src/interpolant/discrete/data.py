"""Token data sets, all offline: quantized digits and character-level text.

``digit_tokens`` turns the 8x8 digits (intensities 0..16) into sequences of 64 tokens over
``K = 17`` values, row by row. ``text_tokens`` cuts Python's bundled documentation
(``pydoc_data.topics``) into sequences of ``length`` characters over ``TEXT_VOCAB`` (newline
and the 95 printable ASCII characters; anything else becomes ``?``); topics are sorted by name
and every 10th one is held out as ``"test"``. ``bits`` converts nats to bits.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from .processes import check_tokens

__all__ = [
    "DIGIT_LEVELS", "TEXT_VOCAB", "bits", "decode_text", "digit_images", "digit_tokens",
    "text_tokens",
]

DIGIT_LEVELS = 17
"""The 8x8 digits' intensities take the values 0..16: one token per value."""

TEXT_VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
"""Characters of :func:`text_tokens`: newline, then printable ASCII (96 tokens)."""

_INDEX = {c: i for i, c in enumerate(TEXT_VOCAB)}


def digit_tokens(split: str = "train", seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(tokens, labels)``: int64 ``(N, 64)`` intensities in ``[0, 17)``, labels ``(N,)``.

    The split is :func:`interpolant.data.images.digits`'s (1500 train / 297 test);
    ``v = 8 (x + 1)`` undoes its scaling exactly.
    """
    from ..data.images import digits

    images, labels = digits(split, seed)
    tokens = torch.round((images[:, 0] + 1.0) * 8.0).long().reshape(len(images), 64)
    return tokens, labels


def digit_images(tokens: Tensor) -> Tensor:
    """``(N, 64)`` intensity tokens back to images ``(N, 1, 8, 8)`` in ``[-1, 1]`` (``v / 8 - 1``),
    the library's image convention (for pictures and Digits-FD)."""
    check_tokens(tokens, DIGIT_LEVELS, "digit tokens")
    if tokens.shape[1] != 64:
        raise InterpolantError(f"digit tokens have 64 positions, got {tokens.shape[1]}")
    return (tokens.to(torch.float32) / 8.0 - 1.0).reshape(-1, 1, 8, 8)


def text_tokens(length: int = 64, split: str = "train") -> Tensor:
    """int64 ``(N, length)`` character tokens of ``pydoc_data.topics`` (module docstring)."""
    from pydoc_data.topics import topics

    if split not in ("train", "test"):
        raise unknown_name("text split", split, ("train", "test"))
    if not isinstance(length, int) or length < 1:
        raise InterpolantError(f"length must be a positive int, got {length!r}")
    names = sorted(topics)
    chosen = [n for i, n in enumerate(names) if (i % 10 == 9) == (split == "test")]
    text = "\n".join(topics[n] for n in chosen)
    ids = torch.tensor([_INDEX.get(c, _INDEX["?"]) for c in text], dtype=torch.int64)
    n = len(ids) // length
    return ids[: n * length].reshape(n, length)


def decode_text(tokens: Tensor) -> list[str]:
    """Strings of ``(N, L)`` character tokens."""
    if tokens.ndim != 2 or int(tokens.max()) >= len(TEXT_VOCAB) or int(tokens.min()) < 0:
        raise InterpolantError(f"text tokens must be (N, L) in [0, {len(TEXT_VOCAB)})")
    return ["".join(TEXT_VOCAB[i] for i in row) for row in tokens.tolist()]


def bits(nats: float | Tensor) -> float | Tensor:
    """Nats to bits (e.g. a bound per character to bits per character)."""
    return nats / math.log(2.0)
