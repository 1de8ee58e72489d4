"""Training recipes measured as the field measures them: Digits-FD against training CPU minutes,
for the current default run, the plain diffusers recipe and each training recipe, in one run.

Contestants (see :mod:`.training_contestants`): ``default`` (``interpolant train``'s run),
``diffusers`` (the ``train_unconditional`` loop with ``UNet2DModel``), and every recipe name
(``a+b`` composes recipes). All train without labels on the 1500 training digits with the same
batch size, learning rate and seed, each for ``--minutes`` of CPU time (``time.process_time``,
training steps only). They take turns in chunks of ``--chunk`` steps, so that background load
on the machine falls on all alike.

Quality is the Digits-FD (:func:`interpolant.metrics.digits_fd`) of ``--fd-samples`` samples
against the 297 held-out test digits, at step 0 and at ``--evals`` evenly spaced marks of the
budget: each contestant's EMA weights (``--weights raw``: its current raw weights; see
:mod:`.training_contestants`) draw from the same start noise with
``interpolant.sample(..., solver="dpm++2m", steps=--fd-steps)``, clamped to ``[-1, 1]``. The
noise floor is ``digits_fd(train[:n], test)`` at the same ``n``. After training, each
contestant is also sampled with 2 network evaluations (DPM-Solver++(2M) on the grid
``1, m, t_min``, the best of ``m`` in 0.45, 0.55, 0.65: the few-step issue's "2-NFE quality" is
within 1.5x of the many-step Digits-FD). The report page (a table and a Digits-FD-vs-minutes
plot) and ``results.json`` go to ``--out``.

    interpolant bench training                          # every contestant, 3 CPU minutes each
    interpolant bench training --recipes default,edm2 --minutes 1 --out runs/bench-training
    interpolant bench training --quick                  # 15 s each, 2 evaluations of 200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import interpolant as ip

from ..data import digits
from ..errors import InterpolantError
from ..metrics import digits_fd
from ..models import count_parameters
from .training_contestants import Contestant, contestant, recipe_names
from .training_page import summarise, write_page

__all__ = ["main", "sample_fd", "two_step_fd"]


@torch.no_grad()
def sample_fd(run: Contestant, x1: torch.Tensor, reference: torch.Tensor, steps: int,
              ema: bool = True) -> float:
    """Digits-FD of samples from the start noise ``x1`` (dpm++2m, the EMA or current raw
    weights, clamped to [-1, 1]) against ``reference``."""
    run.model.eval()
    try:
        x = ip.sample(run.denoiser(ema), x1, solver="dpm++2m", steps=steps)
    finally:
        run.model.train()
    return digits_fd(x.clamp(-1.0, 1.0), reference)


@torch.no_grad()
def two_step_fd(run: Contestant, x1: torch.Tensor, reference: torch.Tensor,
                middles: tuple[float, ...] = (0.45, 0.55, 0.65), ema: bool = True) -> float:
    """The best Digits-FD at 2 NFE: DPM-Solver++(2M) on the grids ``1, m, t_min``."""
    den = run.denoiser(ema)
    run.model.eval()
    try:
        scores = []
        for m in middles:
            grid = torch.tensor([1.0, m, den.path.t_min], dtype=torch.float64)
            x = ip.sample(den, x1, solver="dpm++2m", grid=grid)
            scores.append(digits_fd(x.clamp(-1.0, 1.0), reference))
    finally:
        run.model.train()
    return min(scores)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="interpolant bench training",
                                description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--recipes", default=None,
                   help="comma-separated contestants (default: all of " +
                        ", ".join(recipe_names()) + "); 'a+b' composes recipes")
    p.add_argument("--minutes", type=float, default=None,
                   help="training CPU minutes per contestant (default 3, quick 0.25)")
    p.add_argument("--evals", type=int, default=None,
                   help="Digits-FD evaluations after step 0, evenly spaced (default 6, quick 2)")
    p.add_argument("--fd-samples", type=int, default=None,
                   help="samples per evaluation (default 500, quick 200)")
    p.add_argument("--fd-steps", type=int, default=20, help="dpm++2m steps per sample")
    p.add_argument("--batch-size", type=int, default=128, help="batch size of every contestant")
    p.add_argument("--lr", type=float, default=2e-3,
                   help="learning rate (a recipe that sets its own keeps it)")
    p.add_argument("--weights", choices=("ema", "raw"), default="ema",
                   help="sample the runs' EMA weights (default) or their current raw ones")
    p.add_argument("--chunk", type=int, default=10, help="steps per turn")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default="runs/bench-training", help="folder of the report page")
    p.add_argument("--quick", action="store_true", help="15 s each, 2 evaluations of 200")
    args = p.parse_args(argv)
    args.minutes = args.minutes if args.minutes is not None else 0.25 if args.quick else 3.0
    args.evals = args.evals or (2 if args.quick else 6)
    args.fd_samples = args.fd_samples or (200 if args.quick else 500)
    args.names = [n.strip() for n in (args.recipes or ",".join(recipe_names())).split(",")
                  if n.strip()]
    bad = [k for k in ("minutes", "evals", "fd_samples", "fd_steps", "batch_size", "chunk",
                       "threads") if not getattr(args, k) > 0]
    if bad:
        raise InterpolantError(f"--{bad[0].replace('_', '-')} must be positive")
    if not args.names or len(set(args.names)) != len(args.names):
        raise InterpolantError(f"--recipes needs distinct names, got {args.recipes!r}")
    if Path(args.out).is_file():
        raise InterpolantError(f"--out {args.out} is a file; give a folder for the report")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
        torch.set_num_threads(args.threads)
        train_x, _ = digits("train")
        test_x, _ = digits("test")
        runs = [contestant(n, train_x, args.batch_size, args.lr) for n in args.names]
    except InterpolantError as exc:
        print(f"interpolant: error: {exc}", file=sys.stderr)
        return 2
    x1 = torch.randn((args.fd_samples, *test_x.shape[1:]),
                     generator=torch.Generator().manual_seed(4321))
    floor = digits_fd(train_x[: args.fd_samples], test_x)
    budget = 60.0 * args.minutes
    marks = [budget * (i + 1) / args.evals for i in range(args.evals)]
    clock = {r.name: 0.0 for r in runs}
    steps = {r.name: 0 for r in runs}
    curves: dict[str, list[tuple[float, int, float]]] = {r.name: [] for r in runs}
    print(f"{len(runs)} contestants, {args.minutes:g} CPU min each, batch {args.batch_size}, "
          f"lr {args.lr}, {args.threads} thread(s); Digits-FD of {args.fd_samples} samples "
          f"(dpm++2m, {args.fd_steps} steps, {args.weights} weights); noise floor {floor:.3f}", flush=True)

    def evaluate(run: Contestant) -> None:
        fd = sample_fd(run, x1, test_x, args.fd_steps, args.weights == "ema")
        curves[run.name].append((clock[run.name], steps[run.name], fd))
        print(f"  {run.name:>12}: {clock[run.name] / 60:6.2f} CPU min, {steps[run.name]:6d} "
              f"steps, Digits-FD {fd:8.3f}", flush=True)

    for run in runs:
        evaluate(run)
    while min(clock.values()) < budget:
        for run in runs:
            if clock[run.name] >= budget:
                continue
            tick = time.process_time()
            for _ in range(args.chunk):
                run.step()
            clock[run.name] += time.process_time() - tick
            steps[run.name] += args.chunk
            due = sum(m <= clock[run.name] for m in marks)
            if due > len(curves[run.name]) - 1:  # at most one evaluation per chunk
                evaluate(run)
    for run in runs:
        if curves[run.name][-1][1] != steps[run.name]:
            evaluate(run)

    measured = [{"name": r.name, "parameters": count_parameters(r.model), "curve": curves[r.name],
                 "fd_2nfe": two_step_fd(r, x1, test_x, ema=args.weights == "ema")} for r in runs]
    rows = summarise(measured, floor)
    print("\n| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    settings = {k: getattr(args, k) for k in ("names", "minutes", "evals", "fd_samples",
                                              "fd_steps", "batch_size", "lr", "chunk",
                                              "threads", "weights")}
    sampled = ("their EMA weights (the diffusers loop keeps one of the same half-life; a recipe "
               "without a classic EMA is sampled raw)" if args.weights == "ema"
               else "their raw weights (no EMA)")
    notes = ["All contestants train without labels, from the same data, batch size, learning "
             f"rate and seed, and sample from {sampled}."]
    page = write_page(args.out, measured, floor, notes, settings)
    print(f"\nreport: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
