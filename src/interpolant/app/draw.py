"""Drawing samples for the command line: an NFE budget kept or refused, one stream per sample.

Budget. ``--nfe B`` is an upper bound on network evaluations. The solver's steps are the most
whose run spends at most ``B``, found by running the solver on a free stand-in network (a
data prediction of zero, one 1x1 sample, the run's own path and grid), because evaluations
per step differ between solvers and between a solver's first, middle and last steps
(warm-ups, a first step from pure noise). A budget below the solver's smallest run is refused
with the smallest one it can keep. Solvers that choose their own steps (``dpm-adaptive``)
run under a guard that stops them, with a clear error, when they would spend more than ``B``.
``sample``, ``eval`` and ``demo`` all plan through :func:`plan_steps`.

Randomness. Sample ``i`` draws its starting noise and every later noise from its own
``torch.Generator`` seeded from ``(seed, i)``, so it is the same sample whether 10 or 1,000
were drawn (the labels of a class-conditional run cycle ``i mod K``, also independent of
``n``).

Batches and processes. The samples go through the network in batches of ``batch`` (default
:data:`BATCH`): batch ``c`` holds samples ``c * batch`` to ``(c + 1) * batch - 1``. Under
``torchrun`` (a process group of ``W`` ranks) rank ``r`` draws the batches ``c = r, r + W,
...`` and every rank receives all of them (``all_gather``), so ``W`` processes return bitwise
the samples one process returns with the same ``batch`` (and threads per process): every
sample is computed in the same batch, from the same generators, by the same code. The NFE
reported is the most any batch spent, the seconds the longest any rank took.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..errors import InterpolantError
from ..predictions import Denoiser
from ..solvers import trajectory
from ..training import distributed

BATCH = 256
"""Samples per network batch, by default: a bound on memory, and the unit ranks share."""


class Draw(NamedTuple):
    """Samples drawn at a budget: the NFE spent, the solver steps and the seconds taken."""

    samples: Tensor
    nfe: int
    steps: int
    seconds: float


def check_count(n: Any) -> int:
    """Refuse a sample count that is not a positive integer."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InterpolantError(f"the number of samples (--n) must be a positive integer, got "
                               f"{n!r}")
    return n


def check_budgets(budgets: Sequence[Any]) -> list[int]:
    """Refuse an empty list of NFE budgets or one that is not a positive integer."""
    budgets = list(budgets)
    if not budgets:
        raise InterpolantError("no NFE budget given; pass --nfe with at least one positive "
                               "integer, e.g. --nfe 5,10,20")
    bad = [b for b in budgets if isinstance(b, bool) or not isinstance(b, int) or b < 1]
    if bad:
        raise InterpolantError(f"NFE budgets (--nfe) must be positive integers, got {bad}")
    return budgets


def _spent(solver: str, steps: int, path: Any) -> int | None:
    """NFE of one run of ``solver`` with ``steps`` on a free stand-in network; ``None`` if the
    solver refuses that many steps."""
    stand_in = Denoiser(lambda x, t, cond: torch.zeros_like(x), path, prediction="x0")
    state = None
    try:
        for state in trajectory(stand_in, torch.zeros(1, 1), solver, steps,
                                generator=torch.Generator().manual_seed(0)):
            pass
    except InterpolantError:
        return None
    return None if state is None else int(state.nfe)


def plan_steps(solver: str, budget: int, path: Any, max_first: int = 8) -> int:
    """The most steps of ``solver`` whose run spends at most ``budget`` NFE on ``path``.

    Raises :class:`InterpolantError` naming the smallest budget the solver can keep when
    ``budget`` is below it.
    """
    first = next((s for s in range(1, max_first + 1) if _spent(solver, s, path) is not None),
                 None)
    if first is None:
        raise InterpolantError(f"solver {solver!r} did not run on this path with up to "
                               f"{max_first} steps")
    least = _spent(solver, first, path)
    assert least is not None
    if least > budget:
        raise InterpolantError(
            f"{solver} spends at least {least} NFE ({first} step{'s' if first > 1 else ''}), "
            f"more than the budget of {budget}; give --nfe {least} or more, or a solver with "
            "one evaluation per step (ddim, euler, dpm++2m, unipc)")
    def keeps(steps: int) -> bool:
        spent = _spent(solver, steps, path)
        return spent is not None and spent <= budget

    lo, hi = first, max(first + 1, budget)  # lo keeps the budget
    while keeps(hi) and hi < 16 * budget:  # solvers spending less than one NFE per step
        lo, hi = hi, 2 * hi
    while hi - lo > 1:  # the last step count that keeps it lies in [lo, hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if keeps(mid) else (lo, mid)
    return lo


