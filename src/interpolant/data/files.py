"""The user's own data from a file: arrays (``.npy``, ``.npz``, ``.safetensors``, ``.pt``) and
tables (``.csv``), checked and brought to the library's conventions.

Every loader returns ``(x, labels)`` like the bundled sets: ``x`` float32, either ``(N, D)``
rows or ``(N, C, H, W)`` images in ``[-1, 1]``; ``labels`` int64 ``(N,)`` or ``None``.

Arrays:

- ``uint8`` arrays are pixels ``0..255`` and become ``v / 127.5 - 1``; float arrays are taken
  as they are, and must lie in ``[-1, 1]`` when they are images.
- ``(N,)`` becomes ``(N, 1)``; ``(N, H, W)`` one-channel images ``(N, 1, H, W)``; 4-D arrays
  are channels-first, unless only the last axis looks like channels (1 or 3, as in
  ``(N, H, W, C)``), which is then moved to the front.
- A file of several arrays (``.npz``, ``.safetensors``, a dict in ``.pt``) names the samples
  ``x`` (or ``data``, ``images``, ``samples``, or holds a single array) and the labels
  ``labels`` (or ``label``, ``y``, ``targets``); ``np.savez(file, x, labels)`` works too
  (``arr_0``, ``arr_1``). A ``.pt`` file may also hold a tensor or a
  pair ``(x, labels)``. ``.pt`` files are read with ``torch.load(weights_only=True)``: tensors
  and plain containers only, never arbitrary pickled objects.

CSV: one row per sample, a header row optional (detected when a cell of the first row is not
a number). The label column is the one named by ``label`` (a header name or a 0-based index),
else a column headed ``label`` or ``labels`` if there is one; its values may be integers or
names (names are numbered in sorted order). Every other column must be numeric.
"""

from __future__ import annotations

import csv
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import InterpolantError

__all__ = ["ARRAY_SUFFIXES", "check_data", "load_array_file", "load_csv"]

ARRAY_SUFFIXES = (".npy", ".npz", ".safetensors", ".pt", ".pth")
X_KEYS = ("x", "data", "images", "samples", "arr_0")
LABEL_KEYS = ("labels", "label", "y", "targets", "arr_1")
_LABEL_HEADERS = ("label", "labels")
_CHANNELS = (1, 3)


def check_data(x: Any, labels: Any, source: str) -> tuple[Tensor, Tensor | None]:
    """Bring ``x`` and ``labels`` (arrays or tensors) to the library's conventions, or say in
    one line what is wrong with them (``source`` names the file in the message)."""
    x = _as_tensor(x, f"the samples in {source}")
    if x.dtype == torch.bool or x.is_complex():
        raise InterpolantError(f"the samples in {source} are {x.dtype}; store real numbers")
    if x.ndim == 0 or len(x) == 0:
        raise InterpolantError(f"{source} holds no samples (shape {tuple(x.shape)})")
    if x.ndim > 4:
        raise InterpolantError(
            f"the samples in {source} have shape {tuple(x.shape)}; expected (N, D) rows or "
            "(N, C, H, W) images"
        )
    pixels = x.dtype == torch.uint8
    if x.ndim in (1, 3):  # (N,) rows of one value, (N, H, W) one-channel images
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in _CHANNELS and x.shape[-1] in _CHANNELS:
        x = x.permute(0, 3, 1, 2)
    x = x.to(torch.float32).contiguous()
    bad = ~torch.isfinite(x)
    if bad.any():
        first = int(bad.flatten(1).any(1).nonzero()[0])
        raise InterpolantError(
            f"the samples in {source} hold {int(bad.sum())} NaN or infinite value(s) (first in "
            f"sample {first}); remove or fill them"
        )
    if pixels:
        x = x / 127.5 - 1.0
    elif x.ndim == 4 and x.abs().max() > 1.0 + 1e-4:
        raise InterpolantError(
            f"images in {source} must lie in [-1, 1], found values in "
            f"[{x.min().item():.4g}, {x.max().item():.4g}]; rescale them, or store uint8 "
            "pixels (0..255), which are scaled for you"
        )
    return x, None if labels is None else check_labels(labels, len(x), source)


