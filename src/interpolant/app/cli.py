"""The ``interpolant`` command: train, sample, eval, report, bench, demo.

A user mistake (a missing run directory, an unknown key in a config, an unknown solver, an
unwritable output path) ends with one line ``interpolant: error: ...`` and exit status 2,
not a traceback. Run ``interpolant <command> --help`` for every option with its default.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..bench import NAMES as BENCHMARKS
from ..errors import InterpolantError



def _csv(kind: type) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
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
    p.add_argument("--path", help="forward process: vp-cosine, vp-linear, linear, edm, ...")
    p.add_argument("--target", help="prediction target: eps, x0, v, velocity")
    p.add_argument("--steps", type=int, help="training steps")
    p.add_argument("--batch-size", type=int, help="batch size (per process)")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--seed", type=int, help="seed of data, initialisation and training noise")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("sample", formatter_class=fmt, help="draw samples from a trained run")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--solver", default="dpm++2m", help="solver name (see `interpolant "
                   "solvers`)")
    p.add_argument("--nfe", type=int, default=10, help="network evaluations budget")
    p.add_argument("--n", type=int, default=100, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="PNG file (default RUN/samples/SOLVER_NFE.png)")

    p = sub.add_parser("eval", formatter_class=fmt,
                       help="sample with several solvers and NFE budgets and measure quality")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--solvers", type=_csv(str), default="ddim,heun,dpm++2m,unipc,dpm++3m")
    p.add_argument("--nfe", type=_csv(int), default="5,10,20", help="NFE budgets")
    p.add_argument("--n", type=int, default=500, help="samples per solver and budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("report", formatter_class=fmt, help="write RUN/report/index.html")
    p.add_argument("--run-dir", required=True, type=Path)

    p = sub.add_parser("bench", formatter_class=fmt, help="benchmarks against the peers")
    p.add_argument("which", choices=BENCHMARKS)
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark script")

    p = sub.add_parser("demo", formatter_class=fmt,
                       help="train a U-Net on the bundled digits, sample, evaluate, report")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (default: the full demo's)")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (seconds)")

    sub.add_parser("solvers", help="list the solver names")
    return top


def _train(args: argparse.Namespace) -> int:
    from .runs import RunConfig, open_run
    from .workflows import train_run

    if args.resume:
        config = open_run(args.run_dir)
    else:
        config = RunConfig.read(args.config) if args.config else RunConfig()
    for key in ("data", "model", "path", "target", "seed"):
        if getattr(args, key) is not None:
            setattr(config, key, getattr(args, key))
    for key in ("steps", "batch_size", "lr"):
        if getattr(args, key) is not None:
            config.train[key] = getattr(args, key)
    config.check()
    train_run(config, args.run_dir, resume=args.resume, progress=not args.no_progress)
    print(f"trained: {args.run_dir} (checkpoints, metrics.jsonl)")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from .evaluate import check_solvers, draw, save_picture
    from .runs import load_data, load_denoiser
    from safetensors.torch import save_file

    check_solvers([args.solver])
    config, den = load_denoiser(args.run_dir)
    x, _ = load_data(config, "test")
    classes = getattr(den.model, "config", {}).get("num_classes")
    samples, nfe, seconds = draw(den, config, args.solver, args.nfe, args.n, args.seed,
                                 tuple(x.shape[1:]), classes)
    out = args.out or args.run_dir / "samples" / f"{args.solver}_{nfe}.png"
    picture = save_picture(samples, config, Path(out), x)
    save_file({"samples": samples.contiguous()}, str(Path(picture).with_suffix(".safetensors")))
    print(f"{args.n} samples, {args.solver}, {nfe} NFE, {seconds:.2f} s -> {picture}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, summary_table
    from .runs import load_denoiser

    config, den = load_denoiser(args.run_dir)
    result = evaluate(den, config, args.run_dir, args.solvers, args.nfe, args.n, args.seed,
                      progress=not args.no_progress)
    print(summary_table(result))
    print(f"wrote {args.run_dir / 'eval.json'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .evaluate import write_run_report
    from .runs import open_run

    config = open_run(args.run_dir)
    result_file = args.run_dir / "eval.json"
    result = json.loads(result_file.read_text()) if result_file.is_file() else None
    page = write_run_report(args.run_dir, config, result)
    print(f"wrote {page}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"interpolant.bench.{args.which}")
    return int(module.main(args.args) or 0)


def _demo(args: argparse.Namespace) -> int:
    from .workflows import demo

    demo(args.out, steps=args.steps, quick=args.quick)
    return 0


def _solvers(args: argparse.Namespace) -> int:
    from ..solvers import available

    print("\n".join(available()))
    return 0


COMMANDS = {"train": _train, "sample": _sample, "eval": _eval, "report": _report,
            "bench": _bench, "demo": _demo, "solvers": _solvers}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``interpolant`` command; returns the exit status."""
    args = _parser().parse_args(argv)
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
