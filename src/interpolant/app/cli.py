"""The ``interpolant`` command: train, sample, eval, report, bench, demo, restore, edit, tune.

``interpolant demo`` runs the digits demo; ``interpolant demo NAME`` another one of
:mod:`.demos` (``--list``).

A user mistake (a missing run directory, an unknown key in a config, an unknown solver, an
unwritable output path) ends with one line ``interpolant: error: ...`` and exit status 2,
not a traceback. Run ``interpolant <command> --help`` for every option with its default.

On a shared machine: the long commands (train, eval, demo) run with OpenMP threads that sleep
when they wait (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning, so another busy process
slows training in proportion rather than fifty-fold. OpenMP reads that setting only when
torch loads, so the installed command starts itself once more with it set, unless the
environment already sets it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..bench import NAMES as BENCHMARKS
from ..errors import InterpolantError
from . import user_cli
from .options import add_guidance_options, add_restore_edit_parsers, add_steer_options
from .cmd_distill import add_parser as add_distill_parser, run as _distill
from .cmd_invert import add_parser as add_invert_parser, run as _invert
from .recipe_run import add_argument as add_recipe_argument, apply_recipe
from .cmd_posthoc import add_parser as add_posthoc_parser, run as _posthoc
from .tune import add_parser as add_tune_parser, add_sample_options, run as _tune

if TYPE_CHECKING:
    from .runs import TrainedRun



def _csv(kind: type) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            items = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        if not items:
            raise argparse.ArgumentTypeError(f"expected a non-empty comma-separated list, got "
                                             f"{text!r}")
        return items
    return parse


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    top = argparse.ArgumentParser(prog="interpolant", formatter_class=fmt,
                                  description="Diffusion and flow models: train, sample, "
                                  "evaluate, benchmark, report.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", formatter_class=fmt, help="train a model into a run directory")
    p.add_argument("--run-dir", required=True, type=Path, help="where the run lives")
    p.add_argument("--config", type=Path, help="JSON or TOML file of RunConfig fields")
    p.add_argument("--data", help="data set (digits, moons, ...); overrides the config")
    p.add_argument("--model", help="network: unet, mlp, dit")
    p.add_argument("--path", help="forward process: vp-cosine, vp-linear, linear, edm, ...; "
                   "for a token process its schedule: cosine, linear, polynomial")
    p.add_argument("--process", help="gaussian (default: a path of --path), or a discrete "
                   "process on tokens: masked, uniform (data text, digits, digits-binary), "
                   "or interpolant (a stochastic interpolant from --source)")
    p.add_argument("--source", help="with --process interpolant: noise, DATA-masked or "
                   "DATA-lowres (a degraded copy of each datum; e.g. digits-masked)")
    p.add_argument("--target", help="prediction target: eps, x0, v, velocity")
    p.add_argument("--steps", type=int, help="training steps")
    p.add_argument("--batch-size", type=int, help="batch size (per process)")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--seed", type=int, help="seed of data, initialisation and training noise")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, help="CPU threads (default: the CPUs this process "
                   "may use)")
    user_cli.add_train_options(p)
    add_recipe_argument(p)

    p = sub.add_parser("sample", formatter_class=fmt, help="draw samples from a trained run")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--solver", help="solver name (see `interpolant solvers`), or tuned; default: "
                   "the run's tuned choice for --nfe (`interpolant tune`), else dpm++2m")
    p.add_argument("--nfe", type=int, default=10, help="network evaluations budget")
    p.add_argument("--n", type=int, default=100, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="picture, .png or .jpg, or a folder for "
                   "SOLVER_NFE.png (default RUN/samples/SOLVER_NFE.png)")
    add_guidance_options(p)
    add_steer_options(p)
    user_cli.add_sample_options(p)
    add_sample_options(p)

    p = sub.add_parser("eval", formatter_class=fmt,
                       help="sample with several solvers and NFE budgets and measure quality")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--solvers", type=_csv(str), help="solvers (default ddim,heun,dpm++2m,"
                   "unipc,dpm++3m; for token runs their samplers)")
    p.add_argument("--nfe", type=_csv(int), default="5,10,20", help="NFE budgets")
    user_cli.add_eval_options(p)
    p.add_argument("--n", type=int, default=500, help="samples per solver and budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("report", formatter_class=fmt, help="write RUN/report/index.html")
    p.add_argument("--run-dir", required=True, type=Path)

    p = sub.add_parser("bench", formatter_class=fmt, help="benchmarks against the peers")
    p.add_argument("which", choices=BENCHMARKS)
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark script")

    p = sub.add_parser("demo", formatter_class=fmt,
                       help="train a U-Net on the bundled digits, sample, evaluate, report; "
                       "or another named demo (--list)")
    p.add_argument("name", nargs="?", default="digits", help="which demo (see --list)")
    p.add_argument("--list", action="store_true", help="list the demos and exit")
    p.add_argument("--out", type=Path, default=None,
                   help="run directory (default runs/demo, or runs/demo-NAME)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps of the digits demo (default: the full demo's)")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (seconds)")
    p.add_argument("--threads", type=int, help="CPU threads for training (default: the CPUs "
                   "this process may use)")

    add_restore_edit_parsers(sub, fmt)
    add_distill_parser(sub, fmt)
    add_invert_parser(sub, fmt)
    add_posthoc_parser(sub, fmt)
    add_tune_parser(sub, fmt)

    sub.add_parser("solvers", help="list the solver names")
    return top


def _train(args: argparse.Namespace) -> int:
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


def _sample(args: argparse.Namespace) -> int:
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

        _say_skipped(run)
        return sample_steered(args, run)
    if args.label is not None or args.guidance is not None:
        from .commands import sample_guided

        _say_skipped(run)
        return sample_guided(args, run)
    if not tuned:
        plan_steps(args.solver, args.nfe, run.denoiser.path)
    _say_skipped(run)
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


def _say_skipped(run: TrainedRun) -> None:
    for problem in run.skipped:
        print(f"interpolant: note: skipped a newer checkpoint ({problem}); using "
              f"{run.checkpoint}", file=sys.stderr)


def _eval(args: argparse.Namespace) -> int:
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
    _say_skipped(run)
    config, den = run.config, run.denoiser
    result = evaluate(den, config, args.run_dir, args.solvers, args.nfe, args.n, args.seed,
                      progress=not args.no_progress, batch=args.batch)
    if not is_main():
        return 0
    print(summary_table(result))
    print(f"wrote {args.run_dir / 'eval.json'}")
    return 0


def _report(args: argparse.Namespace) -> int:
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


def _bench(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"interpolant.bench.{args.which}")
    return int(module.main(args.args) or 0)


def _demo(args: argparse.Namespace) -> int:
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


def _solvers(args: argparse.Namespace) -> int:
    from ..solvers import available

    print("\n".join(available()))
    return 0


def _in_commands(name: str) -> Callable[[argparse.Namespace], int]:
    """The handler ``name`` of :mod:`.commands`, imported when the command runs."""
    def run(args: argparse.Namespace) -> int:
        from . import commands

        return getattr(commands, name)(args)
    return run


COMMANDS = {"train": _train, "sample": _sample, "eval": _eval, "report": _report,
            "bench": _bench, "demo": _demo, "solvers": _solvers,
            "restore": _in_commands("restore"), "edit": _in_commands("edit"), "tune": _tune}
COMMANDS["distill"] = _distill  # app/cmd_distill.py
COMMANDS["invert"] = _invert  # app/cmd_invert.py
COMMANDS["posthoc-ema"] = _posthoc  # app/cmd_posthoc.py


# Commands that run long enough for the OpenMP waiting policy to matter.
_LONG = {"train", "eval", "demo"}


def _restart_with_passive_wait(command: str) -> None:
    """Start this command again with ``OMP_WAIT_POLICY=PASSIVE`` (see the module docstring),
    unless the environment sets the policy or the platform cannot replace a process."""
    if command not in _LONG or "OMP_WAIT_POLICY" in os.environ or os.name != "posix":
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``interpolant`` command; returns the exit status.

    Called without ``argv`` (as the installed command) it reads ``sys.argv`` and may start
    itself again once with a passive OpenMP waiting policy; called with ``argv`` (from
    Python) it runs in this process as it is.
    """
    args = _parser().parse_args(argv)
    if argv is None:
        _restart_with_passive_wait(args.command)
    try:
        return COMMANDS[args.command](args)
    except InterpolantError as exc:
        print(f"interpolant: error: {exc}", file=sys.stderr)
        return 2
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileNotFoundError) as exc:
        print(f"interpolant: error: cannot write or read {exc.filename}: {exc.strerror}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interpolant: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
