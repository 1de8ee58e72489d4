"""Plots for benchmarks and training: error against NFE, loss curves, metric bars.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no window, no global
state), saved as PNG without version or time metadata, and released after saving, so the same
data gives the same file.

>>> error_vs_nfe([{"solver": "ddim", "nfe": 10, "value": 0.3}, ...], "out/err.png", "W2")
>>> training_curve("run/log.jsonl", "out/loss.png")
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from .errors import InterpolantError

# One colour and marker per line, in a fixed order so a solver keeps its look across plots.
COLOURS = ("#1a73e8", "#d93025", "#188038", "#f29900", "#9334e6", "#12b5cb", "#e8710a", "#5f6368")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def new_figure(width: float = 5.0, height: float = 3.5, dpi: int = 120) -> tuple[Figure, Axes]:
    """A figure with one axes on an Agg canvas, styled for the report."""
    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.grid(True, which="major", color="#e0e0e0", lw=0.8)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return figure, axes


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Save ``figure`` as a PNG (or JPEG, for a ``.jpg`` name) at ``path`` (atomically), free
    it, and return the path."""
    from .images import check_picture_name

    fmt = check_picture_name(path)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    meta = {"Software": None} if fmt == "png" else None
    try:
        figure.savefig(partial, format=fmt, metadata=meta, facecolor="white")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
        figure.clear()
    return target


def _require(row: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    missing = [key for key in keys if key not in row]
    if missing:
        raise InterpolantError(f"{where}: row {dict(row)!r} lacks {', '.join(missing)}")


def error_vs_nfe(
    table: Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    ylabel: str = "error",
    logy: bool = True,
    logx: bool = True,
    title: str | None = None,
) -> Path:
    """One line per solver of ``value`` against ``nfe``, with markers, saved as a PNG.

    ``table`` holds rows ``{"solver": str, "nfe": int, "value": float}`` (other keys are
    ignored); points of a solver are joined in order of NFE. Both axes are logarithmic by
    default, the usual way to read a convergence order off a slope.
    """
    series: dict[str, list[tuple[float, float]]] = {}
    for row in table:
        _require(row, ("solver", "nfe", "value"), "error_vs_nfe")
        series.setdefault(str(row["solver"]), []).append((float(row["nfe"]), float(row["value"])))
    if not series:
        raise InterpolantError("error_vs_nfe: the table is empty")
    if logy and any(value <= 0 for points in series.values() for _, value in points):
        raise InterpolantError("error_vs_nfe: logy=True needs positive values; pass logy=False")
    figure, axes = new_figure()
    for index, (solver, points) in enumerate(series.items()):
        points.sort()
        axes.plot(
            [nfe for nfe, _ in points],
            [value for _, value in points],
            marker=MARKERS[index % len(MARKERS)],
            color=COLOURS[index % len(COLOURS)],
            ms=5,
            lw=1.6,
            label=solver,
        )
    if logy:
        axes.set_yscale("log")
    if logx:
        axes.set_xscale("log")
    nfes = sorted({nfe for points in series.values() for nfe, _ in points})
    if len(nfes) <= 12:
        axes.set_xticks(nfes, [f"{nfe:g}" for nfe in nfes])
        axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xlabel("NFE (network evaluations)")
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    axes.legend(frameon=False, fontsize="small", ncols=1 if len(series) <= 8 else 2)
    return save_figure(figure, path)


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (blank lines skipped)."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise InterpolantError(f"{path}:{number}: not JSON ({error.msg})") from None
    return records


def training_curve(
    log: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    key: str = "loss",
    logy: bool = True,
    smooth: int = 0,
    title: str | None = None,
) -> Path:
    """Plot ``key`` (default ``loss``) against ``step`` from a JSONL file or list of records.

    Records without ``key`` (evaluation lines, say) are skipped. With ``smooth > 1`` a running
    mean over that many records is drawn over the raw curve.
    """
    records = read_jsonl(log) if isinstance(log, (str, os.PathLike)) else list(log)
    points = [(float(r["step"]), float(r[key])) for r in records if key in r and "step" in r]
    if not points:
        raise InterpolantError(f"training_curve: no records with 'step' and {key!r}")
    points.sort()
    steps = [step for step, _ in points]
    values = [value for _, value in points]
    figure, axes = new_figure()
    raw_alpha = 0.35 if smooth > 1 else 1.0
    axes.plot(steps, values, color=COLOURS[0], lw=1.0, alpha=raw_alpha, label=key)
    if smooth > 1:
        running, total = [], 0.0
        for index, value in enumerate(values):
            total += value - (values[index - smooth] if index >= smooth else 0.0)
            running.append(total / min(index + 1, smooth))
        axes.plot(steps, running, color=COLOURS[0], lw=2.0, label=f"{key} (mean of {smooth})")
        axes.legend(frameon=False, fontsize="small")
    if logy and min(values) > 0:
        axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel(key)
    if title:
        axes.set_title(title)
    return save_figure(figure, path)


def metric_bars(
    values: Mapping[str, float],
    path: str | os.PathLike[str],
    ylabel: str = "value",
    title: str | None = None,
) -> Path:
    """A bar chart of one metric per named entry (a solver, a model), values printed on top."""
    if not values:
        raise InterpolantError("metric_bars: no values")
    names = list(values)
    heights = [float(values[name]) for name in names]
    figure, axes = new_figure(max(4.0, 0.7 * len(names) + 1.5), 3.5)
    bars = axes.bar(names, heights, color=[COLOURS[i % len(COLOURS)] for i in range(len(names))])
    axes.bar_label(bars, labels=[f"{h:.3g}" for h in heights], fontsize="small", padding=2)
    axes.set_ylabel(ylabel)
    axes.grid(False, axis="x")
    if len(names) > 6:
        axes.tick_params(axis="x", labelrotation=45)
    if title:
        axes.set_title(title)
    return save_figure(figure, path)
