"""Whole jobs behind the command line: train a run, and the demo (train, sample, measure,
report) that a new user runs first."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch

from .. import paths
from ..errors import InterpolantError
from ..training import distributed
from .evaluate import evaluate, summary_table, write_run_report
from .pages import demo_pages
from .runs import CONFIG_FILE, RunConfig, build_model, load_data, load_denoiser, open_run
from .runs import write_json

# Training defaults of the command line (TrainConfig fields), overridden by config["train"].
TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 2000, "batch_size": 128, "lr": 2e-3, "warmup": 100, "ema_halflife": 25_000,
    "label_dropout": 0.1, "log_every": 50, "checkpoint_every": 500, "clip_grad": 1.0,
}

# The demo: a small class-conditional U-Net on the 1,500 training digits, cosine VP path,
# v-prediction.
DEMO_STEPS = 1600
DEMO_SOLVERS = ("ddim", "heun", "dpm++2m", "unipc", "dpm++3m")
DEMO_NFES = (5, 10, 20)
# Written into a run directory by the demo: the demo replaces only a run that holds it.
DEMO_MARK = "DEMO_RUN"


def set_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads (default: this process's share of the CPUs it may run on,
    :func:`interpolant.training.distributed.default_threads`); returns the count."""
    if threads is None:
        threads = distributed.default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InterpolantError(f"--threads must be a positive integer, got {threads!r}")
    torch.set_num_threads(threads)
    return threads


def train_run(config: RunConfig, run_dir: str | Path, resume: bool = False,
              progress: bool = True, threads: int | None = None) -> None:
    """Train ``config`` into ``run_dir`` (``config.json``, ``checkpoints/``,
    ``metrics.jsonl``); ``resume`` continues from its newest checkpoint that verifies.

    Everything (options, data, network, checkpoint) is checked before ``config.json`` is
    written, so a refused run leaves nothing behind and can be retried as it was meant.
    """
    from ..training import TrainConfig, Trainer

    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise InterpolantError(f"{run_dir} is a file; give --run-dir a folder (new or a run)")
    if resume:
        saved = open_run(run_dir)
        if saved != config:
            raise InterpolantError(f"{run_dir} was trained with another configuration; resume "
                                   "it without changing options, or use another --run-dir")
    elif (run_dir / CONFIG_FILE).exists():
        raise InterpolantError(f"{run_dir} already holds a run; pass --resume to continue it "
                               "or choose another --run-dir")
    set_threads(threads)
    x, labels = load_data(config)
    objective = None
    if config.process == "interpolant":  # an unconditional velocity from config.source
        from .interpolant_run import objective_for

        labels, objective = None, objective_for(config, x)
    net = build_model(config, x, labels)
    options = {**TRAIN_DEFAULTS, **config.train, "target": config.target, "seed": config.seed,
               "progress": progress}
    try:
        train_config = TrainConfig(**options)
    except (TypeError, ValueError) as exc:
        raise InterpolantError(f"training options {config.train}: {exc}") from None
    if config.recipe:
        from .recipe_run import recipe_parts

        net, objective = recipe_parts(config, net, paths.get(config.path), train_config,
                                      objective)
    trainer = Trainer(net, paths.get(config.path), x, labels, train_config, run_dir, resume,
                      objective=objective)
    if trainer.resumed_from is not None:
        print(f"resuming from {trainer.resumed_from} (step {trainer.step_count})")
    elif resume:
        print(f"no checkpoint in {run_dir} yet; training from step 0")
    for problem in trainer.skipped:
        print(f"skipped a newer checkpoint: {problem}")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_FILE, config.to_json())
    result = trainer.run()
    if config.recipe:  # after-training steps of the recipes (e.g. calibration)
        from ..training.recipes import finish_run

        finish_run(config.recipe, run_dir, result.ema_model or result.model,
                   paths.get(config.path), config.target, x, labels)


def demo_config(steps: int | None = None, quick: bool = False) -> RunConfig:
    """The demo's run: the full one, or a seconds-long smoke version with ``quick``."""
    if quick:
        return RunConfig(model_options={"base_channels": 16, "attention_levels": []},
                         train={"steps": steps or 20, "batch_size": 32, "log_every": 5,
                                "checkpoint_every": 10})
    # checkpoints every 400 steps, all four kept: the report's autoguidance is guided by the
    # run's own oldest one (step 400), a weaker version of the same model (Karras et al. 2024)
    return RunConfig(train={"steps": steps or DEMO_STEPS, "checkpoint_every": 400,
                            "keep_checkpoints": 4})


def demo(out: str | Path = "runs/demo", steps: int | None = None, quick: bool = False,
         threads: int | None = None) -> dict:
    """Train a U-Net on the bundled digits, sample it with several solvers at 5, 10 and 20
    NFE, measure the Digits-FD against held-out digits, and write the report.

    A previous demo in ``out`` is replaced, only if the demo made it (it holds the
    ``DEMO_RUN`` mark and nothing but run files); any other run or folder is refused.
    """
    out = Path(out)
    start = time.perf_counter()
    config = demo_config(steps, quick)
    clear_previous_run(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARK).write_text("made by `interpolant demo`, which may replace this run\n")
    print(f"interpolant demo: training a class-conditional U-Net on the 8x8 digits "
          f"({config.train['steps']} steps) into {out}")
    train_run(config, out, progress=True, threads=threads)
    trained = time.perf_counter() - start
    _, den = load_denoiser(out)
    n = 100 if quick else 500
    solvers = DEMO_SOLVERS[:4] if quick else DEMO_SOLVERS
    print(f"sampling {n} digits with {', '.join(solvers)} at {DEMO_NFES} NFE")
    result = evaluate(den, config, out, solvers, DEMO_NFES, n=n)
    print(summary_table(result))
    print("guidance sweep, restorations and edits for the report")
    pages = demo_pages(den, config, out, quick=quick)
    minutes = (time.perf_counter() - start) / 60
    notes = [f"Trained in {trained / 60:.1f} min; the whole demo took {minutes:.1f} min on "
             "this machine.", "Digits-FD: Fréchet distance in the features of a small "
             "classifier trained on the bundled digits (lower is better)."]
    page = write_run_report(out, config, result, title="interpolant demo: digits", notes=notes,
                            pages=pages)
    print(f"report: {page}  ({minutes:.1f} min)")
    return result


def digits_demo(out: str | Path, quick: bool = False, threads: int | None = None,
                steps: int | None = None) -> Path:
    """The default named demo (see :mod:`.demos`): :func:`demo`, returning its report page."""
    demo(out, steps=steps, quick=quick, threads=threads)
    return Path(out) / "report" / "index.html"


_RUN_FILES = {CONFIG_FILE, "checkpoints", "metrics.jsonl", "samples", "eval.json", "report",
              "pages", DEMO_MARK, "tensorboard"}


def clear_previous_run(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InterpolantError(f"{out} exists and is not a directory; choose another --out")
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return
    if DEMO_MARK not in entries or not entries <= _RUN_FILES:
        raise InterpolantError(f"{out} is not empty and not a run the demo made; choose "
                               "another --out (the demo replaces only its own runs)")
    for name in entries:
        target = out / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
