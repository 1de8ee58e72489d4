"""``interpolant sample / eval / report`` on token runs (see :mod:`.tokens`).

:func:`dispatch` is called first by those commands: it returns ``None`` for a Gaussian run
(the command goes on as before) and the exit status after handling a token run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import discrete
from ..errors import InterpolantError
from .handlers import say_skipped
from .runs import open_run
from .token_report import (
    default_samplers, evaluate_tokens, save_samples, summary,
    write_token_report,
)
from .tokens import draw_tokens, is_token_config, load_token_run


def dispatch(command: str, args: argparse.Namespace) -> int | None:
    """Handle ``command`` when ``args.run_dir`` is a token run; ``None`` otherwise."""
    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").is_file() or not is_token_config(open_run(run_dir)):
        return None
    return {"sample": _sample, "eval": _eval, "report": _report}[command](args)


def _sample(args: argparse.Namespace) -> int:
    run = load_token_run(args.run_dir)
    sampler = args.solver or default_samplers(run)[-1]
    if args.n < 1:
        raise InterpolantError(f"--n must be a positive integer, got {args.n}")
    say_skipped(run)
    scale = args.scale if getattr(args, "guidance", None) else None
    if getattr(args, "guidance", None) not in (None, "cfg"):
        raise InterpolantError(f"token runs take --guidance cfg only, got {args.guidance!r}")
    out = draw_tokens(run, sampler, args.nfe, args.n, args.seed, label=args.label,
                      guidance=scale)
    stem = (args.out.with_suffix("") if args.out is not None and not args.out.is_dir() else
            (args.out or Path(args.run_dir) / "samples") / f"{sampler}_{out.nfe}")
    file = save_samples(run.config, out.tokens, stem)
    if run.config.data == "text":
        for text in discrete.decode_text(out.tokens[:10]):
            print(text.replace("\n", " ⏎ "))
    print(f"{args.n} samples, {sampler}, {out.nfe} NFE -> {file}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    run = load_token_run(args.run_dir)
    say_skipped(run)
    samplers = args.solvers or default_samplers(run)
    result = evaluate_tokens(run, args.run_dir, samplers, args.nfe, n=args.n, seed=args.seed)
    print(summary(result))
    print(f"wrote {Path(args.run_dir) / 'eval.json'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    config = open_run(args.run_dir)
    file = Path(args.run_dir) / "eval.json"
    if not file.is_file():
        raise InterpolantError(f"{args.run_dir} has no eval.json; run `interpolant eval "
                               f"--run-dir {args.run_dir}` first")
    try:
        result = json.loads(file.read_text())
        rows, reference = result["rows"], result["reference"]
        assert isinstance(rows, list) and rows and isinstance(reference, dict)
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError):
        raise InterpolantError(f"{file} is not a token run's evaluation; run `interpolant eval "
                               f"--run-dir {args.run_dir}` again") from None
    print(f"wrote {write_token_report(args.run_dir, config, result)}")
    return 0
