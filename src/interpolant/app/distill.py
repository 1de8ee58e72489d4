"""``interpolant distill``: a few-step student of a trained run, saved as a run of its own.

    interpolant distill --teacher runs/demo --method reflow --run-dir runs/student
    interpolant eval --run-dir runs/student --solvers euler --nfe 1,2,4

The student run holds what any run holds (``config.json``, ``checkpoints/``, ``metrics.jsonl``,
the distillation loss per step) and ``student.json`` (method, teacher, the solver it samples
with, CPU seconds), so ``interpolant sample / eval / report`` use it like any run:

=========  =====================================================  ============================
method     the student's run                                      sample it with
=========  =====================================================  ============================
``cd``     consistency distillation, one batched Heun teacher      ``ddim`` (deterministic
           step per interval; the student starts from the          multistep consistency), any
           teacher's weights, its consistency function ``f`` an    NFE
           ``x0`` prediction on the teacher's path, LCM's narrow
           boundary (:data:`BOUNDARY`)
``ct``     improved consistency training (iCT), from scratch       ``ddim``, any NFE
``pd``     progressive distillation, ``8 -> ... -> --nfe`` steps   ``ddim`` at ``--nfe``
``reflow`` reflow on the teacher's coupling, path ``linear``,      ``euler``, any NFE
           target ``velocity``
``mmd``    MMD-DDM fine-tuning for DDIM at ``--nfe`` steps          ``ddim`` at ``--nfe``
``mlcm``   multistep consistency distillation to ``--nfe``         ``ddim`` at ``--nfe``
           segment boundaries (one batched Heun teacher step
           per interval), from the teacher's weights
``scott``  as ``cd`` with SCott's stochastic teacher step (two      ``ddim``, any NFE
           SDE-DPM-Solver++(2M) substeps, noise strength 0.1)
``slam``   as ``cd``, the student asked along SLAM's sub-path      ``ddim``, any NFE
           linear ODE of each interval
=========  =====================================================  ============================

A student samples on the time grid it was distilled for, stored with the run as its tuned
choice per NFE (``tuned.json``, which ``interpolant sample --run-dir RUN --nfe N`` uses): the
path's default grid, or a uniform one on a path that reaches pure noise (``alpha(1) = 0``, the
cosine path), whose log-SNR and Karras grids would spend a step at ``t = 1`` all but idle.

The student learns the teacher's unconditional model (a class-conditional teacher is called
without labels); its run samples without labels. Everything is checked (the teacher loads, the
student network fits the data, the run directory is free) before any work, and nothing is
written until the distillation has finished: one that diverges stops with the step named and
leaves no run behind.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import fewstep as fs
from ..errors import InterpolantError, unknown_name
from ..grids import make as make_grid
from ..predictions import Denoiser
from .runs import CONFIG_FILE, TrainedRun, build_model, load_data, load_trained, write_json
from .tune import TUNED_FILE

SOLVER = {"cd": "ddim", "ct": "ddim", "pd": "ddim", "reflow": "euler", "mmd": "ddim",
          "mlcm": "ddim", "scott": "ddim", "slam": "ddim"}
LR = {"cd": 1e-3, "ct": 1e-3, "pd": 3e-4, "reflow": 3e-4, "mmd": 1e-4, "mlcm": 1e-4,
      "scott": 1e-4, "slam": 1e-4}
CONSISTENCY = {"cd": fs.consistency_distillation, "ct": fs.consistency_training,
               "scott": fs.stochastic_consistency_distillation, "slam": fs.subpath_distillation}
STUDENT_FILE = "student.json"


class Unconditional(nn.Module):
    """A student distilled without labels: ``net(x, t)``, refusing a condition."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None) -> torch.Tensor:
        if cond is not None:
            raise InterpolantError("this few-step student was distilled without labels; "
                                   "sample it without --label or --guidance")
        return self.net(x, t)


def student_denoiser(net: nn.Module, path: Any, target: str, spec: dict[str, Any]) -> Denoiser:
    """The denoiser of a student run from its raw network and the checkpoint's ``student``
    record (the consistency parameterisation, whether labels are refused)."""
    model: nn.Module = net
    consistency = spec.get("consistency")
    if isinstance(consistency, dict):
        model = fs.ConsistencyModel(net, path, consistency["sigma_data"],
                                    consistency.get("prediction"))
    if spec.get("unconditional"):
        model = Unconditional(model)
    return Denoiser(model, path, prediction=target)


