"""The report page of the acceleration benchmark (``interpolant bench acceleration --report DIR``).

Every method's measurements become ratios to the plain model of the same run:
``speed-up = s_plain / s_method`` (CPU seconds per sample) and
``FD ratio = FD_method / FD_plain`` (Digits-FD against the test digits). The issue's goal is a
method with ``speed-up >= 2`` at ``FD ratio <= 1.1``; the page says which methods reach it,
plots speed-up against FD ratio with the goal region marked, and shows each method's samples
(same start noise in every grid). ``DIR/results.json`` keeps the raw measurements.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from ..app.report import Picture, Section, Table, write_report
from ..errors import InterpolantError
from ..images import save_grid

GOAL_SPEEDUP, GOAL_FD_RATIO = 2.0, 1.1
COLUMNS = ("method", "NFE", "CPU ms / sample", "speed-up", "wall speed-up", "Digits-FD",
           "FD ratio", "max per-call error", "goal")


def summarise(measured: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the table from measurements ``{"method", "nfe", "seconds", "fd", "error"}``
    (``seconds``: CPU seconds per sample; ``error``: the largest per-call relative error,
    ``None`` for the plain network; optional ``wall``: wall-clock seconds per sample, noisier
    on a shared machine, reported beside); the first measurement is the plain model the ratios
    refer to. The goal is judged on CPU time."""
    if not measured:
        raise InterpolantError("no measurements to report; the first must be the plain model")
    plain = measured[0]
    if not (plain["seconds"] > 0 and plain["fd"] > 0):
        raise InterpolantError(f"the plain model's time and Digits-FD must be positive, got "
                               f"{plain['seconds']} s and FD {plain['fd']}")
    rows = []
    for m in measured:
        speedup, ratio = plain["seconds"] / m["seconds"], m["fd"] / plain["fd"]
        rows.append({
            "method": m["method"], "NFE": int(m["nfe"]), "CPU ms / sample": 1e3 * m["seconds"],
            "speed-up": speedup, "Digits-FD": m["fd"], "FD ratio": ratio,
            "wall speed-up": (f"{plain['wall'] / m['wall']:.2f}x" if m.get("wall")
                              and plain.get("wall") else "-"),
            "max per-call error": "-" if m.get("error") is None else f"{m['error']:.2e}",
            "goal": "yes" if speedup >= GOAL_SPEEDUP and ratio <= GOAL_FD_RATIO else "",
        })
    return rows


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The table of :func:`summarise` in Markdown (what the benchmark prints)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r["method"], r["NFE"], f"{r['CPU ms / sample']:.3f}", f"{r['speed-up']:.2f}x",
                 r["wall speed-up"], f"{r['Digits-FD']:.3f}", f"{r['FD ratio']:.2f}", r["max per-call error"],
                 r["goal"]]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def _plot(rows: Sequence[Mapping[str, Any]], file: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    top = max(GOAL_SPEEDUP * 1.2, *(r["speed-up"] for r in rows)) * 1.1
    left = min(0.95, *(r["FD ratio"] - 0.02 for r in rows))
    right = max(GOAL_FD_RATIO + 0.05, *(r["FD ratio"] + 0.05 for r in rows))
    ax.fill_between([left, GOAL_FD_RATIO], GOAL_SPEEDUP, top, color="tab:green", alpha=0.08)
    ax.axvline(GOAL_FD_RATIO, color="tab:green", ls="--", lw=1)
    ax.axhline(GOAL_SPEEDUP, color="tab:green", ls="--", lw=1, label="goal: 2x at FD ratio 1.1")
    for r in rows:
        ax.scatter(r["FD ratio"], r["speed-up"], s=18)
        ax.annotate(r["method"], (r["FD ratio"], r["speed-up"]), fontsize=6,
                    xytext=(3, 2), textcoords="offset points")
    ax.set(xlabel="Digits-FD / plain (lower is better)",
           ylabel="speed-up over plain (CPU time per sample)", ylim=(0, top),
           xlim=(left, right))
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(file, dpi=130)
    plt.close(fig)
    return file


def write_page(out: str | Path, measured: Sequence[Mapping[str, Any]],
               samples: Mapping[str, Tensor], notes: Sequence[str] = ()) -> Path:
    """``out/index.html``: the table, the speed/quality plot and every method's samples;
    ``samples`` maps a method to a batch of its images in ``[-1, 1]``; ``notes`` are
    paragraphs (training, timing protocol, noise floor)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InterpolantError(f"--report {out} is a file; give a folder for the page")
    rows = summarise(measured)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"measured": list(map(dict, measured)),
                                                  "notes": list(notes)}, indent=2))
    reached = [r["method"] for r in rows if r["goal"]]
    verdict = (f"Methods reaching the goal (at least {GOAL_SPEEDUP:g}x faster at no more than "
               f"{100 * (GOAL_FD_RATIO - 1):.0f}% worse Digits-FD): "
               + (", ".join(reached) if reached else "none in this run") + ".")
    pictures = []
    for i, (method, images) in enumerate(samples.items()):
        file = save_grid(images.clamp(-1, 1), out / "samples" / f"method_{i:02d}.png", scale=3)
        pictures.append(Picture(file, method, pixelated=True))
    sections = [
        Section("Speed and quality at equal NFE", paragraphs=[verdict, *notes],
                tables=[Table(rows, columns=COLUMNS, caption="ratios to the plain model of "
                              "the same run", digits=3)],
                images=[Picture(_plot(rows, out / "speed_quality.png"),
                                "speed-up against Digits-FD ratio; goal region shaded")]),
        Section("Samples (same start noise for every method)", images=pictures),
    ]
    return write_report(out, "Acceleration of the digits U-Net", sections,
                        subtitle="interpolant bench acceleration --report")
