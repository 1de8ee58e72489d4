"""``interpolant tune`` and the acceleration options of ``interpolant sample``.

``interpolant tune --run-dir R --nfe N`` searches solver, options and time grid for ``N``
network evaluations against a fine reference of the run's own model
(:func:`interpolant.acceleration.search`: AutoDiffusion, USF / S^3) and saves the choice in
``R/tuned.json``, one entry per budget. Afterwards ``interpolant sample --run-dir R --nfe N``
samples with it unless ``--solver`` names another (``--solver tuned`` insists on it).

``interpolant sample --cache deepcache[:interval] --quantize int8 --compile`` runs the run's
network through :func:`interpolant.acceleration.accelerate`: DeepCache or encoder propagation
(``encoder[:interval]``, Faster Diffusion) for a U-Net, block caching (``block[:interval]``)
for a DiT, int8 kernels or fake ``fake<bits>[a][t]`` quantization (activations with ``a``,
calibrated on a plain run across the trajectory; ``t``: the time embedding kept exact) or
EDA-DM (``eda<bits>``),
``torch.compile`` with the plain network as fallback. ``--early-exit THRESH`` (DiT: the fewest
blocks whose measured exit error is within THRESH), ``--time-shift [WINDOW]`` (Time-Shift
Sampler) and ``--dc-solver`` (DC-Solver's compensation) transform the denoiser, calibrated or
fitted on a plain run of 8 fixed starts with the sampling solver and grid.

Options are checked before the run is loaded and the network's fit (a cache for its blocks)
before anything is sampled, so a refused request writes nothing. Imports here stay light:
the parser of the command line imports this module.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import InterpolantError, unknown_name

TUNED_FILE = "tuned.json"
CACHES = {"deepcache": 3, "encoder": 2, "block": 2}  # name: default interval
DEFAULT_SOLVER = "dpm++2m"


def add_sample_options(p: argparse.ArgumentParser) -> None:
    """``--cache``, ``--quantize`` and ``--compile`` of ``interpolant sample``."""
    p.add_argument("--cache", help="feature caching: deepcache[:interval] (U-Net, default "
                   "interval 3), encoder[:interval] (U-Net, Faster Diffusion, 2) or "
                   "block[:interval] (DiT, 2)")
    p.add_argument("--quantize", help="int8 (int8 kernels of the Linear layers, CPU), "
                   "fake<bits>[a][t] (weights, and activations with 'a', rounded to <bits>; "
                   "'t': the time embedding kept exact, TFMQ-DM) or eda<bits> (EDA-DM: "
                   "calibration aligned with the time steps, rounding learned block by block)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (the "
                   "plain network if compilation fails)")
    p.add_argument("--time-shift", type=float, nargs="?", const=0.03, metavar="WINDOW",
                   help="Time-Shift Sampler: feed the network the time, within WINDOW (default "
                   "0.03) of the step's, whose marginal variance matches the state's")
    p.add_argument("--dc-solver", action="store_true", help="DC-Solver: compensate the model "
                   "outputs of a one-evaluation-per-step solver with ratios fitted on 8 starts")
    p.add_argument("--early-exit", type=float, metavar="THRESH", help="DiT: run at each call "
                   "the fewest blocks whose exit error, measured on a plain run, is <= THRESH")


def add_parser(sub: argparse._SubParsersAction, fmt: type) -> None:
    """The ``tune`` command."""
    p = sub.add_parser("tune", formatter_class=fmt, help="search the solver and time grid for "
                       "an NFE budget on the run's own model; sample uses the choice")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--nfe", type=int, required=True, help="network evaluations budget")
    p.add_argument("--solvers", help="comma-separated candidate solvers (default: dpm++2m/3m, "
                   "unipc, deis, ipndm, dpm-v3 with their options)")
    p.add_argument("--n", type=int, default=16, help="starting noises the choice is scored on")
    p.add_argument("--refine", type=int, default=2, help="sweeps refining the best grid")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noises")


def parse_cache(text: str | None) -> tuple[str, int] | None:
    """``(name, interval)`` of ``--cache NAME[:INTERVAL]`` (``None`` without caching)."""
    if text is None:
        return None
    name, _, interval = text.partition(":")
    if name not in CACHES:
        raise unknown_name("cache", name, CACHES)
    if not interval:
        return name, CACHES[name]
    if not interval.isdigit() or int(interval) < 1:
        raise InterpolantError(f"--cache {text}: the interval after ':' must be an integer "
                               f">= 1 (1: every call full), got {interval!r}")
    return name, int(interval)


def check_sample_options(args: argparse.Namespace) -> dict[str, Any]:
    """Check the acceleration options and settle the solver of ``interpolant sample``:
    ``args.solver`` becomes a solver name; returns the tuned choice's explicit ``grid`` and
    options (empty unless the tuned choice is used)."""
    from ..acceleration import quantization

    parse_cache(args.cache)
    if args.quantize is not None:
        quantization(args.quantize)
    _check_transforms(args)
    tuned = _tuned_or_named(args)
    args.tuned = tuned
    if args.dc_solver:
        from ..solvers import get

        solver = get(args.solver)
        if solver.own_grid or solver.max_nfe(4) != 4:
            raise InterpolantError(f"--dc-solver compensates solvers with one evaluation per "
                                   f"step (dpm++2m, dpm++3m, unipc, deis, ipndm); {args.solver} "
                                   "is not one")
    return tuned


def _check_transforms(args: argparse.Namespace) -> None:
    """``--time-shift``, ``--dc-solver`` and ``--early-exit``: their values, and what they
    cannot be combined with."""
    import math

    given = [f"--{n.replace('_', '-')}" for n in ("time_shift", "dc_solver", "early_exit")
             if getattr(args, n, None) not in (None, False)]
    for name in ("time_shift", "early_exit"):
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise InterpolantError(f"--{name.replace('_', '-')} must be a finite number >= 0, "
                                   f"got {value}")
    if given and any(getattr(args, n, None) is not None for n in ("label", "guidance", "steer")):
        raise InterpolantError(f"{' and '.join(given)} transform unguided sampling; drop "
                               "--label/--guidance/--steer")
    if args.early_exit is not None and (args.cache or args.quantize or args.compile):
        raise InterpolantError("--early-exit runs the DiT's own blocks; it does not combine "
                               "with --cache, --quantize or --compile")


def _tuned_or_named(args: argparse.Namespace) -> dict[str, Any]:
    from ..acceleration import SearchResult
    from .runs import open_run

    plain = args.label is None and args.guidance is None
    if args.solver not in (None, "tuned") or (args.solver is None and not plain):
        args.solver = args.solver or DEFAULT_SOLVER
        return {}
    open_run(args.run_dir)
    choices = read_tuned(args.run_dir)
    if args.solver == "tuned":
        if not plain:
            raise InterpolantError("--solver tuned is the choice for unguided sampling; drop "
                                   "--label/--guidance or name a solver")
        if str(args.nfe) not in choices:
            have = ", ".join(sorted(choices, key=int)) or "none"
            raise InterpolantError(
                f"{args.run_dir} has no tuned choice for --nfe {args.nfe} (tuned budgets: "
                f"{have}); run `interpolant tune --run-dir {args.run_dir} --nfe {args.nfe}`")
    elif str(args.nfe) not in choices:
        args.solver = DEFAULT_SOLVER
        return {}
    choice = SearchResult.from_dict(choices[str(args.nfe)])
    args.solver = choice.solver
    return {"grid": choice.grid, **choice.options}


def read_tuned(run_dir: Path) -> dict[str, Any]:
    """The saved choices of ``interpolant tune``: ``{str(nfe): SearchResult.to_dict()}``."""
    file = Path(run_dir) / TUNED_FILE
    if not file.is_file():
        return {}
    try:
        choices = json.loads(file.read_text()).get("choices")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise InterpolantError(f"{file} is not a saved tuning ({exc}); delete it or run "
                               "`interpolant tune` again") from None
    if not isinstance(choices, dict):
        raise InterpolantError(f"{file} holds no choices; delete it or run `interpolant tune` "
                               "again")
    return choices


def accelerated(args: argparse.Namespace, run: Any) -> Any:
    """The run's denoiser accelerated as ``--cache``, ``--quantize``, ``--compile`` ask, then
    transformed as ``--early-exit``, ``--time-shift``, ``--dc-solver`` ask (the plain one when
    none is given)."""
    from .. import acceleration as acc

    cache = parse_cache(args.cache)
    if cache is None and args.quantize is None and not args.compile:
        return _transformed(args, run, run.denoiser)
    den = run.denoiser
    name, interval = cache if cache is not None else (None, 1)
    calibration = None
    if args.quantize is not None and any(acc.quantization(args.quantize)[1:]):
        import torch

        starts = torch.randn((16, *run.shape), generator=torch.Generator().manual_seed(12345))
        classes = getattr(den.model, "config", {}).get("num_classes")
        run_kw = dict(solver=DEFAULT_SOLVER, steps=10,
                      cond=None if classes is None else torch.arange(16) % classes)
        starts = starts * float(den.path.sigma(1.0))
        calibration = (acc.eda_calibration(den, starts, total=64, **run_kw)
                       if args.quantize.startswith("eda")
                       else acc.calibration_inputs(den, starts, per_call=8, **run_kw))
    return _transformed(args, run, acc.accelerate(
        den, cache=name, interval=interval, quantize=args.quantize, compile=args.compile,
        calibration=calibration))


def run(args: argparse.Namespace) -> int:
    """``interpolant tune``: search, save the choice in ``RUN/tuned.json``, print it."""
    import torch

    from ..acceleration import DEFAULT_CANDIDATES, search
    from ..acceleration.search import steps_for
    from .draw import check_count, generators
    from .evaluate import check_solvers
    from .runs import load_trained, write_json

    check_count(args.n)
    if args.nfe < 1:
        raise InterpolantError(f"--nfe must be a positive integer, got {args.nfe}")
    if args.refine < 0:
        raise InterpolantError(f"--refine must be 0 or more sweeps, got {args.refine}")
    candidates = DEFAULT_CANDIDATES
    if args.solvers is not None:
        names = check_solvers([s.strip() for s in args.solvers.split(",") if s.strip()])
        for name in names:
            if steps_for(name, {}, args.nfe) is None:
                raise InterpolantError(
                    f"{name} cannot run within {args.nfe} NFE (it spends more at its fewest "
                    "steps, or picks its own steps); raise --nfe or drop it from --solvers")
        candidates = tuple((name, {}) for name in names)
    loaded = load_trained(args.run_dir)
    den = loaded.denoiser
    x = torch.stack([torch.randn(loaded.shape, generator=g)
                     for g in generators(args.seed, args.n)]) * float(den.path.sigma(1.0))
    classes = getattr(den.model, "config", {}).get("num_classes")
    cond = None if classes is None else torch.arange(args.n) % classes
    found = search(den, x, args.nfe, candidates=candidates, refine=args.refine, cond=cond)
    choices = read_tuned(args.run_dir)
    choices[str(args.nfe)] = {**found.to_dict(), "n": args.n, "seed": args.seed,
                              "checkpoint": loaded.checkpoint.name, "scored": len(found.tried)}
    file = Path(args.run_dir) / TUNED_FILE
    write_json(file, {"choices": choices})
    options = "".join(f" {k}={v}" for k, v in found.options.items())
    print(f"tuned for {args.nfe} NFE: {found.solver}{options} on a {found.grid.numel() - 1}-"
          f"step grid {[round(t, 4) for t in found.grid.tolist()]}; error vs a fine solve "
          f"{found.error:.4g} (dpm++2m on the log-SNR grid: {found.default_error:.4g}), "
          f"{len(found.tried)} tried -> {file}")
    print(f"`interpolant sample --run-dir {args.run_dir} --nfe {args.nfe}` now uses it")
    return 0


def _transformed(args: argparse.Namespace, run: Any, den: Any) -> Any:
    """``den`` with ``--early-exit``, ``--time-shift`` and ``--dc-solver`` applied, each
    calibrated or fitted on a plain run of 8 fixed starts with the sampling solver and grid."""
    if args.early_exit is None and args.time_shift is None and not args.dc_solver:
        return den
    import torch

    from .. import acceleration as acc
    from ..grids import make
    from .draw import plan_steps
    from .runs import load_data

    starts = torch.randn((8, *run.shape), generator=torch.Generator().manual_seed(54321))
    starts = starts * float(den.path.sigma(1.0))
    classes = getattr(den.model, "config", {}).get("num_classes")
    cond = None if classes is None else torch.arange(8) % classes
    options = dict(getattr(args, "tuned", None) or {})
    grid = options.pop("grid", None)
    if grid is None:
        grid = make(den.path.default_grid, den.path, plan_steps(args.solver, args.nfe, den.path))
    if args.early_exit is not None:
        den = acc.calibrate_exits(den, starts, args.early_exit, per_call=8, solver=args.solver,
                                  grid=grid, cond=cond, **options)
    if args.time_shift is not None:
        data = load_data(run.config, "train")[0][:512]
        den = acc.TimeShift(den, window=args.time_shift, cutoff=0.3,
                            data_variance=acc.TimeShift.variance_of(data))
    if args.dc_solver:
        den = acc.DynamicCompensation(den, acc.fit_ratios(den, starts, grid, solver=args.solver,
                                                          cond=cond, **options))
    return den
