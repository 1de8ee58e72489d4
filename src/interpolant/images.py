"""Pictures of samples: image grids as PNG files and 2-D scatter plots.

Images follow the library convention: ``(B, C, H, W)`` floats in ``[-1, 1]`` with ``C`` equal to
1 (grey) or 3 (RGB). A value ``x`` becomes the byte ``round((x + 1) * 127.5)``, so ``-1`` is
black (0) and ``1`` is white (255).

>>> save_grid(samples, "out/ddim_10.png", scale=4)       # 8x8 digits become 32x32 tiles
>>> scatter_png(samples_2d, "out/moons.png", reference=data)

Pictures are written in the format their name asks for: ``.png``, or ``.jpg`` / ``.jpeg``
(JPEG, lossy); any other name is refused (:func:`check_picture_name`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import InterpolantError

# Model samples often overshoot [-1, 1] by rounding error; this much is clipped silently.
RANGE_TOLERANCE = 1e-4

ArrayLike = torch.Tensor | np.ndarray

# File name endings of the pictures we write, and their formats (PIL / matplotlib names).
PICTURE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


def check_picture_name(path: str | os.PathLike[str]) -> str:
    """The format a picture named ``path`` is written in (``"png"`` or ``"jpeg"``); refuses
    a folder or a name with another ending."""
    target = Path(path)
    if target.is_dir():
        raise InterpolantError(f"{target} is a folder; give a picture file name such as "
                               f"{target / 'samples.png'}")
    fmt = PICTURE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise InterpolantError(f"cannot write a picture named {target.name!r}: name it .png or "
                               ".jpg (PNG or JPEG)")
    return fmt


def _as_numpy(images: ArrayLike, what: str) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        array = images.detach().to("cpu", torch.float64).numpy()
    elif isinstance(images, np.ndarray):
        array = images.astype(np.float64, copy=False)
    else:
        raise InterpolantError(f"{what} must be a torch.Tensor or numpy array, got {type(images)}")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InterpolantError(f"{what} contain {bad} non-finite values (NaN or inf)")
    return array


def to_uint8(images: ArrayLike, clip: bool = False) -> np.ndarray:
    """Map a ``(B, C, H, W)`` batch in ``[-1, 1]`` to bytes of shape ``(B, H, W, C)``.

    ``-1 -> 0`` and ``1 -> 255``, rounding to the nearest byte. Values outside ``[-1, 1]`` by
    more than ``RANGE_TOLERANCE`` raise :class:`InterpolantError` unless ``clip=True`` (use that
    for raw model samples, which may overshoot).
    """
    array = _as_numpy(images, "images")
    if array.ndim != 4:
        hint = " (add a batch axis with x[None])" if array.ndim == 3 else ""
        raise InterpolantError(
            f"images must have shape (B, C, H, W), got {tuple(array.shape)}{hint}"
        )
    if array.shape[1] not in (1, 3):
        raise InterpolantError(
            f"images must have 1 or 3 channels (axis 1), got shape {tuple(array.shape)}"
        )
    if array.shape[0] == 0:
        raise InterpolantError("images is an empty batch")
    low, high = float(array.min()), float(array.max())
    if not clip and (low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE):
        raise InterpolantError(
            f"images must lie in [-1, 1], found values in [{low:.4g}, {high:.4g}]; "
            "rescale them, or pass clip=True to clamp model samples"
        )
    scaled = np.rint((np.clip(array, -1.0, 1.0) + 1.0) * 127.5)
    return scaled.astype(np.uint8).transpose(0, 2, 3, 1)


def grid_array(
    images: ArrayLike,
    nrow: int | None = None,
    scale: int = 4,
    padding: int = 1,
    pad_value: float = 1.0,
    clip: bool = False,
) -> np.ndarray:
    """Tile a batch into one ``(rows, cols, C)`` uint8 array (the pixels :func:`save_grid` writes).

    Each image is enlarged ``scale`` times by nearest-neighbour repetition, ``nrow`` images go
    in a row (default ``ceil(sqrt(B))``), and tiles are separated and framed by ``padding``
    pixels of colour ``pad_value`` (in ``[-1, 1]``; default white). Empty cells are padding.
    """
    if not isinstance(scale, int) or scale < 1:
        raise InterpolantError(f"scale must be a positive integer, got {scale!r}")
    if not isinstance(padding, int) or padding < 0:
        raise InterpolantError(f"padding must be a non-negative integer, got {padding!r}")
    if not -1.0 <= pad_value <= 1.0:
        raise InterpolantError(f"pad_value must lie in [-1, 1], got {pad_value!r}")
    tiles = to_uint8(images, clip=clip)
    count, height, width, channels = tiles.shape
    per_row = nrow if nrow is not None else math.ceil(math.sqrt(count))
    if not isinstance(per_row, int) or per_row < 1:
        raise InterpolantError(f"nrow must be a positive integer, got {nrow!r}")
    per_row = min(per_row, count)
    rows = math.ceil(count / per_row)
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    tile_h, tile_w = height * scale, width * scale
    fill = int(round((pad_value + 1.0) * 127.5))
    canvas = np.full(
        (padding + rows * (tile_h + padding), padding + per_row * (tile_w + padding), channels),
        fill,
        dtype=np.uint8,
    )
    for index in range(count):
        top = padding + (index // per_row) * (tile_h + padding)
        left = padding + (index % per_row) * (tile_w + padding)
        canvas[top : top + tile_h, left : left + tile_w] = tiles[index]
    return canvas


def save_grid(
    images: ArrayLike,
    path: str | os.PathLike[str],
    nrow: int | None = None,
    scale: int = 4,
    padding: int = 1,
    pad_value: float = 1.0,
    clip: bool = False,
) -> Path:
    """Write a batch of images as one PNG (or JPEG, for a ``.jpg`` name) grid and return the
    path written.

    See :func:`grid_array` for the layout. Grey images (``C = 1``) are saved in mode ``L``,
    colour images in ``RGB``. Parent folders are created; the file is replaced atomically.
    """
    fmt = check_picture_name(path)
    canvas = grid_array(images, nrow, scale, padding, pad_value, clip)
    picture = Image.fromarray(canvas[..., 0] if canvas.shape[-1] == 1 else canvas)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        picture.save(partial, format=fmt.upper(), **({"quality": 95} if fmt == "jpeg" else {}))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _points(values: ArrayLike, what: str) -> np.ndarray:
    array = _as_numpy(values, what)
    if array.ndim != 2 or array.shape[1] != 2:
        raise InterpolantError(f"{what} must have shape (N, 2), got {tuple(array.shape)}")
    return array


def scatter_png(
    points: ArrayLike,
    path: str | os.PathLike[str],
    reference: ArrayLike | None = None,
    title: str | None = None,
    labels: Sequence[str] = ("samples", "data"),
    size: float = 4.0,
    dpi: int = 100,
) -> Path:
    """Scatter 2-D samples ``(N, 2)``, optionally over reference data ``(M, 2)``, into a PNG.

    The reference is drawn first in grey, samples on top in colour, on equal axes. The figure
    is ``size`` inches square at ``dpi`` (400 x 400 pixels by default).
    """
    from .plots import new_figure, save_figure  # matplotlib loads only when a plot is drawn

    samples = _points(points, "points")
    figure, axes = new_figure(size, size, dpi)
    if reference is not None:
        data = _points(reference, "reference")
        axes.scatter(data[:, 0], data[:, 1], s=4, c="#9aa0a6", alpha=0.5, lw=0, label=labels[1])
    axes.scatter(samples[:, 0], samples[:, 1], s=4, c="#1a73e8", alpha=0.7, lw=0, label=labels[0])
    axes.set_aspect("equal", adjustable="datalim")
    if reference is not None:
        axes.legend(loc="upper right", markerscale=3, frameon=False)
    if title:
        axes.set_title(title)
    return save_figure(figure, path)