class _Budgeted:
    """A denoiser that refuses to be evaluated more than ``budget`` times in one run."""

    def __init__(self, denoiser: Any, budget: int, solver: str) -> None:
        self._denoiser, self._budget, self._solver, self.spent = denoiser, budget, solver, 0

    def __getattr__(self, name: str) -> Any:  # path, parameter_dtypes, ...
        return getattr(self._denoiser, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.spent >= self._budget:
            raise InterpolantError(
                f"{self._solver} needed more than the budget of {self._budget} NFE (it chooses "
                "its own steps); give a larger --nfe or a solver with fixed steps")
        self.spent += 1
        return self._denoiser(*args, **kwargs)


def generators(seed: int, n: int, start: int = 0) -> list[torch.Generator]:
    """One generator per sample ``i = start, ..., start + n - 1``, seeded from ``(seed, i)``
    (SeedSequence mixing, so no two pairs share a stream)."""
    out = []
    for i in range(start, start + n):
        words = np.random.SeedSequence((seed & (2**64 - 1), i)).generate_state(2, np.uint32)
        out.append(torch.Generator().manual_seed((int(words[0]) << 31) ^ int(words[1])))
    return out


def check_batch(batch: Any) -> int:
    """Refuse a batch size (``--batch``) that is not a positive integer."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InterpolantError(f"the batch size (--batch) must be a positive integer, got "
                               f"{batch!r}")
    return batch


def shard(n: int, batch: int, rank: int = 0, world: int = 1) -> list[tuple[int, int]]:
    """The ``[lo, hi)`` sample ranges of the batches that ``rank`` of ``world`` draws: batch
    ``c`` (samples ``c * batch`` up to ``n``) goes to rank ``c mod world``."""
    starts = range(0, n, batch)
    return [(lo, min(n, lo + batch)) for c, lo in enumerate(starts) if c % world == rank]


def batches_here(n: int, batch: int | None = None) -> int:
    """How many of the batches of ``n`` samples this rank draws (:func:`shard`)."""
    return len(shard(n, BATCH if batch is None else batch, *distributed.rank_world()))


def draw(den: Denoiser, solver: str, budget: int, n: int, seed: int, shape: tuple[int, ...],
         num_classes: int | None, labels: Tensor | None = None,
         batch: int | None = None, grid: Tensor | None = None, **options: Any) -> Draw:
    """``n`` samples with ``solver`` within ``budget`` NFE, in batches of ``batch``, shared
    among the ranks of a process group (see the module docstring); every rank gets all.

    Class-conditional networks get ``labels`` (int64 ``(n,)``), by default ``0, 1, ..., K-1``
    in turn. ``batch=None`` means :data:`BATCH`. An explicit ``grid`` with the solver's
    ``options`` (a tuned choice) replaces the planned steps; the budget still guards the run.
    """
    check_count(n)
    batch = check_batch(BATCH if batch is None else batch)
    steps = plan_steps(solver, budget, den.path) if grid is None else grid.numel() - 1
    if labels is None and num_classes is not None:
        labels = torch.arange(n) % num_classes
    rank, world = distributed.rank_world()
    start = time.perf_counter()
    mine = []
    for lo, hi in shard(n, batch, rank, world):
        cond = None if labels is None else labels[lo:hi]
        x, nfe = _draw_range(den, solver, budget, steps, seed, shape, lo, hi, cond, grid,
                             **options)
        mine.append((lo, x.cpu(), nfe))
    seconds = time.perf_counter() - start
    gathered = distributed.all_gather_objects((mine, seconds))
    parts = sorted((part for ranks_parts, _ in gathered for part in ranks_parts),
                   key=lambda part: part[0])
    samples = torch.cat([x for _, x, _ in parts])
    nfe = max(spent for _, _, spent in parts)
    return Draw(samples, nfe, steps, max(s for _, s in gathered))


def _draw_range(den: Denoiser, solver: str, budget: int, steps: int, seed: int,
                shape: tuple[int, ...], lo: int, hi: int,
                labels: Tensor | None, grid: Tensor | None = None,
                **options: Any) -> tuple[Tensor, int]:
    """Samples ``lo, ..., hi - 1`` in one batch, each from its own generator: ``(x, NFE)``."""
    gens = generators(seed, hi - lo, start=lo)
    sigma = float(den.path.sigma(1.0))
    x1 = torch.stack([torch.randn(shape, generator=g) for g in gens]) * sigma
    guarded = _Budgeted(den, budget, solver)
    state = None
    with torch.no_grad():
        for state in trajectory(guarded, x1, solver, steps, grid=grid, cond=labels,
                                generator=gens, **options):
            pass
    assert state is not None
    return state.x, int(state.nfe)
