"""Sample a trained run with several solvers and step budgets, measure, draw, and report.

The quality measure depends on the data: for the digits it is the Digits-FD (Fréchet distance
in the features of the bundled digits classifier) against the held-out test split, with the
noise floor (real training digits against the same test split) beside it; for points it is
the sliced Wasserstein distance and MMD against a fresh draw of the data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from .. import images, metrics, plots
from . import report
from ..errors import InterpolantError, unknown_name
from ..predictions import Denoiser
from .runs import RunConfig, is_image_data, load_data, write_json
from ..solvers import available, trajectory

# Network evaluations per step of the solvers that spend more than one.
NFE_PER_STEP = {"heun": 2, "edm": 2, "dpm2": 2, "dpm++2s": 2, "dpm3": 3}
DEFAULT_SOLVERS = ("ddim", "heun", "dpm++2m", "unipc", "dpm++3m")
DEFAULT_NFES = (5, 10, 20)


def steps_for(solver: str, nfe: int) -> int:
    """Solver steps that spend at most ``nfe`` network evaluations (at least one step)."""
    return max(1, nfe // NFE_PER_STEP.get(solver, 1))


def check_solvers(solvers: Sequence[str]) -> None:
    for name in solvers:
        if name not in available():
            raise unknown_name("solver", name, available())


def draw(den: Denoiser, config: RunConfig, solver: str, nfe: int, n: int, seed: int,
         shape: tuple[int, ...], num_classes: int | None) -> tuple[Tensor, int, float]:
    """``n`` samples with ``solver`` at an NFE budget; returns (samples, NFE spent, seconds).

    Class-conditional networks get the labels ``0, 1, ..., K-1`` in turn.
    """
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn((n, *shape), generator=g) * den.path.sigma(1.0)
    labels = None if num_classes is None else torch.arange(n) % num_classes
    start = time.perf_counter()
    state = None
    with torch.no_grad():
        for state in trajectory(den, x1, solver, steps_for(solver, nfe), cond=labels,
                                generator=g):
            pass
    assert state is not None
    return state.x, state.nfe, time.perf_counter() - start


def quality(config: RunConfig, samples: Tensor, reference: Tensor, train: Tensor | None = None,
            labels: Tensor | None = None) -> dict[str, float]:
    """The data's quality measures of ``samples`` against held-out ``reference`` data.

    Digits: ``digits_fd``; ``class_entropy`` (normalised entropy of the classifier's class
    histogram, 1 = every class equally often); ``label_accuracy`` (how often the classifier
    reads the label a sample was conditioned on); ``nn_ratio`` (mean distance to the nearest
    training image over the same for held-out digits: near 1 is healthy, near 0 is copying).
    """
    if is_image_data(config) and samples.shape[1:] == (1, 8, 8):
        clipped = samples.clamp(-1, 1)
        feats_s = metrics.digits_features(clipped)
        feats_r = metrics.digits_features(reference)
        out = {"digits_fd": metrics.frechet_distance(feats_s, feats_r)}
        predicted = metrics.digits_logits(clipped).argmax(1)
        counts = torch.bincount(predicted, minlength=10)
        out["class_entropy"] = metrics.class_balance(counts)["normalized_entropy"]
        if labels is not None:
            out["label_accuracy"] = float((predicted == labels).double().mean())
        if train is not None:
            out["nn_ratio"] = metrics.nearest_neighbour_distance(clipped, train, reference)["ratio"]
        return out
    flat_s, flat_r = samples.flatten(1).double(), reference.flatten(1).double()
    return {
        "sliced_w2": metrics.sliced_wasserstein(flat_s, flat_r, seed=0),
        "mmd2": metrics.mmd(flat_s, flat_r),
    }


def evaluate(den: Denoiser, config: RunConfig, out_dir: str | Path,
             solvers: Sequence[str] = DEFAULT_SOLVERS, nfes: Sequence[int] = DEFAULT_NFES,
             n: int = 500, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Sample with every solver at every NFE budget; write pictures and ``eval.json``."""
    check_solvers(solvers)
    if any(not isinstance(b, int) or b < 1 for b in nfes):
        raise InterpolantError(f"NFE budgets must be positive integers, got {list(nfes)}")
    out_dir = Path(out_dir)
    train_x, train_labels = load_data(config, "train")
    test_x, _ = load_data(config, "test")
    shape = tuple(train_x.shape[1:])
    num_classes = getattr(den.model, "config", {}).get("num_classes")
    rows: list[dict[str, Any]] = []
    jobs = [(s, b) for s in solvers for b in nfes]
    for solver, budget in tqdm(jobs, desc="sampling", disable=not progress, unit="run"):
        samples, spent, seconds = draw(den, config, solver, budget, n, seed, shape, num_classes)
        row: dict[str, Any] = {"solver": solver, "budget": budget, "nfe": spent,
                               "steps": steps_for(solver, budget), "seconds": round(seconds, 3),
                               "max_abs": float(samples.abs().max())}
        if not bool(torch.isfinite(samples).all()):
            row["note"] = "non-finite samples"
        else:
            labels = None if num_classes is None else torch.arange(n) % num_classes
            row.update(quality(config, samples, test_x, train_x, labels))
        picture = out_dir / "samples" / f"{solver}_{spent}.png"
        save_picture(samples, config, picture, test_x)
        row["path"] = str(picture.relative_to(out_dir))  # relative to the run directory
        rows.append(row)
    real = train_x[: min(n, train_x.shape[0])]
    floor = quality(config, real, test_x)
    result = {"rows": rows, "noise_floor": floor, "n": n, "seed": seed,
              "measure": next(iter(floor))}
    write_json(out_dir / "eval.json", result)
    return result


