"""What every solver shares: the state it yields, its noise source, its registry.

A solver is an immutable value (a frozen dataclass of its options). Its :meth:`Solver.run`
is a generator: given the model function, the starting state, the grid and the path, it
computes its coefficient table once (float64, on the CPU) and then yields a
:class:`State` after every step. All sampling state lives in local variables of that
generator, so one solver value may serve many threads at once.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..paths import GaussianPath


class State(NamedTuple):
    """The sampler's state after ``step`` steps: ``x`` at time ``t``.

    ``x0`` is the last data prediction the solver made (``None`` if it made none) and
    ``nfe`` the network evaluations spent so far in this run.
    """

    step: int
    t: float
    x: Tensor
    x0: Tensor | None
    nfe: int


def combine(c_x: float, x: Tensor | None, weights: Sequence[float], outs: Sequence[Tensor]
            ) -> Tensor:
    """``c_x x + sum_j w_j M_j`` (``outs`` newest first; ``x = None`` drops the first term):
    one multiply, then one fused in-place add per nonzero weight (in place only on the fresh
    product, never on ``x`` or a model output). Every solver combines its outputs here."""
    if x is None:
        j = next(j for j, w in enumerate(weights) if w != 0.0)
        y = torch.mul(outs[j], weights[j])
        weights, outs = weights[j + 1:], outs[j + 1:]
    else:
        y = torch.mul(x, c_x)
    for w, m in zip(weights, outs):
        if w != 0.0:
            y.add_(m, alpha=w)
    return y


def table_for(solver: Any, ts: Tensor, path: Any) -> Any:
    """``solver.table(ts, path)``, computed once per ``(solver, path, grid)`` and kept.

    Solvers and paths are immutable values and tables are tuples of floats, so the cache
    (keyed on value, ``functools.lru_cache``, thread-safe) cannot change a result. Unhashable
    solvers or paths are served uncached.
    """
    times = tuple(ts.tolist())
    try:
        return _table(solver, path, times)
    except TypeError as err:
        if "unhashable" not in str(err):
            raise
        return solver.table(ts, path)


@functools.lru_cache(maxsize=256)
def _table(solver: Any, path: Any, times: tuple[float, ...]) -> Any:
    return solver.table(torch.tensor(times, dtype=torch.float64), path)


class Model:
    """The network as a solver sees it: ``model(x, t, target)``, counting its calls.

    ``t`` is a Python float (one time for the whole batch) or a tensor of shape ``(B,)``.
    ``target`` is one of ``eps, x0, v, velocity, score``. The output comes in the dtype of
    ``x`` (a low-precision one is upcast). Made fresh for every run.
    """

    __slots__ = ("_fn", "nfe")

    def __init__(self, fn: Callable[[Tensor, Any, str], Tensor]) -> None:
        self._fn = fn
        self.nfe = 0

    def __call__(self, x: Tensor, t: float | Tensor, target: str) -> Tensor:
        self.nfe += 1
        out = self._fn(x, t, target)
        return out if out.dtype == x.dtype else out.to(x.dtype)


class Noise:
    """Standard normal draws shaped like the state.

    ``generator`` is ``None`` (torch's global generator), one ``torch.Generator``, or one
    generator per sample, so that a sample does not depend on the batch it was drawn in.
    """

    __slots__ = ("_gen",)

    def __init__(self, generator: torch.Generator | Sequence[torch.Generator] | None) -> None:
        if generator is not None and not isinstance(generator, torch.Generator):
            generator = list(generator)
            if not all(isinstance(g, torch.Generator) for g in generator):
                raise InterpolantError(
                    "generator must be a torch.Generator or a sequence of them (one per sample)"
                )
        self._gen = generator

    def like(self, x: Tensor) -> Tensor:
        gen = self._gen
        if gen is None:
            return torch.randn_like(x)
        if isinstance(gen, torch.Generator):
            return torch.randn(x.shape, generator=gen, dtype=x.dtype, device=gen.device).to(
                x.device
            )
        if len(gen) != x.shape[0]:
            raise InterpolantError(
                f"got {len(gen)} generators for a batch of {x.shape[0]} samples; pass one each"
            )
        return torch.stack(
            [torch.randn(x.shape[1:], generator=g, dtype=x.dtype, device=g.device) for g in gen]
        ).to(x.device)


@dataclasses.dataclass(frozen=True)
class Solver:
    """Base of all solvers. Subclasses are frozen dataclasses whose fields are options.

    Class attributes (the solver's metadata): ``needs_gaussian`` (uses ``alpha``, ``sigma`` or
    the log-SNR, so it needs a :class:`~interpolant.paths.GaussianPath`), ``min_steps`` (the
    shortest grid it accepts), ``nfe_per_step`` and ``warmup_nfe`` (see :meth:`max_nfe`),
    ``multistep`` (it uses the history of earlier steps, so it cannot be run one step at a
    time), ``own_grid`` (it picks its own steps between the ends of the grid it receives),
    ``invertible`` (it is checked to run an increasing grid, from data towards noise, with the
    same tables: opt-in, so a new solver is refused an inversion until its author checks it)
    and the property ``stochastic`` (it draws fresh noise with its current options, so it
    cannot invert).
    """

    needs_gaussian: ClassVar[bool] = True
    min_steps: ClassVar[int] = 1
    nfe_per_step: ClassVar[int] = 1
    warmup_nfe: ClassVar[int] = 0
    multistep: ClassVar[bool] = False
    own_grid: ClassVar[bool] = False
    invertible: ClassVar[bool] = False

    @property
    def stochastic(self) -> bool:
        """Whether a run draws fresh noise (with these options)."""
        return False

    def max_nfe(self, steps: int) -> int | None:
        """The network evaluations of a run of ``steps`` steps at most (``None`` where the
        solver's own step-size control decides): ``nfe_per_step * steps + warmup_nfe``. A step
        from pure noise or to clean data may cost less (one evaluation)."""
        return self.nfe_per_step * steps + self.warmup_nfe

    def run(
        self, model: Model, x: Tensor, ts: Tensor, path: GaussianPath, noise: Noise
    ) -> Iterator[State]:
        """Yield the state after every step of the grid ``ts`` (float64; decreasing when
        sampling, increasing when inverting)."""
        raise NotImplementedError

    #: A solver with a coefficient table (the fast path) also writes its step in the paper's
    #: own form, ``paper_run(model, x, ts, path, noise)``; the tests check that the two agree
    #: step by step. ``None``: ``run`` itself is written in the paper's form.
    paper_run: ClassVar[Callable[..., Iterator[State]] | None] = None

    def validate(self, ts: Tensor, path: Any) -> None:
        """Raise :class:`InterpolantError` if this solver cannot run on ``ts`` and ``path``."""
        steps = ts.numel() - 1
        if steps < self.min_steps:
            raise InterpolantError(
                f"solver {solver_name(self)!r} needs at least {self.min_steps} steps, got a grid "
                f"of {steps}; use more steps or a solver of lower order"
            )
        if self.needs_gaussian and not isinstance(path, GaussianPath):
            raise InterpolantError(
                f"solver {solver_name(self)!r} needs a Gaussian path (alpha, sigma, log-SNR); "
                f"{type(path).__name__} is not one. Use 'euler' or 'heun', which need only "
                "the velocity"
            )
        if steps >= 1 and ts[-1] > ts[0]:
            self.check_invertible()

    def check_invertible(self) -> None:
        """Raise :class:`InterpolantError` unless this solver can run an increasing grid."""
        name = solver_name(self)
        if self.stochastic:
            raise InterpolantError(
                f"solver {name!r} draws fresh noise with these options, so it cannot invert "
                "(run from data to noise) deterministically; use a deterministic solver such "
                "as 'ddim' (eta=0), 'dpm++2m', 'unipc' or 'heun', or "
                "interpolant.inversion.noise_maps for DDPM's edit-friendly noise"
            )
        if not self.invertible:
            raise InterpolantError(
                f"solver {name!r} cannot integrate an increasing grid (from data to noise); "
                "invert with 'ddim', 'dpm++2m', 'dpm3', 'unipc', 'deis' or 'heun'"
            )


_REGISTRY: dict[str, Callable[..., Solver]] = {}


def register(name: str, **defaults: Any) -> Callable[[type[Solver]], type[Solver]]:
    """Class decorator: make ``cls(**defaults, **options)`` available as ``name``."""

    def deco(cls: type[Solver]) -> type[Solver]:
        if name in _REGISTRY:
            raise RuntimeError(f"solver name {name!r} registered twice")

        def factory(**options: Any) -> Solver:
            solver = cls(**{**defaults, **options})
            object.__setattr__(solver, "_registry_name", name)
            return solver

        factory.solver_class = cls  # type: ignore[attr-defined]
        factory.defaults = defaults  # type: ignore[attr-defined]
        _REGISTRY[name] = factory
        return cls

    return deco


def available() -> list[str]:
    """Names of all registered solvers, sorted."""
    return sorted(_REGISTRY)


def get(name: str | Solver, **options: Any) -> Solver:
    """A solver by name with its options, e.g. ``get("ddim", eta=0.5)``.

    A :class:`Solver` value is returned as is (options must then be empty).
    """
    if isinstance(name, Solver):
        if options:
            raise InterpolantError("pass options to the solver's constructor, not beside it")
        return name
    if not isinstance(name, str) or name not in _REGISTRY:
        raise unknown_name("solver", name, _REGISTRY)
    factory = _REGISTRY[name]
    cls = factory.solver_class  # type: ignore[attr-defined]
    accepted = [f.name for f in dataclasses.fields(cls) if f.init]
    fixed = factory.defaults  # type: ignore[attr-defined]
    pinned = [f"{k}={fixed[k]!r}" for k in sorted(set(options) & set(fixed))]
    if pinned:
        raise InterpolantError(
            f"solver {name!r} fixes {', '.join(pinned)}; choose another solver to change it"
        )
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        allowed = ", ".join(a for a in accepted if a not in fixed) or "none"
        raise InterpolantError(
            f"solver {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are: {allowed}"
        )
    return factory(**options)


def solver_name(solver: Solver) -> str:
    """The registry name a solver was made under (or its class name)."""
    return getattr(solver, "_registry_name", type(solver).__name__.lower())
