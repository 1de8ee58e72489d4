"""``interpolant demo fewstep``: few-step students of one digits teacher, side by side.

A U-Net teacher (unconditional, v-prediction on the linear VP path, whose log-SNR grids of 2 and
4 steps split the time range evenly in log-SNR; the cosine path's first step from ``t = 1``
would be all but idle for a 2-step student) is trained on the 8x8 digits
into ``OUT/teacher``; each method of ``interpolant distill`` makes student runs of it under
``OUT/students``:

* ``cd``, ``ct``, ``reflow``: one student each, sampled at 1, 2 and 4 NFE;
* ``pd``: the rounds 8 -> 4 -> 2 -> 1 steps, each round a run distilled from the one before
  (its CPU time counts all rounds up to it);
* ``mmd``: one fine-tuned copy of the teacher per NFE;
* ``mlcm``: one multistep consistency student per NFE (that many segments).

Every run is evaluated as ``interpolant eval`` does (Digits-FD of ``N`` samples against the
held-out digits, the same starting noise for all), the teacher with DDIM, DPM-Solver++(2M) and
UniPC at 5, 10 and 20 NFE (its best solver per NFE in the table). The report
``OUT/report/index.html`` shows the table (Digits-FD, ratio to the teacher at 20 NFE, CPU
minutes of each student), the curve of Digits-FD against NFE, the sample grids, and the
issue's goal: a 2-NFE student within 1.5x of the teacher's 20-NFE Digits-FD. Each student run
stays a run: ``interpolant report --run-dir OUT/students/reflow`` works as for any run.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from .. import paths, plots
from ..errors import InterpolantError
from . import report
from .distill import SOLVER, distill_run
from .evaluate import evaluate
from .runs import CONFIG_FILE, RunConfig, load_data, load_trained, write_json
from .workflows import set_threads

MARK = "DEMO_FEWSTEP"
NFES = (1, 2, 4)
TEACHER_NFES = (5, 10, 20)
TEACHER_SOLVERS = ("ddim", "dpm++2m", "unipc")
GOAL = 1.5
# Optimiser steps: the teacher's, and each student's (pd: per round, mmd: per NFE).
FULL = {"teacher": 1200, "cd": 300, "ct": 400, "pd": 150, "reflow": 300, "mmd": 60, "mlcm": 150,
        "n": 500, "pairs": 2048, "batch": 64, "channels": 32}
QUICK = {"teacher": 10, "cd": 2, "ct": 2, "pd": 2, "reflow": 2, "mmd": 2, "mlcm": 2, "n": 40,
         "pairs": 16, "batch": 16, "channels": 8}
TEACHER_MODEL = {"base_channels": 32, "channel_mults": [1, 2], "attention_levels": [],
                 "num_classes": None}


def _prepare(out: Path) -> None:
    """Replace a previous fewstep demo in ``out`` (it holds ``MARK``); refuse anything else."""
    if out.exists() and not out.is_dir():
        raise InterpolantError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARK).is_file():
            raise InterpolantError(f"{out} is not empty and not a fewstep demo; choose another "
                                   "--out (the demo replaces only its own output)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARK).write_text("made by `interpolant demo fewstep`, which may replace it\n")


def train_teacher(run_dir: Path, steps: int, channels: int = 32, seed: int = 0) -> float:
    """An unconditional digits U-Net run (v-prediction, linear VP path); its CPU seconds."""
    from ..models import build
    from ..training import TrainConfig, Trainer

    options = dict(TEACHER_MODEL, base_channels=channels)
    config = RunConfig(model_options=options, seed=seed, path="vp-linear",
                       train={"steps": steps, "batch_size": 64, "lr": 2e-3, "warmup": 50})
    x, _ = load_data(config)
    torch.manual_seed(seed)
    net = build("unet", in_channels=1, **options)
    train = TrainConfig(target="v", steps=steps, batch_size=64, lr=2e-3, warmup=50,
                        ema_halflife=steps * 64 / 10, clip_grad=1.0, label_dropout=0.0, seed=seed,
                        progress=False, log_every=max(steps // 50, 1), checkpoint_every=steps)
    start = time.process_time()
    Trainer(net, paths.get(config.path), x, None, train, run_dir).run()
    write_json(run_dir / CONFIG_FILE, config.to_json())
    return time.process_time() - start


def _students(out: Path, budget: dict[str, int]) -> list[tuple[str, tuple[int, ...], Path, float]]:
    """Distil every student: ``(method, NFEs to evaluate, run, CPU seconds)`` per run."""
    teacher, root, made = out / "teacher", out / "students", []
    common = dict(batch_size=budget["batch"], pairs=budget["pairs"])
    for method in ("cd", "ct", "reflow"):
        info = distill_run(teacher, method, root / method, steps=budget[method], **common)
        made.append((method, NFES, root / method, info["cpu_seconds"]))
        print(f"  {method}: {info['cpu_seconds']:.0f} CPU s", flush=True)
    source, steps_of, cost = teacher, 8, 0.0
    for nfe in sorted(NFES, reverse=True):  # 8 -> 4 -> 2 -> 1, each from the last
        run = root / f"pd-{nfe}"
        info = distill_run(source, "pd", run, steps=budget["pd"], nfe=nfe, teacher_nfe=steps_of,
                           **common)
        cost += info["cpu_seconds"]
        made.append(("pd", (nfe,), run, cost))
        source, steps_of = run, nfe
    print(f"  pd: {cost:.0f} CPU s", flush=True)
    for method in ("mmd", "mlcm"):  # one student per NFE
        for nfe in NFES:
            run = root / f"{method}-{nfe}"
            info = distill_run(teacher, method, run, steps=budget[method], nfe=nfe, **common)
            made.append((method, (nfe,), run, info["cpu_seconds"]))
        print(f"  {method}: {sum(m[3] for m in made if m[0] == method):.0f} CPU s", flush=True)
    return made


def _evaluate(run: Path, solvers: tuple[str, ...], nfes: tuple[int, ...], n: int
              ) -> list[dict[str, Any]]:
    from .tune import read_tuned

    loaded = load_trained(run)
    return evaluate(loaded.denoiser, loaded.config, run, solvers, nfes, n=n,
                    progress=False, tuned=read_tuned(run))["rows"]


def fewstep_demo(out: str | Path, quick: bool = False, threads: int | None = None) -> Path:
    """Train the teacher, distil and evaluate the students, write the report (module
    docstring); returns the report page."""
    out, budget = Path(out).resolve(), QUICK if quick else FULL
    set_threads(threads)
    _prepare(out)
    wall = time.perf_counter()
    print(f"interpolant demo fewstep: teacher U-Net, {budget['teacher']} steps -> {out}/teacher",
          flush=True)
    teacher_cpu = train_teacher(out / "teacher", budget["teacher"], budget["channels"])
    rows = []
    for r in _evaluate(out / "teacher", TEACHER_SOLVERS, TEACHER_NFES, budget["n"]):
        rows.append({"method": f"teacher {r['solver']}", "nfe": r["nfe"], "fd": r["digits_fd"],
                     "cpu_min": teacher_cpu / 60, "path": out / "teacher" / r["path"]})
    print("students:", flush=True)
    for method, nfes, run, cpu in _students(out, budget):
        for r in _evaluate(run, (SOLVER[method],), nfes, budget["n"]):
            rows.append({"method": method, "nfe": r["nfe"],
                         "fd": r.get("digits_fd", float("inf")), "cpu_min": cpu / 60,
                         "path": run / r["path"]})
    floor = json.loads((out / "teacher" / "eval.json").read_text())["noise_floor"]["digits_fd"]
    page = write_page(out, rows, floor, (time.perf_counter() - wall) / 60)
    print(f"report: {page}", flush=True)
    return page


def _best_teacher(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    best: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r["method"].startswith("teacher") and (r["nfe"] not in best
                                                  or r["fd"] < best[r["nfe"]]["fd"]):
            best[r["nfe"]] = r
    return best


def goal_line(rows: list[dict[str, Any]]) -> str:
    """The issue's goal: the best 2-NFE student against the teacher's best 20-NFE Digits-FD."""
    teacher = _best_teacher(rows)[20]["fd"]
    students = [r for r in rows if r["nfe"] == 2 and not r["method"].startswith("teacher")]
    best = min(students, key=lambda r: r["fd"])
    ratio = best["fd"] / teacher
    verdict = "met" if ratio <= GOAL else "not met"
    return (f"Goal (a 2-NFE student within {GOAL}x of the teacher's 20-NFE Digits-FD): {verdict}"
            f" — best 2-NFE student {best['method']} at {best['fd']:.3g}, {ratio:.2f}x the "
            f"teacher's {teacher:.3g} ({_best_teacher(rows)[20]['method']}).")


def write_page(out: Path, rows: list[dict[str, Any]], floor: float, minutes: float) -> Path:
    """The demo's report: table, curve, sample grids and the goal."""
    best = _best_teacher(rows)
    shown = [r for r in rows if not r["method"].startswith("teacher")] + [
        dict(best[n], method="teacher (best solver)", solver=best[n]["method"][8:])
        for n in sorted(best)]
    reference = best[20]["fd"]
    table = [{"method": r["method"], "NFE": r["nfe"], "Digits-FD": r["fd"],
              "x teacher@20": r["fd"] / reference, "CPU min": r["cpu_min"],
              **({"solver": r["solver"]} if "solver" in r else {})} for r in shown]
    curve = plots.error_vs_nfe([{"solver": r["method"], "nfe": r["nfe"], "value": r["fd"]}
                                for r in shown], out / "report" / "fd_vs_nfe.png",
                               ylabel="Digits-FD", title=f"Digits-FD (floor {floor:.3g})")
    grid = report.ImageGrid.from_records(
        [{"method": r["method"], "nfe": r["nfe"], "path": Path(r["path"]).resolve()}
         for r in shown], row="method", caption="first 100 samples of each")
    notes = [goal_line(rows),
             f"Noise floor (real training digits against the same held-out ones): {floor:.3g}. "
             f"The teacher's CPU minutes are its training; a student's, its distillation "
             f"(pd: all rounds up to it). The whole demo took {minutes:.1f} min here.",
             "Students sample with their own solver: DDIM for cd, ct (deterministic multistep "
             "consistency), pd, mmd and mlcm; Euler on the straight path for reflow. Each student "
             "is a run: `interpolant report --run-dir` on any folder under students/."]
    section = report.Section("Few-step students against their teacher", notes, [grid],
                             [report.Picture(curve, "Digits-FD against NFE")],
                             [report.Table(table, "Digits-FD per method and NFE (lower is "
                                                  "better)")])
    return report.write_report(out / "report", "interpolant demo: few-step students", [section])
