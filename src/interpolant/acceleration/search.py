"""The solver, its options and its time grid chosen for a network-evaluation budget.

After AutoDiffusion (Li et al. 2023: search the time steps and the model for a budget) and
USF / S^3 (Liu et al. 2024; Frankel et al. 2024: search solver and schedule against a fine
reference of the model itself). Given the user's denoiser, starting states and an NFE budget:

1. reference: ``x_ref = Phi_fine(x_start)``, a high-step solve of the same denoiser from the same
   starts (DPM-Solver++(3M), third order, ``reference_steps`` log-SNR steps);
2. every candidate solver (its steps fixed by the budget: the most steps with
   ``solver.max_nfe(steps) <= nfe``) on every grid of a parametric family (log-SNR, uniform,
   quadratic, Karras with ``rho`` in ``RHOS``) is scored by
   ``err = sqrt(mean_n |x_n - x_ref,n|^2 / mean_n |x_ref,n|^2)``;
3. the interior points of the best grid are refined by coordinate descent in ``lam``: each
   point in turn moves a fraction of the way to a neighbour (0.3, halved every sweep) if that
   lowers the error.

The default (``dpm++2m`` on the log-SNR grid) is always scored, so the result is never worse
than it on the search set. Everything is deterministic: ``seed`` only draws the starts when
``x_start`` is a function of a generator. The result holds the explicit grid, so sampling with
``ip.sample(den, x, **result.sample_kwargs())`` reproduces it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .. import grids
from ..errors import InterpolantError
from ..solvers import get, sample, solver_name
from ..solvers.sampling import DEFAULT_SOLVER

Candidate = tuple[str, dict[str, Any]]
DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    ("dpm++2m", {}), ("dpm++2m", {"solver_type": "heun"}), ("dpm++3m", {}),
    ("dpm++3m", {"third_order": "consistent"}), ("unipc", {}), ("unipc", {"order": 3}),
    ("unipc", {"variant": "bh1"}), ("deis", {"order": 2}), ("deis", {}), ("ipndm", {}),
    ("dpm-v3", {}),
)
RHOS = (1.5, 2.0, 3.0, 5.0, 7.0, 10.0, 20.0)


@dataclass(frozen=True)
class SearchResult:
    """The best ``solver`` (a name), its ``options`` and explicit ``grid`` for ``nfe``
    evaluations; ``error`` and ``default_error`` (of ``dpm++2m`` on the log-SNR grid) are
    relative errors against the fine reference on the search starts; ``tried`` lists every
    ``(label, error)`` scored, in order."""

    solver: str
    options: dict[str, Any]
    grid: Tensor
    nfe: int
    error: float
    default_error: float
    tried: list[tuple[str, float]] = field(default_factory=list, repr=False)

    def sample_kwargs(self) -> dict[str, Any]:
        """Arguments for :func:`interpolant.sample` that reproduce this choice."""
        return {"solver": self.solver, "grid": self.grid.clone(), **self.options}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable record of the choice (for a run directory; ``from_dict`` reads
        it back)."""
        return {"solver": self.solver, "options": dict(self.options), "nfe": self.nfe,
                "grid": self.grid.tolist(), "error": self.error,
                "default_error": self.default_error}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SearchResult:
        try:
            return cls(str(record["solver"]), dict(record["options"]),
                       grids.check(torch.tensor(record["grid"], dtype=torch.float64)),
                       int(record["nfe"]), float(record["error"]),
                       float(record["default_error"]))
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, InterpolantError):
                raise
            raise InterpolantError(f"not a saved search result: {err}") from None


def steps_for(name: str, options: dict[str, Any], nfe: int) -> int | None:
    """The most steps of solver ``name`` whose run spends at most ``nfe`` evaluations
    (``None`` if none does, or the solver picks its own steps)."""
    solver = get(name, **options)
    if solver.own_grid or solver.max_nfe(max(solver.min_steps, 1)) is None:
        return None
    best = None
    for steps in range(max(solver.min_steps, 1), nfe + 1):
        if solver.max_nfe(steps) <= nfe:
            best = steps
    return best


def family(path: Any, steps: int, t_start: float, t_end: float | None,
           names: Sequence[str] = ("logsnr", "uniform", "quadratic"),
           rhos: Sequence[float] = RHOS) -> list[tuple[str, Tensor]]:
    """The parametric grid family scored in step 2: ``(label, grid)``; the log-SNR grid first."""
    out = [(name, grids.make(name, path, steps, t_start, t_end))
           for name in dict.fromkeys(("logsnr", *names))]
    out += [(f"karras(rho={rho:g})", grids.make("karras", path, steps, t_start, t_end, rho=rho))
            for rho in rhos]
    return out