def check_labels(labels: Any, n: int, source: str) -> Tensor:
    """Class labels as int64 ``(n,)``: integers ``>= 0``, one per sample."""
    labels = _as_tensor(labels, f"the labels in {source}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != n:
        raise InterpolantError(
            f"the labels in {source} have shape {tuple(labels.shape)} but there are {n} "
            f"samples; give one integer label per sample"
        )
    if labels.is_floating_point():
        if not torch.isfinite(labels).all() or (labels != labels.round()).any():
            raise InterpolantError(f"the labels in {source} must be whole numbers (class ids)")
    elif labels.dtype == torch.bool or labels.is_complex():
        raise InterpolantError(f"the labels in {source} are {labels.dtype}; store integers")
    labels = labels.to(torch.int64)
    if (labels < 0).any():
        raise InterpolantError(
            f"the labels in {source} must be >= 0, found {int(labels.min())}"
        )
    return labels


def _as_tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise InterpolantError(f"{what} are of dtype {value.dtype}; store numbers")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise InterpolantError(f"{what} must be an array or tensor, got {type(value).__name__}")


def load_array_file(path: Path, label: str | None = None) -> tuple[Tensor, Tensor | None]:
    """``(x, labels)`` from a ``.npy``, ``.npz``, ``.safetensors`` or ``.pt`` file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            content: Any = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                content = {key: archive[key] for key in archive.files}
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            content = load_file(str(path))
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InterpolantError(
            f"cannot read {path} with torch.load(weights_only=True): it holds objects other "
            "than tensors and plain containers; save tensors only (or use .safetensors)"
        ) from None
    except (OSError, ValueError, RuntimeError, EOFError) as exc:
        raise InterpolantError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    x, labels = _split(content, path, label)
    return check_data(x, labels, str(path))


def _split(content: Any, path: Path, label: str | None) -> tuple[Any, Any]:
    """The samples and labels of a loaded file: one array, a pair, or named arrays."""
    if isinstance(content, (Tensor, np.ndarray)):
        if label is not None:
            raise InterpolantError(f"{path} holds one array, so there is no {label!r} to label by")
        return content, None
    if isinstance(content, Sequence) and not isinstance(content, str) and len(content) == 2:
        return content[0], content[1]
    if not isinstance(content, Mapping) or not content:
        raise InterpolantError(
            f"{path} must hold an array, a pair (x, labels) or named arrays, "
            f"got {type(content).__name__}"
        )
    names = sorted(map(str, content))
    label_key = _pick(content, (label,) if label else LABEL_KEYS, path, required=bool(label))
    rest = [k for k in content if k != label_key]
    x_key = _pick(content, X_KEYS, path, required=False)
    if x_key is None and len(rest) == 1:
        x_key = rest[0]
    if x_key is None:
        raise InterpolantError(
            f"{path} holds arrays {names}; name the samples one of {list(X_KEYS)}"
        )
    return content[x_key], None if label_key is None else content[label_key]


def _pick(content: Mapping, keys: Sequence[str], path: Path, required: bool) -> str | None:
    for key in keys:
        if key in content:
            return key
    if required:
        raise InterpolantError(f"{path} has no array {keys[0]!r}; it holds {sorted(content)}")
    return None


def load_csv(path: Path, label: str | None = None) -> tuple[Tensor, Tensor | None]:
    """``(x, labels)`` from a CSV table: float32 rows ``(N, D)``, labels from one column."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            numbered = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InterpolantError(f"cannot read {path}: {exc}") from None
    if not numbered:
        raise InterpolantError(f"{path} is empty; write one row per sample")
    lines, rows = [n for n, _ in numbered], [r for _, r in numbered]
    header = rows[0] if not all(_is_number(c) for c in rows[0]) else None
    first = 1 if header is not None else 0
    body, lines = rows[first:], lines[first:]
    width = len(rows[0])
    names = [c.strip() for c in header] if header else [str(i) for i in range(width)]
    for line, row in zip(lines, body):
        if len(row) != width:
            raise InterpolantError(f"{path}: line {line} has {len(row)} cells, expected {width}")
    if not body:
        raise InterpolantError(f"{path} has a header but no rows")
    column = _label_column(names, label, path)
    columns = [[row[j].strip() for row in body] for j in range(width)]
    features = [j for j in range(width) if j != column]
    if not features:
        raise InterpolantError(f"{path} has no column left for the samples besides the labels")
    for j in features:
        for line, cell in zip(lines, columns[j]):
            if not _is_number(cell):
                raise InterpolantError(
                    f"{path}: column {names[j]!r} is not numeric (line {line}: {cell!r}); make it "
                    "the label column (label=NAME) or remove it"
                )
    x = np.array([[float(columns[j][i]) for j in features] for i in range(len(body))])
    labels = None if column is None else _label_values(columns[column], path)
    return check_data(x, labels, str(path))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _label_column(names: list[str], label: str | None, path: Path) -> int | None:
    if label is None:
        found = [j for j, name in enumerate(names) if name.lower() in _LABEL_HEADERS]
        return found[0] if found else None
    if label in names:
        return names.index(label)
    if label.isdigit() and int(label) < len(names):
        return int(label)
    raise InterpolantError(f"{path} has no column {label!r}; its columns are {names}")


def _label_values(cells: list[str], path: Path) -> np.ndarray:
    """Integer labels as they are; names numbered in sorted order."""
    if all(c.lstrip("-").isdigit() for c in cells):
        return np.array([int(c) for c in cells], dtype=np.int64)
    if any(not c for c in cells):
        raise InterpolantError(f"{path}: the label column has empty cells")
    classes = {name: k for k, name in enumerate(sorted(set(cells)))}
    return np.array([classes[c] for c in cells], dtype=np.int64)
