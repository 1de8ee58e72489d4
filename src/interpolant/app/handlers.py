"""The handlers of the core commands of :mod:`.cli` (train, sample, eval, report, bench, demo,
solvers): each takes the parsed arguments and returns the exit status; modules are imported
when a command runs, so building the parser stays cheap."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InterpolantError
from . import user_cli

if TYPE_CHECKING:
    from .runs import TrainedRun


def train(args: argparse.Namespace) -> int:
    from .runs import RunConfig, open_run
    from .workflows import train_run

    if args.resume:
        config = open_run(args.run_dir)
    else:
        config = RunConfig.read(args.config) if args.config else RunConfig()
    for key in ("data", "model", "path", "target", "seed", "process", "source"):
        if getattr(args, key) is not None:
            setattr(config, key, getattr(args, key))
    user_cli.apply_train_options(args, config)  # --size
    if config.process == "interpolant" and not args.resume:
        from .interpolant_run import defaults

        defaults(config, path=args.path is None, target=args.target is None)
    for key in ("steps", "batch_size", "lr"):
        if getattr(args, key) is not None:
            config.train[key] = getattr(args, key)
    from .recipe_run import apply_recipe

    apply_recipe(config, args)  # --recipe (after --steps: it may depend on them)
    from .tokens import is_token_config

    if is_token_config(config) and args.resume:
        raise InterpolantError("token runs do not resume; train a new --run-dir (they train "
                               "in minutes)")
    if is_token_config(config):
        from .tokens import token_defaults, train_token_run
        from .workflows import set_threads

        token_defaults(config)
        config.check()
        set_threads(args.threads)
        train_token_run(config, args.run_dir, progress=not args.no_progress)
        print(f"trained: {args.run_dir} (checkpoints, metrics.jsonl)")
        return 0
    config.check()
    train_run(config, args.run_dir, resume=args.resume, progress=not args.no_progress,
              threads=args.threads)
    if user_cli.is_main():  # under torchrun: rank 0 speaks
        print(f"trained: {args.run_dir} (checkpoints, metrics.jsonl)")
    return 0


def sample(args: argparse.Namespace) -> int:
    from .draw import check_budgets, check_count, draw, plan_steps
    from .evaluate import check_solvers, save_picture
    from .runs import load_data, load_trained
    from ..images import check_picture_name
    from safetensors.torch import save_file
    from ..training.distributed import is_main, setup

    setup()  # under torchrun: the ranks share the batches (app/draw.py)
    user_cli.prepare_sample(args)  # --diffusers DIR: RUN becomes a run of that model
    from .interpolant_run import is_interpolant_run, sample_command

    if is_interpolant_run(args.run_dir):
        return sample_command(args)

    from .tune import accelerated, check_sample_options
    from .token_cli import dispatch

    if (code := dispatch("sample", args)) is not None:
        return code
    tuned = check_sample_options(args)  # names the solver; a tuned grid and options
    check_solvers([args.solver])
    check_count(args.n)
    check_budgets([args.nfe])
    if args.out is not None and not args.out.is_dir():
        check_picture_name(args.out)
    run = load_trained(args.run_dir)
    run.denoiser = accelerated(args, run)
    if args.steer is not None:
        from .cmd_steer import sample_steered

        say_skipped(run)
        return sample_steered(args, run)
    if args.label is not None or args.guidance is not None:
        from .commands import sample_guided

        say_skipped(run)
        return sample_guided(args, run)
    if not tuned:
        plan_steps(args.solver, args.nfe, run.denoiser.path)
    say_skipped(run)
    classes = getattr(run.denoiser.model, "config", {}).get("num_classes")
    samples, nfe, steps, seconds = draw(run.denoiser, args.solver, args.nfe, args.n, args.seed,
                                        run.shape, classes, batch=args.batch, **tuned)
    if not is_main():
        return 0
    out = args.out or args.run_dir / "samples"
    if out.is_dir() or args.out is None:
        out = out / f"{args.solver}_{nfe}.png"
    reference = load_data(run.config, "test")[0] if samples.ndim == 2 else None
    picture = save_picture(samples, run.config, Path(out), reference)
    save_file({"samples": samples.contiguous()}, str(Path(picture).with_suffix(".safetensors")))
    print(f"{args.n} samples, {args.solver}, {steps} steps, {nfe} NFE (budget {args.nfe}), "
          f"{seconds:.2f} s -> {picture}")
    return 0


def say_skipped(run: TrainedRun) -> None:
    """Note on stderr each newer checkpoint that was skipped (any run with ``skipped`` and
    ``checkpoint``: a trained run or a token run)."""
    for problem in run.skipped:
        print(f"interpolant: note: skipped a newer checkpoint ({problem}); using "
              f"{run.checkpoint}", file=sys.stderr)


def eval_(args: argparse.Namespace) -> int:
    from .draw import check_count
    from .evaluate import evaluate, summary_table
    from .runs import load_trained
    from ..training.distributed import is_main, setup
    from .token_cli import dispatch

    if (code := dispatch("eval", args)) is not None:
        return code
    from .interpolant_run import eval_command, is_interpolant_run

    if is_interpolant_run(args.run_dir):
        return eval_command(args)
    args.solvers = args.solvers or ["ddim", "heun", "dpm++2m", "unipc", "dpm++3m"]
    setup()
    check_count(args.n)
    run = load_trained(args.run_dir)
    say_skipped(run)
    config, den = run.config, run.denoiser
    from .tune import read_tuned

    result = evaluate(den, config, args.run_dir, args.solvers, args.nfe, args.n, args.seed,
                      progress=not args.no_progress, batch=args.batch,
                      tuned=read_tuned(args.run_dir))
    if not is_main():
        return 0
    print(summary_table(result))
    print(f"wrote {args.run_dir / 'eval.json'}")
    return 0


def report(args: argparse.Namespace) -> int:
    from .evaluate import write_run_report
    from .pages import saved_pages
    from .runs import open_run
    from .token_cli import dispatch

    if (code := dispatch("report", args)) is not None:
        return code
    config = open_run(args.run_dir)
    result_file = args.run_dir / "eval.json"
    result = _read_result(result_file) if result_file.is_file() else None
    page = write_run_report(args.run_dir, config, result, pages=saved_pages(args.run_dir))
    print(f"wrote {page}")
    return 0


def _read_result(file: Path) -> dict:
    """An ``eval.json`` with the fields the report reads, or a clear error."""
    redo = f"run `interpolant eval --run-dir {file.parent}` again"
    try:
        result = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InterpolantError(f"{file} is not valid JSON ({exc}); {redo}") from None
    rows = result.get("rows") if isinstance(result, dict) else None
    fields = {"solver", "budget", "nfe", "path"}
    if not (isinstance(rows, list) and rows and all(
            isinstance(r, dict) and fields <= set(r) for r in rows)):
        raise InterpolantError(f"{file} holds no rows of results (each with "
                               f"{', '.join(sorted(fields))}); {redo}")
    floor = result.get("noise_floor")
    if not (isinstance(floor, dict) and result.get("measure") in floor and "n" in result):
        raise InterpolantError(f"{file} lacks its measure, noise floor or n; {redo}")
    return result


def bench(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"interpolant.bench.{args.which}")
    return int(module.main(args.args) or 0)


def demo(args: argparse.Namespace) -> int:
    from . import demos

    if args.list:
        print(demos.describe())
        return 0
    run = demos.get(args.name)
    if args.steps is not None and args.name != demos.DEFAULT:
        raise InterpolantError(f"--steps applies to the {demos.DEFAULT} demo only; the "
                               f"{args.name} demo has its own budget (use --quick for a smoke run)")
    options = {"steps": args.steps} if args.steps is not None else {}
    out = args.out if args.out is not None else demos.default_out(args.name)
    page = run(out, quick=args.quick, threads=args.threads, **options)
    if args.name != demos.DEFAULT:
        print(f"report: {page}")
    return 0


def solvers(args: argparse.Namespace) -> int:
    from ..solvers import available

    print("\n".join(available()))
    return 0
