"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

Layout of a checkpoint directory ``ckpt_dir``::

    ckpt_dir/LATEST                    name of the newest complete checkpoint, e.g. step_00000100
    ckpt_dir/step_00000100/model.safetensors, ema.safetensors, optimizer.safetensors,
                           rng.safetensors, manifest.json (objective.safetensors: a trained
                           loss module, when the run has one)

``manifest.json`` holds the step, the run's configuration, the optimizer's non-tensor state
(its ``param_groups`` and scalar entries; its tensors are flattened into
``optimizer.safetensors`` as ``state.<param index>.<name>``) and the size and SHA-256 of every
file. Loading verifies both and refuses a truncated or corrupted checkpoint.

Atomicity (a kill at any moment leaves the previous checkpoint usable): files are written into a
fresh temporary directory next to the final one, each flushed and fsync-ed, the directory
fsync-ed and renamed into place with ``os.replace``; only then is ``LATEST`` rewritten, again
through a temporary file, fsync and ``os.replace``. Older checkpoints beyond ``keep`` are
removed after that. A crash leaves at worst a ``.tmp-*`` directory, which is ignored.

Resuming takes :func:`newest_valid`: the newest ``step_*`` directory that verifies, whatever
``LATEST`` says (it may be missing or name a damaged checkpoint), with the reasons the newer
ones were skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from ..errors import InterpolantError

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "latest_checkpoint",
           "newest_valid", "step_dirs"]

FORMAT = "interpolant-checkpoint"
_STEP_DIR = re.compile(r"step_(\d+)")


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``tensors[file]`` maps each safetensors file to its dict."""

    path: Path
    step: int
    config: dict[str, Any]
    tensors: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    optimizer_meta: dict[str, Any] | None = None

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's ``state_dict`` rebuilt from the flat tensors and the JSON part."""
        if self.optimizer_meta is None:
            raise InterpolantError(f"checkpoint {self.path} holds no optimizer state")
        return _unflatten_optimizer(self.tensors["optimizer"], self.optimizer_meta)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex}")
    _write_file(tmp, data)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = []
    for group in state["param_groups"]:
        groups.append({k: ({"tuple": list(v)} if isinstance(v, tuple) else v)
                       for k, v in group.items()})
    return tensors, {"scalars": scalars, "param_groups": groups}


def _unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    groups = [{k: (tuple(v["tuple"]) if isinstance(v, dict) and "tuple" in v else v)
               for k, v in group.items()} for group in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _plain(state: dict[str, Tensor]) -> dict[str, Tensor]:
    # clone: safetensors refuses shared storage (tied weights), and wants contiguous CPU tensors
    return {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}


def save_checkpoint(ckpt_dir: str | os.PathLike[str], step: int, model: nn.Module, *,
                    ema: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
                    rng: dict[str, Tensor] | None = None, config: dict[str, Any] | None = None,
                    keep: int = 2, objective: nn.Module | None = None,
                    extra: dict[str, dict[str, Tensor]] | None = None) -> Path:
    """Write checkpoint ``step_<step>`` atomically under ``ckpt_dir``; returns its path.

    ``objective``: a trained loss module (learned loss weighting), saved as ``objective``;
    ``extra``: further named tensor dicts (e.g. ``power_ema``), one file each."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    payloads: dict[str, bytes] = {"model": st_save(_plain(model.state_dict()))}
    if ema is not None:
        payloads["ema"] = st_save(_plain(ema.state_dict()))
    if objective is not None:
        payloads["objective"] = st_save(_plain(objective.state_dict()))
    for key, tensors in (extra or {}).items():
        payloads[key] = st_save(_plain(tensors))
    meta = None
    if optimizer is not None:
        tensors, meta = _flatten_optimizer(optimizer.state_dict())
        payloads["optimizer"] = st_save(tensors)
    if rng is not None:
        payloads["rng"] = st_save(_plain(rng))
    name = f"step_{int(step):08d}"
    tmp = ckpt_dir / f".tmp-{name}-{uuid.uuid4().hex}"
    tmp.mkdir()
    files = {}
    for key, data in payloads.items():
        _write_file(tmp / f"{key}.safetensors", data)
        digest = hashlib.sha256(data).hexdigest()
        files[f"{key}.safetensors"] = {"size": len(data), "sha256": digest}
    manifest = {"format": FORMAT, "version": 1, "step": int(step), "config": config or {},
                "optimizer": meta, "files": files}
    _write_file(tmp / "manifest.json", json.dumps(manifest, indent=1, default=str).encode())
    _fsync_dir(tmp)
    final = ckpt_dir / name
    if final.exists():  # re-saving a step: move the old copy aside first
        old = ckpt_dir / f".tmp-old-{name}-{uuid.uuid4().hex}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(ckpt_dir)
    _write_atomic(ckpt_dir / "LATEST", name.encode())
    _prune(ckpt_dir, keep, name)
    return final


def _prune(ckpt_dir: Path, keep: int, current: str) -> None:
    steps = step_dirs(ckpt_dir)
    for p in steps[: max(len(steps) - max(keep, 1), 0)]:
        if p.name != current:
            shutil.rmtree(p, ignore_errors=True)


def step_dirs(ckpt_dir: str | os.PathLike[str]) -> list[Path]:
    """The ``step_*`` checkpoint directories under ``ckpt_dir``, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if p.is_dir() and _STEP_DIR.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.removeprefix("step_")))