def save_picture(samples: Tensor, config: RunConfig, file: Path, reference: Tensor) -> Path:
    """A PNG of samples: a grid of the first 100 images, or a scatter over the reference."""
    if samples.ndim == 4:
        return images.save_grid(samples[:100], file, nrow=10, clip=True)
    if samples.shape[1] == 2:
        return images.scatter_png(samples.float(), file, reference=reference.float())
    return images.scatter_png(samples[:, :2].float(), file, reference=reference[:, :2].float())


def write_run_report(run_dir: str | Path, config: RunConfig, result: dict[str, Any] | None,
                     title: str = "interpolant run", notes: Sequence[str] = ()) -> Path:
    """The static HTML report of a run: sample grids, curves, tables and the config."""
    run_dir = Path(run_dir).resolve()  # pictures by absolute path: the report links them
    out = run_dir / "report"
    sections = []
    if result is not None:
        measure = result["measure"]
        rows = [r for r in result["rows"] if measure in r]
        floor = result["noise_floor"][measure]
        sections.append(report.Section(
            heading="Samples by solver and NFE",
            paragraphs=[f"Columns are NFE budgets; {result['n']} samples per cell from the same "
                        "starting noise (the grids show the first 100)."],
            grids=[report.ImageGrid.from_records(
                [{**r, "path": (run_dir / r["path"]).resolve()} for r in result["rows"]],
                column="budget", caption="samples")],
        ))
        curve = plots.error_vs_nfe(
            [{"solver": r["solver"], "nfe": r["nfe"], "value": r[measure]} for r in rows],
            out / "quality_vs_nfe.png", ylabel=measure, title=f"{measure} (floor {floor:.3g})")
        extra = ("label_accuracy", "class_entropy", "nn_ratio")
        table = [{k: r.get(k) for k in ("solver", "nfe", "steps", measure, *extra, "seconds")
                  if k in r} for r in result["rows"]]
        best = min(rows, key=lambda r: r[measure]) if rows else None
        paragraphs = [f"Noise floor ({measure} of real training data against the same "
                      f"held-out data): {floor:.4g}."]
        if best is not None:
            paragraphs.append(f"Best: {best['solver']} at {best['nfe']} NFE, "
                              f"{measure} = {best[measure]:.4g}.")
        sections.append(report.Section(
            heading="Quality against NFE", paragraphs=paragraphs,
            images=[report.Picture(curve, caption=f"{measure} against NFE per solver")],
            tables=[report.Table(table, caption=f"{measure} per solver and NFE (lower is "
                                 "better)")]))
    log = run_dir / "metrics.jsonl"
    if log.is_file() and log.stat().st_size > 0:
        curve = plots.training_curve(log, out / "training_loss.png", title="training loss")
        sections.append(report.Section(heading="Training", images=[
            report.Picture(curve, caption="loss per logged step")]))
    sections.append(report.Section(heading="Configuration", paragraphs=list(notes),
                                   config=config.to_json()))
    return report.write_report(out, title, sections)


def summary_table(result: dict[str, Any]) -> str:
    """The evaluation as a plain-text table (solver rows, NFE columns)."""
    measure = result["measure"]
    nfes = sorted({r["budget"] for r in result["rows"]})
    solvers = list(dict.fromkeys(r["solver"] for r in result["rows"]))
    cell = {(r["solver"], r["budget"]): r.get(measure, math.nan) for r in result["rows"]}
    lines = [f"{measure} (lower is better; noise floor {result['noise_floor'][measure]:.4g})",
             f"{'solver':<14}" + "".join(f"{'NFE ' + str(b):>12}" for b in nfes)]
    for s in solvers:
        lines.append(f"{s:<14}" + "".join(
            f"{cell[(s, b)]:>12.4g}" if (s, b) in cell else f"{'-':>12}" for b in nfes))
    return "\n".join(lines)