# sigma_data of c_skip = sd^2 / ((s - s_min)^2 + sd^2) for a student from the teacher's weights
# (LCM's f = alpha_min (c_skip x / alpha + (1 - c_skip) x0^)): c_skip falls from 1 at t_min to
# ~0 within a noise-to-signal ratio ~0.01, as LCM's timestep scaling makes it, so f starts as the
# teacher's x0^ everywhere but at t_min, a consistency function's best first guess. With the
# data's std (0.75) c_skip stays above 1/2 up to s = 0.75 and f starts as a blend of the noisy
# x / alpha and x0^: on the fewstep demo's digits teacher (300 steps) Digits-FD at 1, 2, 4 NFE
# fell from 26.1, 19.5, 23.4 to 21.1, 6.9, 7.3 (interpolant distill --method cd --steps 300
# --batch-size 64, then interpolant eval --solvers ddim --nfe 1,2,4 --n 500), and with cd's
# learning rate 1e-3 (was 1e-4) to 8.3, 6.1, 7.2 (teacher: 4.12 at 20 NFE).
BOUNDARY = 0.01


def student_grid(path: Any) -> str:
    """The grid kind a student of ``path`` is distilled and sampled on (module docstring)."""
    return "uniform" if float(path.alpha(1.0)) < 1e-6 else path.default_grid


def tuned_choices(solver: str, grids: dict[int, torch.Tensor]) -> dict[str, Any]:
    """``tuned.json``'s choices: per NFE the student's solver and explicit grid, in the record
    of :class:`interpolant.acceleration.SearchResult` (no search ran: errors are NaN)."""
    return {str(nfe): {"solver": solver, "options": {}, "nfe": nfe, "grid": grid.tolist(),
                       "error": float("nan"), "default_error": float("nan"),
                       "source": "the grid the student was distilled for"}
            for nfe, grid in grids.items()}