def search(
    denoiser: Any,
    x_start: Tensor | Callable[[torch.Generator], Tensor],
    nfe: int,
    *,
    candidates: Sequence[Candidate] | None = None,
    grid_names: Sequence[str] = ("logsnr", "uniform", "quadratic"),
    rhos: Sequence[float] = RHOS,
    refine: int = 3,
    reference_steps: int | None = None,
    t_start: float = 1.0,
    t_end: float | None = None,
    cond: Any = None,
    seed: int = 0,
) -> SearchResult:
    """Search solver, options and time grid for ``nfe`` network evaluations (module docstring).

    Args:
        denoiser: the user's denoiser (any object :func:`interpolant.sample` accepts).
        x_start: starting states, or a function of a ``torch.Generator`` returning them.
        nfe: the budget of network evaluations per sample.
        candidates: ``(solver name, options)`` pairs (default ``DEFAULT_CANDIDATES``); those
            that cannot run within ``nfe`` are skipped.
        grid_names, rhos: the grid family (named grids, and Karras grids of these ``rho``).
        refine: sweeps of coordinate descent on the best grid (0: none).
        reference_steps: steps of the fine reference (default ``max(200, 20 nfe)``).
        t_start, t_end, cond: as for :func:`interpolant.sample`.
        seed: seeds the generator handed to ``x_start`` when it is a function.
    """
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise InterpolantError(f"nfe must be a positive integer, got {nfe!r}")
    x = x_start(torch.Generator().manual_seed(seed)) if callable(x_start) else x_start
    path = denoiser.path
    pool = [(DEFAULT_SOLVER, {})] + [(n, dict(o)) for n, o in (candidates or DEFAULT_CANDIDATES)]
    runnable = [(n, o, steps_for(n, o, nfe)) for n, o in pool]
    if runnable[0][2] is None:
        raise InterpolantError(f"a budget of nfe={nfe} is below the minimum of {DEFAULT_SOLVER}")
    runnable = [r for r in runnable if r[2] is not None]
    ref_steps = reference_steps or max(200, 20 * nfe)
    kw = {"t_start": t_start, "cond": cond}
    with torch.no_grad():
        ref = sample(denoiser, x, "dpm++3m", steps=ref_steps, grid="logsnr", t_end=t_end,
                     third_order="consistent", **kw).double()
    scale = float(ref.pow(2).mean())

    def score(name: str, options: dict[str, Any], grid: Tensor) -> float:
        with torch.no_grad():
            out = sample(denoiser, x, name, grid=grid, **kw, **options).double()
        err = math.sqrt(float((out - ref).pow(2).mean()) / max(scale, 1e-300))
        return err if math.isfinite(err) else math.inf

    tried: list[tuple[str, float]] = []
    best: tuple[float, str, dict[str, Any], Tensor] | None = None
    default_error = math.inf
    for name, options, steps in runnable:
        for label, grid in family(path, steps, t_start, t_end, grid_names, rhos):
            err = score(name, options, grid)
            tried.append((f"{name}{_fmt(options)} {label} ({steps} steps)", err))
            if name == DEFAULT_SOLVER and not options and label == "logsnr":
                default_error = min(default_error, err)
            if best is None or err < best[0]:
                best = (err, name, options, grid)
    assert best is not None
    err, name, options, grid = best
    err, grid = _refine(lambda g: score(name, options, g), grid, err, path, refine, tried)
    return SearchResult(solver_name(get(name, **options)), options, grid, nfe, err,
                        default_error, tried)


def _refine(score: Callable[[Tensor], float], grid: Tensor, err: float, path: Any, sweeps: int,
            tried: list[tuple[str, float]]) -> tuple[float, Tensor]:
    """Coordinate descent on the interior points of ``grid`` in ``lam`` (ends fixed)."""
    lam = path.lam(grid)
    frac = 0.3
    for sweep in range(sweeps):
        for i in range(1, grid.numel() - 1):
            for j in (i - 1, i + 1):
                if not (math.isfinite(lam[j]) and math.isfinite(lam[i])):
                    continue
                trial_lam = lam.clone()
                trial_lam[i] = lam[i] + frac * (lam[j] - lam[i])
                trial = grid.clone()
                trial[i] = path.t_of_lam(trial_lam[i : i + 1])[0]
                if not bool(torch.all(trial[1:] < trial[:-1])):
                    continue
                trial_err = score(trial)
                tried.append((f"refine sweep {sweep} point {i} -> {j}", trial_err))
                if trial_err < err:
                    err, grid, lam = trial_err, trial, trial_lam
        frac /= 2
    return err, grid


def _fmt(options: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in options.items()) + ")" if options else ""
