"""The training benchmark's numbers and report page: Digits-FD against training CPU minutes for
every contestant, the time each needs to reach multiples of the noise floor, and the issue's
goal (Digits-FD within 1.25x of the floor in three CPU minutes).

A measurement is ``{"name", "parameters", "curve": [(cpu_seconds, steps, fd), ...]}`` with the
curve in training order, the first point at step 0. Times to a threshold are interpolated
linearly in CPU time between the last evaluation above it and the first at or below it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InterpolantError

__all__ = ["FLOOR_MULTIPLES", "GOAL", "crossing", "plot_curves", "summarise", "write_page"]

FLOOR_MULTIPLES = (1.25, 2.0, 3.0, 5.0)
GOAL = (1.25, 3.0)  # Digits-FD within 1.25x of its noise floor in three CPU minutes


def crossing(points: Sequence[tuple[float, float]], threshold: float) -> float | None:
    """The first time ``points`` (``(time, value)``, time-ordered) reach ``threshold``,
    interpolated linearly from the previous point; ``None`` if never."""
    for i, (c, v) in enumerate(points):
        if v <= threshold:
            if i == 0:
                return c
            c0, v0 = points[i - 1]
            return c0 + (c - c0) * (v0 - threshold) / (v0 - v)
    return None


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value / 60:.2f}"


def summarise(measured: Sequence[Mapping[str, Any]], floor: float,
              reference: str = "default") -> list[dict[str, Any]]:
    """One table row per contestant: steps, speed, final and best Digits-FD, CPU minutes to
    each multiple of ``floor``, and the speed-up over ``reference`` at 2x the floor (the
    reference's time over this contestant's; > 1 is faster)."""
    if not floor > 0 or not math.isfinite(floor):
        raise InterpolantError(f"the noise floor must be positive, got {floor}")
    times: dict[str, dict[float, float | None]] = {}
    for m in measured:
        curve = m.get("curve") or []
        if len(curve) < 2:
            raise InterpolantError(f"{m.get('name')!r}: a curve needs the step-0 evaluation "
                                   "and at least one after training")
        points = [(c, fd) for c, _, fd in curve]
        times[m["name"]] = {k: crossing(points, k * floor) for k in FLOOR_MULTIPLES}
    ref = times.get(reference, {}).get(2.0)
    rows = []
    for m in measured:
        cpu, steps, fd = m["curve"][-1]
        goal_t = times[m["name"]].get(GOAL[0])
        mine = times[m["name"]][2.0]
        row = {"recipe": m["name"], "parameters": m["parameters"], "steps": steps,
               "steps / CPU s": round(steps / cpu, 2) if cpu > 0 else "-",
               "CPU min": round(cpu / 60, 2), "Digits-FD at end": round(fd, 3),
               "best Digits-FD": round(min(f for _, _, f in m["curve"]), 3)}
        for k in FLOOR_MULTIPLES:
            row[f"CPU min to {k:g}x floor"] = _minutes(times[m["name"]][k])
        row["speed-up at 2x floor"] = (f"{ref / mine:.2f}" if ref and mine else "-")
        row["goal"] = "yes" if goal_t is not None and goal_t <= GOAL[1] * 60 else "no"
        if "fd_2nfe" in m:  # the few-step issue's 2-NFE quality: within 1.5x of many steps
            row["Digits-FD at 2 NFE"] = round(m["fd_2nfe"], 3)
            row["2 NFE / end"] = round(m["fd_2nfe"] / fd, 2)
        rows.append(row)
    return rows


def plot_curves(measured: Sequence[Mapping[str, Any]], floor: float, file: Path) -> Path:
    """Digits-FD (log scale) against training CPU minutes, the floor and 1.25x floor dashed."""
    from ..plots import COLOURS, MARKERS, new_figure, save_figure

    figure, axes = new_figure(6.0, 4.0)
    for i, m in enumerate(measured):
        axes.plot([c / 60 for c, _, _ in m["curve"]], [fd for _, _, fd in m["curve"]],
                  color=COLOURS[i % len(COLOURS)], marker=MARKERS[i % len(MARKERS)], ms=4,
                  label=m["name"])
    for k, style in ((1.0, ":"), (GOAL[0], "--")):
        axes.axhline(k * floor, color="#5f6368", ls=style, lw=1,
                     label="noise floor" if k == 1.0 else f"{k:g}x floor")
    axes.set_yscale("log")
    axes.set_xlabel("training CPU minutes")
    axes.set_ylabel("Digits-FD")
    axes.legend(fontsize=8)
    return save_figure(figure, file)


def write_page(out: str | Path, measured: Sequence[Mapping[str, Any]], floor: float,
               notes: Sequence[str] = (), settings: Mapping[str, Any] | None = None) -> Path:
    """Write ``out/index.html`` (table and plot) and ``out/results.json``; returns the page."""
    from ..app import report

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InterpolantError(f"{out} is a file; give the benchmark an output folder")
    rows = summarise(measured, floor)
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_curves(measured, floor, out / "digits_fd_vs_minutes.png").resolve()
    (out / "results.json").write_text(json.dumps(
        {"floor": floor, "measured": list(measured), "summary": rows,
         "settings": dict(settings or {})}, indent=2, default=str) + "\n")
    reached = [r["recipe"] for r in rows if r["goal"] == "yes"]
    verdict = (f"Reaching Digits-FD <= {GOAL[0]:g}x the noise floor ({GOAL[0] * floor:.3f}) "
               f"within {GOAL[1]:g} CPU minutes: " + (", ".join(reached) or "none") + ".")
    section = report.Section(
        "Digits-FD against training CPU minutes",
        [f"Noise floor (training digits against the test digits, same n): {floor:.3f}.",
         verdict, *notes],
        images=[report.Picture(plot, "Digits-FD against training CPU minutes")],
        tables=[report.Table(rows, "CPU minutes are training time only (sampling and "
                             "Digits-FD are not clocked); '-': not reached")],
        config=settings)
    return report.write_report(out, "Training recipes: time to quality", [section])
