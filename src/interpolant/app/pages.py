"""Report pages on a class-conditional image run: a guidance sweep, restorations of degraded
held-out images and edits of real ones, each a picture grid and a small table.

The demo builds all three (:func:`demo_pages`); ``interpolant restore`` and ``interpolant
edit`` reuse :func:`restorations` and :func:`edits`. Label accuracy is how often the bundled
digits classifier reads the label a picture should show (``None`` off 8x8 grey images).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import images, inverse, inversion, metrics
from ..errors import InterpolantError, unknown_name
from ..oracle import GaussianMixture
from . import report
from .runs import RunConfig, load_data, write_json
from .sweeps import guidance_sweep

TASKS = ("inpaint", "sr", "blur", "cs")
DEMO_TASKS = TASKS[:3]  # the digits demo's restoration page
RESTORE_METHODS = ("ddnm", "pigdm", "dps", "repaint", "gdp")
EDIT_METHODS = ("ode", "sdedit")
# Restorations start at the noise end (DPS and PiGDM take the limit of their sigma^2 / alpha
# correction where alpha(1) = 0, see interpolant.inverse.guided).
T_START = 1.0


def psnr(x: Tensor, truth: Tensor) -> Tensor:
    """Peak signal-to-noise ratio per image in dB for data in ``[-1, 1]`` (peak-to-peak 2):
    ``10 log10(4 / MSE)``, the clipped ``x`` against ``truth``."""
    mse = (x.clamp(-1, 1) - truth).double().flatten(1).pow(2).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def label_accuracy(x: Tensor, labels: Tensor | None) -> float | None:
    """How often the digits classifier reads ``labels`` in ``x``; ``None`` for other data."""
    if labels is None or tuple(x.shape[1:]) != (1, 8, 8):
        return None
    predicted = metrics.digits_logits(x.clamp(-1, 1).float()).argmax(1)
    return float((predicted == labels).double().mean())


def num_classes(den: Any) -> int | None:
    """The classes of the run's network, ``None`` for an unconditional one."""
    return getattr(den.model, "config", {}).get("num_classes")


def check_label(den: Any, label: Any, option: str = "--label") -> int:
    """Refuse a label on an unconditional run, or one outside the classes it was trained on."""
    k = num_classes(den)
    if k is None:
        raise InterpolantError(f"{option} needs a class-conditional run; this run was trained "
                               "without labels (train on labelled data such as digits)")
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < k:
        raise InterpolantError(f"{option} {label!r} is not a class the model was trained "
                               f"with: give 0..{k - 1}")
    return label