def _check(method: str, steps: Any, nfe: Any, teacher_dir: Path, run_dir: Path) -> None:
    if method not in fs.METHODS:
        raise unknown_name("distillation method", method, fs.METHODS)
    if method not in SOLVER:
        raise InterpolantError(f"method {method!r} is library only (interpolant.fewstep.distill):"
                               f" its student is not a network sampled by a solver, which a run "
                               f"holds; the command distils {', '.join(SOLVER)}")
    for name, value in (("--steps", steps), ("--nfe", nfe)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InterpolantError(f"{name} must be a positive integer, got {value!r}")
    if method == "pd" and nfe & (nfe - 1):
        raise InterpolantError(f"progressive distillation halves the steps each round: --nfe "
                               f"must be a power of two (1, 2, 4, 8), got {nfe}")
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise InterpolantError(f"{run_dir} already exists and is not an empty folder; give "
                               "--run-dir a new folder for the student")
    if run_dir.resolve() == Path(teacher_dir).resolve():
        raise InterpolantError("--run-dir must differ from --teacher")


def _student_net(teacher: TrainedRun, method: str, x: torch.Tensor, model: str | None,
                 options: dict | None) -> tuple[nn.Module, Any, bool]:
    """``(network, run config, copied)``: a copy of the teacher's network (the default, but
    for ``ct``), or a fresh network of ``model`` (default the teacher's architecture) without
    labels. A teacher that is itself a consistency student has no network to copy."""
    config = replace(teacher.config, train={})
    raw = teacher.denoiser.model
    raw = raw.net if isinstance(raw, Unconditional) else raw
    if model is None and options is None and method != "ct" \
            and getattr(raw, "arch", None) == config.model:
        return copy.deepcopy(raw), config, True
    config = replace(config, model=model or config.model,
                     model_options=dict(config.model_options if model is None else {},
                                        **(options or {})))
    config.check()
    try:
        return build_model(config, x[:2], None), config, False
    except InterpolantError as err:
        raise InterpolantError(f"the student network {config.model!r} does not fit the "
                               f"teacher's data of shape {tuple(x.shape[1:])}: {err}") from None


def distill_run(teacher_dir: str | os.PathLike[str], method: str,
                run_dir: str | os.PathLike[str], *, steps: int = 400, nfe: int = 2,
                batch_size: int = 64, lr: float | None = None, pairs: int = 2048,
                model: str | None = None, model_options: dict | None = None,
                seed: int = 0, teacher_nfe: int | None = None) -> dict[str, Any]:
    """Distil the run ``teacher_dir`` by ``method`` into the new run ``run_dir`` (module
    docstring); returns the ``student.json`` record. ``teacher_nfe`` (pd): the DDIM steps of
    the teacher, ``2^k nfe`` (default the larger of 8 and ``2 nfe``; a pd student run as the
    teacher with its own steps continues the halving)."""
    teacher_dir, run_dir = Path(teacher_dir), Path(run_dir)
    teacher_nfe = max(8, 2 * nfe) if teacher_nfe is None else teacher_nfe
    _check(method, steps, nfe, teacher_dir, run_dir)
    if method == "pd" and (teacher_nfe <= nfe or teacher_nfe % nfe
                           or (teacher_nfe // nfe) & (teacher_nfe // nfe - 1)):
        raise InterpolantError(f"the teacher's steps ({teacher_nfe}) must be --nfe ({nfe}) "
                               "times a power of two, at least twice --nfe")
    teacher = load_trained(teacher_dir)
    if getattr(teacher.config, "process", "gaussian") != "gaussian":
        raise InterpolantError(f"{teacher_dir} is a {teacher.config.process} token run; "
                               "few-step students need a run on a Gaussian path")
    x, _ = load_data(teacher.config)
    net, config, copied = _student_net(teacher, method, x, model, model_options)
    fs.loop.check_student(net, x[:2])
    den, path = teacher.denoiser, teacher.denoiser.path
    prediction = den.prediction if copied else None
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    common = dict(steps=steps, batch_size=batch_size, lr=lr or LR[method], generator=g)
    classes = getattr(net, "config", {}).get("num_classes") if copied else None
    spec: dict[str, Any] = {"method": method, "unconditional": classes is not None}
    nfes, grid = [1, 2, 4], student_grid(path)
    start, wall = time.process_time(), time.perf_counter()
    sigma_data = float(x.std())
    if method in CONSISTENCY:
        extra = (dict(s1=160) if method == "ct" else dict(n=18, prediction=prediction)
                 if method == "scott" else dict(n=18, solver="heun", prediction=prediction))
        if method != "ct" and prediction is not None:
            sigma_data = BOUNDARY
        cm = CONSISTENCY[method](path if method == "ct" else den, net, x,
                                 sigma_data=sigma_data, **extra, **common)
        spec["consistency"] = {"sigma_data": sigma_data, "prediction": cm.prediction}
        net, config = cm.net, replace(config, target="x0")
        losses = cm.losses
    elif method == "pd":
        target = den.prediction if copied and den.prediction in ("v", "x0") else "v"
        rounds = (teacher_nfe // nfe).bit_length() - 1
        common["steps"] = max(steps // rounds, 1)
        student = fs.progressive_distillation(den, net, x, teacher_steps=teacher_nfe,
                                              rounds=rounds, prediction=target,
                                              grid=grid, **common)
        net, config, losses, nfes = student.denoiser.model, replace(config, target=target), \
            student.losses, [nfe]
    elif method == "reflow":
        noise = torch.randn((pairs, *x.shape[1:]), generator=g) * float(path.sigma(1.0))
        student = fs.reflow(fs.reflow_pairs(den, noise), net, **common)
        config = replace(config, path="linear", target="velocity")
        losses = student.losses
    elif method == "mlcm":
        student = fs.multistep_distillation(den, net, x, segments=nfe, n=8, solver="heun",
                                            prediction=prediction or "v",
                                            grid=grid, **common)
        net, config = student.denoiser.model, replace(config, target=student.denoiser.prediction)
        losses, nfes = student.losses, [nfe]
    else:
        student = fs.mmd_finetune(Denoiser(net, path, den.prediction), x, nfe=nfe,
                                  grid=grid, **common)
        config, losses, nfes = replace(config, target=den.prediction), student.losses, [nfe]
    trained = None if method in CONSISTENCY else student.trained_grid
    if method == "reflow":
        path, grid = student.path, student.grid
    grids = {k: trained if trained is not None and trained.numel() == k + 1
             else make_grid(grid, path, k) for k in nfes}
    info = {"method": method, "teacher": str(teacher_dir.resolve()), "solver": SOLVER[method],
            "nfes": nfes, "grid": grid, "steps": steps,
            "cpu_seconds": round(time.process_time() - start, 2),
            "seconds": round(time.perf_counter() - wall, 2), "sigma_data": sigma_data}
    _write(run_dir, config, net, spec, info, losses, list(x.shape[1:]), steps,
           tuned_choices(SOLVER[method], grids))
    return info


def _write(run_dir: Path, config: Any, net: nn.Module, spec: dict, info: dict,
           losses: list[float], shape: list[int], steps: int, tuned: dict[str, Any]) -> None:
    """Write the student run into a temporary sibling, then move it into place."""
    from ..training.checkpoint import save_checkpoint

    tmp = run_dir.with_name(f".{run_dir.name}.distill-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        write_json(tmp / CONFIG_FILE, config.to_json())
        write_json(tmp / STUDENT_FILE, info)
        write_json(tmp / TUNED_FILE, {"choices": tuned})
        manifest = {"model": getattr(net, "config", None), "arch": getattr(net, "arch", None),
                    "data_shape": shape, "student": spec}
        save_checkpoint(tmp / "checkpoints", steps, net, config=manifest)
        every = max(len(losses) // 500, 1)
        (tmp / "metrics.jsonl").write_text("".join(
            json.dumps({"step": k + 1, "loss": v}) + "\n"
            for k, v in enumerate(losses) if k % every == 0 or k + 1 == len(losses)))
        os.replace(tmp, run_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
