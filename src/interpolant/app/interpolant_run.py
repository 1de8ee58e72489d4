"""Stochastic-interpolant runs: ``interpolant train --process interpolant --source SOURCE``.

A run whose :class:`~.runs.RunConfig` has ``process = "interpolant"`` learns the velocity of
the interpolant ``x_t = a(t) x_0 + b(t) x_1`` (``--path linear`` or ``trig``) from the data
``x_0`` to a source ``x_1`` (Albergo et al., "Stochastic interpolants with data-dependent
couplings", 2024; :mod:`interpolant.interpolants.sources`):

* ``noise``: ``x_1 ~ N(0, I)`` independent of ``x_0``, the Gaussian base (generation);
* ``DATA-masked``: ``x_1`` is the datum with its bottom half replaced by noise (inpainting);
* ``DATA-lowres``: ``x_1`` keeps the 2x2 block means of the datum and puts noise in the detail
  within each block (super-resolution),

where ``DATA`` is the run's own image data (``digits-masked`` for ``--data digits``). The
degradations are those of ``interpolant restore`` (:func:`.pages.operator`, tasks ``inpaint``
and ``sr``), so the two kinds of model restore the same measurements. The network is
unconditional and predicts the velocity; it is sampled with ``euler`` or ``heun`` from source
draws (for a degraded source: of held-out images) by ``interpolant sample`` and measured per
solver and NFE by ``interpolant eval`` (Digits-FD or sliced W2 to held-out data; PSNR and
label accuracy of restorations), into ``RUN/interpolant_eval.json``. The commands built on a
Gaussian path (``restore``, ``edit``, guidance, distillation) refuse such runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import data as datasets
from .. import solvers
from ..errors import InterpolantError, unknown_name
from ..interpolants import Interpolant, InterpolantModel
from ..interpolants.sources import Degraded, GaussianSource, Source, SourceObjective
from .runs import RunConfig, is_image_data, load_data, load_trained, open_run

PATHS = ("linear", "trig")
DEGRADATIONS = {"masked": "inpaint", "lowres": "sr"}
SOLVERS = ("euler", "heun")  # velocity-only solvers: the run has no score network


def sources(data: str) -> list[str]:
    """The sources a run on ``data`` may start from."""
    return ["noise"] + [f"{data}-{kind}" for kind in DEGRADATIONS]


def defaults(config: RunConfig, path: bool, target: bool) -> None:
    """The command line's defaults for an interpolant run: the linear interpolant (``path``)
    and the velocity (``target``), where the user gave neither."""
    if path:
        config.path = "linear"
    if target:
        config.target = "velocity"


def check_config(config: RunConfig) -> None:
    """Refuse what an interpolant run cannot be (:meth:`RunConfig.check` then checks the
    data, model and training options as for any run)."""
    if config.process != "interpolant":
        raise InterpolantError(f"--source {config.source} is the other end of a stochastic "
                               "interpolant; add --process interpolant")
    datasets.check_source(config.data)
    if config.path not in PATHS:
        raise InterpolantError(f"--process interpolant takes --path {' or '.join(PATHS)} (the "
                               f"interpolant's a(t), b(t)), got {config.path!r}")
    if config.target != "velocity":
        raise InterpolantError(f"an interpolant run learns the velocity; leave --target out or "
                               f"give --target velocity, not {config.target!r}")
    if config.source == "noise":
        return
    name, _, kind = config.source.rpartition("-")
    if kind not in DEGRADATIONS or not name:
        raise unknown_name("source", config.source, sources(config.data))
    if name != config.data:
        raise InterpolantError(
            f"the source {config.source!r} is a degraded copy of {name!r}, but the run's data "
            f"are {config.data!r}: the two ends must be the same kind of sample (same shape); "
            f"use --source {config.data}-{kind} or --source noise")
    if not is_image_data(config):
        raise InterpolantError(f"the source {config.source!r} degrades images; the data "
                               f"{config.data!r} are not images (use --source noise)")


def path_of(config: RunConfig) -> Interpolant:
    """The run's interpolant (``gamma = 0``)."""
    return Interpolant.linear() if config.path == "linear" else Interpolant.trig()


def source_of(config: RunConfig, shape: tuple[int, ...]) -> Source:
    """The run's source for samples of ``shape``."""
    from .pages import operator

    if config.source == "noise":
        return GaussianSource()
    return Degraded(operator(DEGRADATIONS[config.source.rpartition("-")[2]], shape))


def objective_for(config: RunConfig, x: Tensor) -> SourceObjective:
    """The trainer's objective of an interpolant run on data ``x``."""
    return SourceObjective(path_of(config), source_of(config, tuple(x.shape[1:])))


def model_of(run_net: Any, config: RunConfig) -> InterpolantModel:
    """A trained velocity network as the samplers see it."""
    return InterpolantModel(run_net, path_of(config))


def check_solver(solver: str) -> str:
    if solver not in SOLVERS:
        raise InterpolantError(f"an interpolant run is sampled with {' or '.join(SOLVERS)} (it "
                               f"learns the velocity only), got solver {solver!r}")
    return solver


def steps_for(solver: str, budget: int) -> int:
    """The most steps of ``solver`` within ``budget`` NFE (heun: two per step)."""
    per_step = solvers.get(check_solver(solver)).nfe_per_step
    if budget < per_step:
        raise InterpolantError(f"{solver} spends {per_step} NFE per step; give --nfe "
                               f"{per_step} or more")
    return budget // per_step


