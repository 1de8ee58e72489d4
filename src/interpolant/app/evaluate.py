"""Sample a trained run with several solvers and step budgets, measure, draw, and report.

The quality measure depends on the data: for the digits it is the Digits-FD (Fréchet distance
in the features of the bundled digits classifier) against the held-out test split; for points
it is the sliced Wasserstein distance and MMD against a fresh draw of the data.

The noise floor beside it is what a perfect model scores: the same measure of real training
samples, drawn like the model's samples (the same number, and for a class-conditional network
the same class of each), against the same held-out data, averaged over ``FLOOR_DRAWS`` draws
(their range is kept too). Fréchet distances shrink as sets grow, so a floor made from sets of
another size would not be comparable with the samples' scores.

Under ``torchrun`` the ranks share the sampling (:func:`.draw.draw`); rank 0 alone measures and
writes the pictures and ``eval.json``, which equal those of one process.
"""

from __future__ import annotations

import math
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
from ..training import distributed
from .draw import BATCH, check_batch, check_budgets, check_count, draw, plan_steps
from .runs import RunConfig, is_image_data, load_data, write_json
from ..solvers import available

DEFAULT_SOLVERS = ("ddim", "heun", "dpm++2m", "unipc", "dpm++3m")
DEFAULT_NFES = (5, 10, 20)
FLOOR_DRAWS = 5


def check_solvers(solvers: Sequence[str]) -> list[str]:
    """Refuse an empty list of solvers or an unknown name."""
    solvers = list(solvers)
    if not solvers:
        raise InterpolantError("no solver given; pass --solvers with at least one name (see "
                               "`interpolant solvers`)")
    for name in solvers:
        if name not in available():
            raise unknown_name("solver", name, available())
    return solvers


def _drawn_like(train_labels: Tensor | None, labels: Tensor | None, n: int, count: int,
                g: torch.Generator) -> Tensor:
    """Indices of ``n`` training samples: one of class ``labels[i]`` for each sample ``i``
    when labels are given, else any; without replacement where the data allow it."""
    if labels is None or train_labels is None:
        return torch.randperm(count, generator=g)[:n] if n <= count else torch.randint(
            count, (n,), generator=g)
    picks = []
    for k in labels.unique():
        pool = (train_labels == k).nonzero().flatten()
        want = int((labels == k).sum())
        pick = torch.randperm(len(pool), generator=g)[:want] if want <= len(pool) else (
            torch.randint(len(pool), (want,), generator=g))
        picks.append(pool[pick])
    return torch.cat(picks)


