"""The user's data by path: which loader reads it, and options written into the path string.

On the command line a path may carry loader options after a colon, for example
``--data 'faces/:size=32'``, ``--data 'faces/:size=24x32,channels=1'`` or
``--data 'iris.csv:label=species'`` (the whole string is taken as a path first, so a file whose
name holds a colon still loads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from ..errors import InterpolantError
from .files import ARRAY_SUFFIXES, load_array_file, load_csv
from .folders import load_image_folder

__all__ = ["OPTIONS", "is_source", "load_source", "parse_source", "with_size"]

OPTIONS = ("size", "channels", "label")
KINDS = "a folder of PNG/JPEG images, .npy, .npz, .safetensors, .pt or .csv"


def parse_source(spec: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(path, options)`` of ``"PATH"`` or ``"PATH:key=value,key=value"``."""
    if isinstance(spec, Path) or _exists(Path(spec).expanduser()) or ":" not in spec:
        return Path(spec).expanduser(), {}
    head, _, tail = str(spec).rpartition(":")
    options: dict[str, Any] = {}
    for item in tail.split(","):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or key not in OPTIONS or not value:
            raise InterpolantError(
                f"cannot read the data option {item!r} in {spec!r}; write PATH:key=value with "
                f"keys {', '.join(OPTIONS)} (e.g. 'images/:size=32')"
            )
        options[key] = _option(key, value, spec)
    return Path(head).expanduser(), options


def with_size(spec: str, size: str) -> str:
    """``spec`` (a folder of images, perhaps with options) with ``size`` set: what
    ``interpolant train --data DIR --size S`` records, so ``sample`` and ``eval`` reload the
    same images. ``size`` is ``S`` or ``HxW``."""
    path, options = parse_source(spec)
    value = _option("size", str(size), f"--size {size}")
    if not path.is_dir():
        raise InterpolantError(f"--size resizes the images of a folder given by --data, and "
                               f"{str(spec)!r} is not a folder (the sizes of bundled data sets "
                               "and of array files are fixed)")
    options["size"] = value
    text = ",".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, tuple) else v}"
                    for k, v in options.items())
    return f"{path}:{text}"


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _option(key: str, value: str, spec: str) -> Any:
    if key == "label":
        return value
    try:
        parts = [int(v) for v in value.lower().split("x")]
    except ValueError:
        raise InterpolantError(f"data option {key} in {spec!r} must be a number, got {value!r}")
    if key == "size" and len(parts) == 2:
        return (parts[0], parts[1])
    if len(parts) != 1:
        raise InterpolantError(f"data option {key} in {spec!r} must be one number, got {value!r}")
    return parts[0]


def is_source(spec: str | Path) -> bool:
    """Whether ``spec`` names an existing file or folder (options after a colon allowed)."""
    try:
        path, _ = parse_source(spec)
    except InterpolantError:
        return True  # a path with malformed options: let the loader say what is wrong
    return _exists(path)


def load_source(spec: str | Path, **options: Any) -> tuple[Tensor, Tensor | None]:
    """``(x, labels)`` of the user's file or folder; ``options`` (``size``, ``channels`` for
    image folders, ``label`` for CSV columns and array names) add to those in ``spec``."""
    path, written = parse_source(spec)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InterpolantError(f"unknown data option(s) {unknown}; known: {list(OPTIONS)}")
    options = {**written, **{k: v for k, v in options.items() if v is not None}}
    if not _exists(path):
        raise InterpolantError(f"{path} does not exist; give {KINDS}")
    suffix = path.suffix.lower()
    image_only = sorted(set(options) & {"size", "channels"})
    if path.is_dir():
        if "label" in options:
            raise InterpolantError("label= applies to CSV and array files; a folder of images "
                                   "takes its labels from class subfolders")
        return load_image_folder(path, options.get("size"), options.get("channels"))
    if image_only:
        raise InterpolantError(f"option(s) {image_only} apply to folders of images, not {path}")
    if suffix == ".csv":
        return load_csv(path, options.get("label"))
    if suffix in ARRAY_SUFFIXES:
        return load_array_file(path, options.get("label"))
    raise InterpolantError(f"cannot load {path}: unknown kind {suffix or '(no suffix)'!r}; give "
                           f"{KINDS}")