def transport(model: InterpolantModel, x1: Tensor, solver: str, budget: int) -> tuple[Tensor,
                                                                                    int]:
    """Integrate ``dx/dt = u`` from the source ``x1`` at ``t = 1`` to the data at ``t = 0``
    on the uniform grid; returns the end points and the NFE spent."""
    before = model.nfe
    with torch.no_grad():
        x0 = solvers.sample(model, x1, solver=solver, steps=steps_for(solver, budget),
                            grid="uniform", t_start=1.0, t_end=0.0)
    return x0, model.nfe - before


def source_draws(config: RunConfig, shape: tuple[int, ...], n: int, seed: int
                 ) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(x1, truth, labels)``: ``n`` source points, one generator per sample; for a degraded
    source the held-out images they degrade (classes in turn) and their labels."""
    from .draw import generators
    from .pages import held_out

    zeta = torch.stack([torch.randn(shape, generator=g) for g in generators(seed, n)])
    if config.source == "noise":
        return zeta, None, None
    truth, labels = held_out(config, n)
    return source_of(config, shape)(truth, zeta), truth, labels


def is_interpolant_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds an interpolant run (errors about the folder come later)."""
    try:
        return open_run(run_dir).process == "interpolant"
    except InterpolantError:
        return False


def sample_command(args: argparse.Namespace) -> int:
    """``interpolant sample`` of an interpolant run: generations from noise, or restorations of
    held-out images from a degraded source (with their PSNR)."""
    from safetensors.torch import save_file

    from .. import images
    from .draw import check_budgets, check_count
    from .evaluate import save_picture
    from .pages import label_accuracy, psnr

    check_count(args.n)
    check_budgets([args.nfe])
    if args.out is not None and not args.out.is_dir():
        images.check_picture_name(args.out)
    run = load_trained(args.run_dir, interpolant=True)
    if getattr(args, "label", None) is not None or getattr(args, "guidance", None) is not None:
        raise InterpolantError("--label and --guidance need a class-conditional Gaussian-path "
                               "run; an interpolant run's network is unconditional")
    solver = check_solver(args.solver or "heun")
    steps_for(solver, args.nfe)
    x1, truth, labels = source_draws(run.config, run.shape, args.n, args.seed)
    start = time.perf_counter()
    x0, nfe = transport(run.denoiser, x1, solver, args.nfe)
    seconds = time.perf_counter() - start
    out = args.out or args.run_dir / "samples"
    if out.is_dir() or args.out is None:
        out = out / f"{solver}_{nfe}.png"
    if truth is None:
        reference = load_data(run.config, "test")[0] if x0.ndim == 2 else None
        picture = save_picture(x0, run.config, Path(out), reference)
        note = ""
    else:  # rows: the source, the restoration, the truth
        picture = images.save_grid(torch.cat([x1, x0, truth]), Path(out), nrow=args.n, clip=True)
        accuracy = label_accuracy(x0, labels)
        note = f", PSNR {float(psnr(x0, truth).mean()):.2f} dB" + (
            f", label accuracy {accuracy:.2f}" if accuracy is not None else "")
    save_file({"samples": x0.contiguous()}, str(Path(picture).with_suffix(".safetensors")))
    print(f"{args.n} samples from {run.config.source}, {solver}, {nfe} NFE (budget "
          f"{args.nfe}), {seconds:.2f} s{note} -> {picture}")
    return 0


def eval_command(args: argparse.Namespace) -> int:
    """``interpolant eval`` of an interpolant run: the same source draws transported by each
    solver at each NFE budget; Digits-FD (images) or sliced W2 (points) to the held-out data,
    and for a degraded source the PSNR and label accuracy against the truth."""
    from .. import metrics
    from .draw import check_budgets, check_count
    from .pages import label_accuracy, psnr
    from .runs import write_json

    check_count(args.n)
    budgets = check_budgets(args.nfe)
    chosen = list(args.solvers or SOLVERS)
    for solver in chosen:
        for budget in budgets:
            steps_for(solver, budget)
    run = load_trained(args.run_dir, interpolant=True)
    x1, truth, labels = source_draws(run.config, run.shape, args.n, args.seed)
    held = load_data(run.config, "test")[0]
    rows = []
    for solver in chosen:
        for budget in budgets:
            x0, nfe = transport(run.denoiser, x1, solver, budget)
            row: dict[str, Any] = {"solver": solver, "budget": budget, "nfe": nfe}
            if tuple(x0.shape[1:]) == (1, 8, 8):
                row["digits_fd"] = metrics.digits_fd(x0.clamp(-1, 1).float(), held)
            elif x0.ndim == 2:
                row["sliced_w2"] = metrics.sliced_wasserstein(x0, held)
            if truth is not None:
                row["psnr"] = float(psnr(x0, truth).mean())
                row["label_accuracy"] = label_accuracy(x0, labels)
            rows.append(row)
            print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in row.items()))
    out = Path(args.run_dir) / "interpolant_eval.json"
    write_json(out, {"source": run.config.source, "n": args.n, "seed": args.seed, "rows": rows})
    print(f"wrote {out}")
    return 0
