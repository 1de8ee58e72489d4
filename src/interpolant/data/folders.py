"""A folder of the user's images (PNG, JPEG) as ``(N, C, H, W)`` float32 in ``[-1, 1]``.

Layouts:

- ``folder/*.png``: unlabelled images;
- ``folder/<class>/*.png``: one subfolder per class; labels are the subfolders' indices in
  sorted order of their names (as torchvision's ``ImageFolder``). Images directly in the
  folder beside class subfolders are refused; hidden files and folders are ignored.

Pixels ``v`` in ``0..255`` become ``v / 127.5 - 1`` (16-bit images: ``v / 32767.5 - 1``).
Channels: one (gray) if every image is gray, otherwise three (RGB; gray images repeated);
``channels=1`` or ``3`` forces one or the other (RGB to gray by the Rec. 601 luma
``0.299 R + 0.587 G + 0.114 B``, as :func:`photo_patches`). An alpha channel is dropped.

Sizes: without ``size`` every image must have the same size. ``size=s`` scales each image so
that its shorter side is ``s`` (bicubic, antialiased) and crops the centre ``s x s``;
``size=(h, w)`` resizes to exactly ``h x w``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import InterpolantError

__all__ = ["IMAGE_SUFFIXES", "load_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
Size = int | tuple[int, int] | None


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def find_images(folder: Path) -> tuple[list[Path], list[int] | None, list[str]]:
    """The image files of ``folder``, their class indices (``None`` without subfolders) and
    the class names."""
    top = _images_in(folder)
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = [(d.name, _images_in(d)) for d in subfolders]
    classes = [(name, files) for name, files in classes if files]
    if top and classes:
        raise InterpolantError(
            f"{folder} holds images both directly and in class subfolders "
            f"({', '.join(name for name, _ in classes[:3])}); move them into one layout"
        )
    if top:
        return top, None, []
    if not classes:
        raise InterpolantError(
            f"{folder} holds no PNG or JPEG images (directly or one subfolder down); "
            "put the images there, one subfolder per class for labels"
        )
    files = [f for _, group in classes for f in group]
    labels = [k for k, (_, group) in enumerate(classes) for _ in group]
    return files, labels, [name for name, _ in classes]


def load_image_folder(
    folder: str | Path, size: Size = None, channels: int | None = None
) -> tuple[Tensor, Tensor | None]:
    """``(x, labels)`` from a folder of images (see the module docstring for the rules)."""
    from PIL import Image

    folder = Path(folder)
    if channels not in (None, 1, 3):
        raise InterpolantError(f"channels must be 1 or 3, got {channels!r}")
    target = _check_size(size)
    files, labels, _ = find_images(folder)
    arrays = []
    for file in files:
        try:
            with Image.open(file) as img:
                img.load()
                arrays.append(_pixels(img, target))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise InterpolantError(f"cannot read image {file}: {exc}") from None
    shapes = {a.shape[:2] for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape[:2]
        other = next(i for i, a in enumerate(arrays) if a.shape[:2] != first)
        raise InterpolantError(
            f"images in {folder} have different sizes ({files[0].name} is "
            f"{first[0]}x{first[1]}, {files[other].name} is {arrays[other].shape[0]}x"
            f"{arrays[other].shape[1]}); pass a size to resize them: `interpolant train "
            f"--size 32` (or --data '{folder}:size=32'; size=32 in the library)"
        )
    gray = all(a.shape[2] == 1 for a in arrays) if channels is None else channels == 1
    x = torch.from_numpy(np.stack([_to_channels(a, gray) for a in arrays]))
    x = x.permute(0, 3, 1, 2).contiguous()
    return x, None if labels is None else torch.tensor(labels, dtype=torch.int64)


def _check_size(size: Size) -> tuple[int, int] | int | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                 for s in pair):
        raise InterpolantError(f"size must be a positive integer or (height, width), got {size!r}")
    return size if isinstance(size, int) else (pair[0], pair[1])


def _pixels(img, target: tuple[int, int] | int | None) -> np.ndarray:
    """One image as float32 ``(H, W, C)`` in ``[-1, 1]``, C = 1 (gray) or 3 (RGB)."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit: resize as 32-bit floats
        img, scale = Image.fromarray(np.asarray(img).astype(np.float32)), 32767.5
    elif img.mode in ("1", "L", "LA"):
        img, scale = img.convert("L"), 127.5
    else:
        img, scale = img.convert("RGB"), 127.5
    if target is not None:
        bicubic = Image.Resampling.BICUBIC
        if isinstance(target, int):
            w, h = img.size
            ratio = target / min(w, h)
            new_w, new_h = max(target, round(w * ratio)), max(target, round(h * ratio))
            img = img.resize((new_w, new_h), bicubic)
            left, top = (new_w - target) // 2, (new_h - target) // 2
            img = img.crop((left, top, left + target, top + target))
        else:
            img = img.resize((target[1], target[0]), bicubic)
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    return np.clip(a / scale - 1.0, -1.0, 1.0)


def _to_channels(a: np.ndarray, gray: bool) -> np.ndarray:
    if gray and a.shape[2] == 3:
        return (a @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    if not gray and a.shape[2] == 1:
        return np.repeat(a, 3, axis=2)
    return a