def noise_floor(config: RunConfig, train: Tensor, train_labels: Tensor | None, test: Tensor,
                n: int, labels: Tensor | None = None, seed: int = 0) -> dict[str, Any]:
    """The measures of real training samples drawn like ``n`` model samples (the class of
    each from ``labels``) against ``test``: ``{"mean", "range", "method"}`` over
    ``FLOOR_DRAWS`` draws."""
    g = torch.Generator().manual_seed(seed)
    scores = [quality(config, train[_drawn_like(train_labels, labels, n, train.shape[0], g)],
                      test) for _ in range(FLOOR_DRAWS)]
    mean = {k: sum(s[k] for s in scores) / len(scores) for k in scores[0]}
    spread = {k: [min(s[k] for s in scores), max(s[k] for s in scores)] for k in scores[0]}
    mix = " with the samples' classes" if labels is not None else ""
    method = (f"{n} real training samples{mix} against the same {test.shape[0]} held-out ones "
              f"as the samples, mean of {FLOOR_DRAWS} draws")
    return {"mean": mean, "range": spread, "method": method}


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
             n: int = 500, seed: int = 0, progress: bool = True,
             batch: int | None = None, tuned: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sample with every solver at every NFE budget; write pictures and ``eval.json``.

    ``tuned`` holds the run's saved choices (``tuned.json`` of ``interpolant tune`` or of a
    distilled student, :func:`.tune.read_tuned`): where one names the solver for a budget,
    that budget is sampled on its explicit grid and options, as ``interpolant sample`` does,
    and the row says ``"tuned": true``.

    Every request is checked (solvers, budgets each solver can keep, ``n``, ``batch``) before
    anything is sampled or written, so a refused one leaves an earlier ``eval.json`` as it
    was. Under a process group every rank samples its share; rank 0 returns the result, the
    others an empty dict.
    """
    solvers, nfes, n = check_solvers(solvers), check_budgets(nfes), check_count(n)
    batch = check_batch(BATCH if batch is None else batch)
    main = distributed.is_main()
    for solver in solvers:
        for budget in nfes:
            plan_steps(solver, budget, den.path)
    out_dir = Path(out_dir)
    train_x, train_labels = load_data(config, "train")
    test_x, _ = load_data(config, "test")
    shape = tuple(train_x.shape[1:])
    num_classes = getattr(den.model, "config", {}).get("num_classes")
    labels = None if num_classes is None else torch.arange(n) % num_classes
    rows: list[dict[str, Any]] = []
    jobs = [(s, b) for s in solvers for b in nfes]
    for solver, budget in tqdm(jobs, desc="sampling", disable=not (progress and main),
                               unit="run"):
        choice = _tuned_choice(tuned, solver, budget)
        samples, spent, steps, seconds = draw(den, solver, budget, n, seed, shape, num_classes,
                                              batch=batch, **choice)
        if not main:
            continue
        row: dict[str, Any] = {"solver": solver, "budget": budget, "nfe": spent,
                               "steps": steps, "seconds": round(seconds, 3),
                               "max_abs": float(samples.abs().max())}
        if choice:
            row["tuned"] = True
        if not bool(torch.isfinite(samples).all()):
            row["note"] = "non-finite samples"
        else:
            row.update(quality(config, samples, test_x, train_x, labels))
        picture = out_dir / "samples" / f"{solver}_{spent}.png"
        save_picture(samples, config, picture, test_x)
        row["path"] = str(picture.relative_to(out_dir))  # relative to the run directory
        rows.append(row)
    if not main:
        return {}
    floor = noise_floor(config, train_x, train_labels, test_x, n, labels, seed)
    result = {"rows": rows, "noise_floor": floor["mean"], "noise_floor_range": floor["range"],
              "noise_floor_method": floor["method"], "n": n, "seed": seed,
              "measure": next(iter(floor["mean"]))}
    write_json(out_dir / "eval.json", result)
    return result


def _tuned_choice(tuned: dict[str, Any] | None, solver: str, budget: int) -> dict[str, Any]:
    """``{"grid": ..., **options}`` of the saved choice for ``budget`` if it names ``solver``,
    else ``{}`` (the solver's planned steps)."""
    if not tuned or str(budget) not in tuned:
        return {}
    from ..acceleration import SearchResult

    choice = SearchResult.from_dict(tuned[str(budget)])
    return {"grid": choice.grid, **choice.options} if choice.solver == solver else {}


def save_picture(samples: Tensor, config: RunConfig, file: Path,
                 reference: Tensor | None = None) -> Path:
    """A picture of samples (PNG, or JPEG for a ``.jpg`` name): a grid of the first 100
    images, or a scatter of the first two coordinates over the reference's."""
    if samples.ndim == 4:
        return images.save_grid(samples[:100], file, nrow=10, clip=True)
    ref = None if reference is None else reference[:, :2].float()
    return images.scatter_png(samples[:, :2].float(), file, reference=ref)


def write_run_report(run_dir: str | Path, config: RunConfig, result: dict[str, Any] | None,
                     title: str = "interpolant run", notes: Sequence[str] = (),
                     pages: Sequence[report.Section] = ()) -> Path:
    """The static HTML report of a run: sample grids, curves, tables, the ``pages``
    sections (the demo's guidance, restoration and edit pages) and the config."""
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
        method = result.get("noise_floor_method", "real training data against the same "
                            "held-out data")
        low_high = result.get("noise_floor_range", {}).get(measure)
        spread = f" (range {low_high[0]:.4g} to {low_high[1]:.4g})" if low_high else ""
        paragraphs = [f"Noise floor, what a perfect model would score ({measure} of {method}): "
                      f"{floor:.4g}{spread}."]
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
    sections += list(pages)
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
