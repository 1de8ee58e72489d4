"""The parser and handler of ``interpolant distill`` (the work is in :mod:`.distill`; this
module imports nothing heavy, so building the command line stays cheap)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"hidden\": 128}}', "
                                         f"got {text!r}")
    return value


def add_parser(sub: Any, fmt: type) -> None:
    p = sub.add_parser("distill", formatter_class=fmt,
                       help="distil a trained run into a few-step student run")
    p.add_argument("--teacher", required=True, type=Path, help="the trained run to distil")
    p.add_argument("--method", required=True, help="one of cd, ct, pd, reflow, mmd, mlcm, scott, slam")
    p.add_argument("--run-dir", required=True, type=Path, help="the student's new run")
    p.add_argument("--steps", type=int, default=400,
                   help="optimiser steps (all rounds together for pd)")
    p.add_argument("--nfe", type=int, default=2,
                   help="pd, mmd, mlcm: the NFE the student is made for (pd: a power of two)")
    p.add_argument("--teacher-nfe", type=int, help="pd: the teacher's DDIM steps, --nfe times a "
                   "power of two (default: the larger of 8 and 2 --nfe)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, help="learning rate (default: the method's)")
    p.add_argument("--pairs", type=int, default=2048, help="reflow: teacher ODE pairs")
    p.add_argument("--model", help="student network (default: the teacher's, from its weights; "
                   "ct: the teacher's architecture from scratch)")
    p.add_argument("--model-options", type=_json_object, default=None,
                   help='JSON of the student network\'s arguments, e.g. \'{"hidden": 128}\'')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads")


def run(args: argparse.Namespace) -> int:
    from .distill import distill_run
    from .workflows import set_threads

    set_threads(args.threads)
    info = distill_run(args.teacher, args.method, args.run_dir, steps=args.steps, nfe=args.nfe,
                       batch_size=args.batch_size, lr=args.lr, pairs=args.pairs,
                       model=args.model, model_options=args.model_options, seed=args.seed,
                       teacher_nfe=args.teacher_nfe)
    nfes = ",".join(map(str, info["nfes"]))
    print(f"distilled ({args.method}, {args.steps} steps, {info['cpu_seconds']:.0f} CPU s): "
          f"{args.run_dir}\nevaluate it with: interpolant eval --run-dir {args.run_dir} "
          f"--solvers {info['solver']} --nfe {nfes}")
    return 0