def newest_valid(ckpt_dir: str | os.PathLike[str]) -> tuple[Checkpoint | None, list[str]]:
    """The newest checkpoint under ``ckpt_dir`` that verifies, and why newer ones were skipped.

    ``(None, [])`` when there is no checkpoint at all; :class:`InterpolantError` listing every
    problem when there are checkpoints but none of them verifies.
    """
    skipped: list[str] = []
    for path in reversed(step_dirs(ckpt_dir)):
        try:
            return load_checkpoint(path), skipped
        except InterpolantError as exc:
            skipped.append(str(exc))
    if skipped:
        raise InterpolantError(
            f"no checkpoint in {ckpt_dir} verifies ({'; '.join(skipped)}); restore one, or "
            "train afresh in another run directory")
    return None, skipped


def latest_checkpoint(ckpt_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint ``LATEST`` names, or ``None`` if no checkpoint was completed."""
    latest = Path(ckpt_dir) / "LATEST"
    if not latest.is_file():
        return None
    name = latest.read_text().strip()
    if not _STEP_DIR.fullmatch(name):
        raise InterpolantError(f"{latest} is corrupted (holds {name[:40]!r})")
    return Path(ckpt_dir) / name


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load and verify a checkpoint: a ``step_*`` directory or a ``ckpt_dir`` (its ``LATEST``)."""
    path = Path(path)
    if not (path / "manifest.json").exists():
        found = latest_checkpoint(path)
        if found is None:
            raise InterpolantError(f"no checkpoint in {path}")
        path = found
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InterpolantError(f"checkpoint {path} is unreadable: manifest.json: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InterpolantError(f"{path} is not an interpolant checkpoint")
    _check_manifest(path, manifest)
    tensors = {}
    for fname, info in manifest["files"].items():
        fpath = path / fname
        data = fpath.read_bytes() if fpath.is_file() else None
        if data is None or len(data) != info["size"]:
            got = "missing" if data is None else f"{len(data)} bytes"
            raise InterpolantError(f"checkpoint {path} is truncated: {fname} is {got}, "
                                   f"the manifest says {info['size']} bytes")
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise InterpolantError(f"checkpoint {path} is corrupted: the SHA-256 of {fname} "
                                   "does not match its manifest")
        tensors[fname.removesuffix(".safetensors")] = st_load(data)
    return Checkpoint(path, int(manifest["step"]), manifest.get("config", {}), tensors,
                      manifest.get("optimizer"))


def _check_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Refuse a manifest that lacks its step or its list of files (sizes and SHA-256)."""
    files = manifest.get("files")
    good = isinstance(manifest.get("step"), int) and isinstance(files, dict) and all(
        isinstance(info, dict) and isinstance(info.get("size"), int)
        and isinstance(info.get("sha256"), str) for info in files.values())
    if not good:
        raise InterpolantError(f"checkpoint {path} is corrupted: its manifest.json lacks the "
                               "step or the size and SHA-256 of its files")
