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
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..bench import NAMES as BENCHMARKS
from ..errors import InterpolantError
from . import handlers, user_cli
from .options import add_guidance_options, add_restore_edit_parsers, add_steer_options
from .cmd_distill import add_parser as add_distill_parser, run as _distill
from .cmd_invert import add_parser as add_invert_parser, run as _invert
from .cmd_posthoc import add_parser as add_posthoc_parser, run as _posthoc
from .tune import add_parser as add_tune_parser, add_sample_options, run as _tune



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
    p.add_argument("--recipe", help="training recipe(s), composable with commas (e.g. sd3,p2); "
                   "an unknown name is answered with the list")

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


def _in_commands(name: str) -> Callable[[argparse.Namespace], int]:
    """The handler ``name`` of :mod:`.commands`, imported when the command runs."""
    def run(args: argparse.Namespace) -> int:
        from . import commands

        return getattr(commands, name)(args)
    return run


COMMANDS = {"train": handlers.train, "sample": handlers.sample, "eval": handlers.eval_,
            "report": handlers.report, "bench": handlers.bench, "demo": handlers.demo,
            "solvers": handlers.solvers,
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