def held_out(config: RunConfig, count: int) -> tuple[Tensor, Tensor | None]:
    """``count`` held-out images with their labels, classes in turn (0, 1, ..., K-1, 0, ...);
    the first ``count`` and ``None`` for unlabelled data."""
    x, labels = load_data(config, "test")
    by_class = [] if labels is None else [
        torch.nonzero(labels == k).flatten() for k in labels.unique()]
    most = len(x) if labels is None else len(by_class) * min(len(c) for c in by_class)
    if count > most:
        raise InterpolantError(f"there are {most} held-out images to use (classes in turn); "
                               f"ask for at most {most}, got {count}")
    if labels is None:
        return x[:count], None
    picks = [by_class[i % len(by_class)][i // len(by_class)] for i in range(count)]
    index = torch.stack(picks)
    return x[index], labels[index]


def operator(task: str, shape: Sequence[int]) -> inverse.Operator:
    """The degradation of ``task``: ``inpaint`` (the top half observed), ``sr`` (2x average
    pooling), ``blur`` (5-tap Gaussian, std 1, circular) or ``cs`` (compressed sensing: half
    as many random Gaussian projections as pixels, a fixed matrix)."""
    if task == "inpaint":
        mask = torch.zeros(tuple(shape), dtype=torch.bool)
        mask[..., : shape[-2] // 2, :] = True
        return inverse.Inpaint(mask)
    if task == "sr":
        return inverse.Downsample(2)
    if task == "blur":
        return inverse.Blur(5, 1.0)
    if task == "cs":
        return inverse.random_projection(max(math.prod(shape) // 2, 1), shape, seed=0)
    raise unknown_name("restoration task", task, TASKS)


def _shown(op: inverse.Operator, y: Tensor, shape: Sequence[int]) -> Tensor:
    """A measurement as a picture: itself when image-shaped, else its pseudo-inverse."""
    return y if tuple(y.shape) == tuple(shape) else op.pinv(y[None])[0]


def gaussian_prior(config: RunConfig) -> GaussianMixture:
    """One Gaussian fitted to the run's flattened training data (mean, covariance + 1e-4 I)."""
    x = load_data(config, "train")[0].double().flatten(1)
    cov = torch.cov(x.T) + 1e-4 * torch.eye(x.shape[1], dtype=torch.float64)
    return GaussianMixture(x.mean(0)[None], cov[None])


def restorations(den: Any, config: RunConfig, task: str, method: str, count: int,
                 steps: int = 20, sigma_y: float = 0.05, seed: int = 0,
                 estimate_sigma: bool = False) -> dict[str, Any]:
    """Restore ``count`` held-out images degraded by ``task`` with ``method`` (one
    :func:`interpolant.inverse.restore` draw each). Returns the measurements (as pictures),
    restorations, truths and the row ``{task, method, psnr, label_accuracy, nfe, seconds}``
    (NFE and seconds per sample). ``estimate_sigma``: each restoration uses the noise level
    :func:`interpolant.inverse.estimate_sigma_y` finds in its measurement under
    :func:`gaussian_prior` instead of the true ``sigma_y``; the row gains their mean,
    ``sigma_y_estimated``."""
    if method not in RESTORE_METHODS:
        raise unknown_name("restoration method", method, RESTORE_METHODS)
    truth, labels = held_out(config, count)
    shape = tuple(truth.shape[1:])
    op = operator(task, shape)
    g = torch.Generator().manual_seed(seed)
    shown, restored, used = [], [], []
    prior = gaussian_prior(config) if estimate_sigma else None
    before, start = den.nfe, time.perf_counter()
    for x in truth:
        y = op(x[None].double())[0]
        y = y + sigma_y * torch.randn(y.shape, generator=g, dtype=y.dtype)
        shown.append(_shown(op, y, shape).float())
        used.append(sigma_y if prior is None else
                    inverse.estimate_sigma_y(prior, op, y, shape=shape))
        out = inverse.restore(den, op, y.float(), used[-1], method=method, n=1, steps=steps,
                              generator=g, shape=shape, t_start=T_START)
        restored.append(out[0].detach().float())
    seconds = (time.perf_counter() - start) / count
    x = torch.stack(restored)
    row = {"task": task, "method": method, "psnr": float(psnr(x, truth).mean()),
           "label_accuracy": label_accuracy(x, labels), "nfe": (den.nfe - before) // count,
           "seconds": round(seconds, 3)}
    if estimate_sigma:
        row["sigma_y_estimated"] = round(sum(used) / len(used), 4)
    return {"measurement": torch.stack(shown), "restored": x, "truth": truth, "row": row}


def edits(den: Any, config: RunConfig, method: str, x0: Tensor, labels: Tensor,
          to_labels: Tensor, steps: int = 20, seed: int = 0) -> dict[str, Any]:
    """Invert real images ``x0`` (class ``labels``) with ``method`` of
    :func:`interpolant.inversion.edit` and regenerate them with their own label
    (reconstruction) and with ``to_labels`` (the edit). Returns both and the row
    ``{method, reconstruction_psnr, edit_accuracy, nfe}`` (network passes of one edit:
    inversion and regeneration)."""
    if method not in inversion.METHODS:
        raise unknown_name("edit method", method, inversion.METHODS)
    before = den.nfe
    with torch.no_grad():
        same = inversion.edit(den, x0, labels, method=method, from_label=labels, steps=steps,
                              generator=torch.Generator().manual_seed(seed))
        edited = inversion.edit(den, x0, to_labels, method=method, from_label=labels,
                                steps=steps, generator=torch.Generator().manual_seed(seed))
    row = {"method": method, "reconstruction_psnr": float(psnr(same, x0).mean()),
           "edit_accuracy": label_accuracy(edited, to_labels),
           "nfe": (den.nfe - before) // 2}
    return {"reconstruction": same, "edit": edited, "row": row}


def _save(x: Tensor, file: Path, nrow: int) -> Path:
    return images.save_grid(x, file, nrow=nrow, clip=True)


def guidance_page(den: Any, config: RunConfig, out: Path, scales: Sequence[float],
                  per_label: int, steps: int, seed: int = 0) -> tuple[report.Section, list]:
    """CFG at every scale from one noise, labels ``0..K-1`` in columns: a grid per scale and
    label accuracy, Digits-FD and NFE per scale."""
    k = num_classes(den)
    labels = torch.arange(k * per_label) % k
    test_x, _ = load_data(config, "test")
    start = time.perf_counter()
    with torch.no_grad():
        points = guidance_sweep(den, labels, scales, steps=steps, shape=test_x.shape[1:],
                                generator=torch.Generator().manual_seed(seed))
    seconds = (time.perf_counter() - start) / len(points)
    rows, cells = [], {}
    for p in points:
        name = f"w = {p.scale:g}"
        cells[(name, "labels 0..9")] = _save(p.samples, out / f"guidance_{p.scale:g}.png", k)
        fd = metrics.digits_fd(p.samples.clamp(-1, 1), test_x)
        rows.append({"scale": p.scale, "label_accuracy": label_accuracy(p.samples, labels),
                     "digits_fd": fd, "nfe": p.nfe, "seconds": round(seconds, 3)})
    grid = report.ImageGrid([f"w = {s:g}" for s in scales], ["labels 0..9"], cells,
                            "CFG scale", "", caption="one noise per cell position")
    text = (f"Classifier-free guidance, DPM-Solver++(2M) with {steps} steps; every scale "
            f"starts from the same noise, {per_label} samples per label (columns 0..{k - 1}). "
            "w = 0 is the unconditional model, w = 1 the conditional one; NFE counts network "
            "passes (both branches).")
    return report.Section("Guidance sweep", [text], [grid], tables=[report.Table(
        rows, caption="label accuracy (higher is better), Digits-FD against held-out digits "
        "(lower is better)")]), rows


def restoration_page(den: Any, config: RunConfig, out: Path, tasks: Sequence[str],
                     methods: Sequence[str], count: int, steps: int, sigma_y: float = 0.05,
                     seed: int = 0) -> tuple[report.Section, list]:
    """Held-out images degraded by each task, restored by each method: a grid (measurement,
    restorations, truth) per task and PSNR, label accuracy, NFE, seconds per sample."""
    rows, cells = [], {}
    for task in tasks:
        for method in methods:
            done = restorations(den, config, task, method, count, steps, sigma_y, seed)
            rows.append(done["row"])
            cells[(method, task)] = _save(done["restored"], out / f"{task}_{method}.png", count)
        cells[("measurement", task)] = _save(done["measurement"], out / f"{task}_y.png", count)
        cells[("truth", task)] = _save(done["truth"], out / f"{task}_truth.png", count)
    grid = report.ImageGrid(["measurement", *methods, "truth"], list(tasks), cells, "row",
                            "task", caption="measurement, restorations, truth")
    text = (f"{count} held-out digits per task: the top half observed (inpaint), 2x average "
            f"pooling (sr), a Gaussian blur of std 1 pixel (blur), each with noise of std "
            f"{sigma_y}; one posterior sample each, {steps} ancestral steps from t = {T_START}.")
    return report.Section("Restorations", [text], [grid], tables=[report.Table(
        rows, caption="PSNR in dB and label accuracy (higher is better); NFE and seconds per "
        "sample")]), rows


def edit_page(den: Any, config: RunConfig, out: Path, methods: Sequence[str], count: int,
              steps: int, shift: int = 5, seed: int = 0) -> tuple[report.Section, list]:
    """Real held-out digits inverted with their label and regenerated with label
    ``(label + shift) mod K``: a grid (original, reconstruction, edit) and a table."""
    x0, labels = held_out(config, count)
    to_labels = (labels + shift) % num_classes(den)
    rows, cells = [], {("original", "all"): _save(x0, out / "edit_original.png", count)}
    row_names = ["original"]
    for method in methods:
        done = edits(den, config, method, x0, labels, to_labels, steps, seed)
        rows.append(done["row"])
        cells[(f"{method}: reconstruction", "all")] = _save(
            done["reconstruction"], out / f"edit_{method}_same.png", count)
        cells[(f"{method}: edit", "all")] = _save(done["edit"], out / f"edit_{method}.png",
                                                  count)
        row_names += [f"{method}: reconstruction", f"{method}: edit"]
    grid = report.ImageGrid(row_names, ["all"], cells, "row", "", caption="original, "
                            "reconstruction, edit")
    text = (f"{count} real held-out digits inverted with their own label ({steps} steps) and "
            f"regenerated with it (reconstruction) and with label + {shift} mod 10 (edit). "
            "ode: DDIM inversion and DDIM sampling; sdedit: noised to t = 0.5 and denoised "
            "with the new label (no inversion, so no exact reconstruction).")
    return report.Section("Edits of real digits", [text], [grid], tables=[report.Table(
        rows, caption="reconstruction PSNR in dB; edit accuracy: the classifier reads the "
        "new label; NFE of one edit (inversion and regeneration)")]), rows


def demo_pages(den: Any, config: RunConfig, run_dir: str | Path,
               quick: bool = False) -> list[report.Section]:
    """The demo's guidance (CFG sweep, other methods, panoramas and anagrams), restoration and
    edit pages; pictures and ``pages.json`` go to ``run_dir/pages``. ``quick`` shrinks every
    size to a smoke run."""
    out = Path(run_dir).resolve() / "pages"
    if num_classes(den) is None:
        return []
    sizes = (dict(per_label=1, count=3, g_steps=3, r_steps=3, e_steps=3) if quick else
             dict(per_label=10, count=10, g_steps=16, r_steps=20, e_steps=20))
    guidance, g_rows = guidance_page(den, config, out, (0.0, 1.0, 2.0, 4.0),
                                     sizes["per_label"], sizes["g_steps"])
    from .guidance_pages import composition_page, guidance_methods_page  # (imports this one)

    methods, m_rows = guidance_methods_page(den, config, Path(run_dir), out, (1.0, 2.0, 4.0),
                                            sizes["per_label"], sizes["g_steps"],
                                            cfg_rows=g_rows)
    compose, c_rows = composition_page(den, config, out, 2.0, sizes["g_steps"],
                                       sizes["count"] // 2 + 1)
    restore, r_rows = restoration_page(den, config, out, DEMO_TASKS, RESTORE_METHODS[:3],
                                       sizes["count"], sizes["r_steps"])
    edit, e_rows = edit_page(den, config, out, EDIT_METHODS, sizes["count"], sizes["e_steps"])
    sections = [guidance, methods, compose, restore, edit]
    write_json(out / "pages.json", {"guidance": g_rows, "methods": m_rows, "composition": c_rows,
                                    "restore": r_rows, "edit": e_rows,
                                    "sections": [_to_json(s, out) for s in sections]})
    return sections


def _to_json(section: report.Section, out: Path) -> dict[str, Any]:
    grid = section.grids[0]
    return {"heading": section.heading, "paragraphs": list(section.paragraphs),
            "grid": {"rows": list(grid.rows), "columns": list(grid.columns),
                     "row_title": grid.row_title, "column_title": grid.column_title,
                     "caption": grid.caption,
                     "cells": [[r, c, Path(p).relative_to(out).as_posix()]
                               for (r, c), p in grid.cells.items()]},
            "tables": [{"rows": list(t.rows), "caption": t.caption} for t in section.tables]}


def saved_pages(run_dir: str | Path) -> list[report.Section]:
    """The demo's pages as :func:`demo_pages` saved them in ``run_dir/pages/pages.json``, so
    ``interpolant report`` keeps them; none when the run has no such file (or an unreadable
    one, or pictures that went missing)."""
    out = Path(run_dir).resolve() / "pages"
    try:
        saved = json.loads((out / "pages.json").read_text())["sections"]
        sections = []
        for item in saved:
            grid = item["grid"]
            cells = {(r, c): out / name for r, c, name in grid["cells"]}
            if not all(p.is_file() for p in cells.values()):
                return []
            sections.append(report.Section(
                item["heading"], item["paragraphs"], [report.ImageGrid(
                    grid["rows"], grid["columns"], cells, grid["row_title"],
                    grid["column_title"], grid["caption"])],
                tables=[report.Table(t["rows"], t["caption"]) for t in item["tables"]]))
        return sections
    except (OSError, ValueError, KeyError, TypeError):
        return []


__all__ = ["EDIT_METHODS", "RESTORE_METHODS", "TASKS", "check_label", "demo_pages", "edits",
           "held_out", "label_accuracy", "operator", "psnr", "restorations", "saved_pages"]
