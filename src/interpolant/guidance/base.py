"""What every guidance method shares: a denoiser built from denoisers.

A guided denoiser is itself a denoiser: it has ``.path``, is called as
``g(x, t, cond, target)`` with any target of :data:`interpolant.predictions.TARGETS`, and
counts its network evaluations, so every solver and every path serve it unchanged.

NFE convention. ``g.nfe`` counts network evaluations of the whole batch, the unit the guidance
papers report: a classifier-free guidance step runs the network once on ``2B`` rows (the
conditional and unconditional branches concatenated) and counts **2**; a step that needs only
the conditional branch counts 1; autoguidance (two networks) counts 2. Nested guidance
multiplies: an anagram of two views over CFG counts 4 per call. ``g.calls`` counts the calls
of the inner denoisers (the batched CFG call is 1), which keep their own counters.
The solver's ``State.nfe`` counts calls of ``g`` (solver evaluations), not network passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..labels import NULL_LABEL
from ..paths import check_time
from ..predictions import TARGETS, convert
from ..solvers.exponential import PURE_NOISE_LAM

__all__ = ["Guided", "check_callable", "check_scale", "labels_of", "new_run", "repeated",
           "stacked", "with_null"]


def check_scale(scale: Any, name: str = "scale") -> float:
    """A finite float, or an :class:`InterpolantError` saying so."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise InterpolantError(f"{name} must be a number, got {type(scale).__name__}") from None
    if not math.isfinite(value):
        raise InterpolantError(f"{name} must be finite, got {value}; pass e.g. {name}=2.0")
    return value


def check_callable(fn: Any, name: str) -> Any:
    """``fn`` if it is callable, else an :class:`InterpolantError` naming it."""
    if not callable(fn):
        raise InterpolantError(f"{name} must be callable, got {type(fn).__name__}")
    return fn


def check_unit(value: Any, name: str) -> float:
    """A number in ``[0, 1]``."""
    value = check_scale(value, name)
    if not 0.0 <= value <= 1.0:
        raise InterpolantError(f"{name} must lie in [0, 1], got {value}")
    return value


def labels_of(cond: Any, batch: int, method: str) -> Tensor:
    """The int64 class labels ``(B,)`` in ``cond`` (a tensor or ``{"labels": ...}``)."""
    labels = cond.get("labels") if isinstance(cond, Mapping) else cond
    if labels is None:
        raise InterpolantError(
            f"{method} needs class labels: pass cond=labels (int64, shape ({batch},)) to "
            "ip.sample"
        )
    if (not isinstance(labels, Tensor) or labels.shape != (batch,)
            or labels.dtype not in (torch.int64, torch.int32)):
        got = (f"{labels.dtype} of shape {tuple(labels.shape)}" if isinstance(labels, Tensor)
               else type(labels).__name__)
        raise InterpolantError(
            f"{method}: cond must be int64 class labels of shape ({batch},), got {got}"
        )
    return labels.long()


def with_null(cond: Any, labels: Tensor) -> Any:
    """``cond`` with every label replaced by ``NULL_LABEL`` (the unconditional branch)."""
    null = torch.full_like(labels, NULL_LABEL)
    return {**cond, "labels": null} if isinstance(cond, Mapping) else null


def stacked(*conds: Any) -> Any:
    """Batches of ``cond`` (tensors, ``None`` or mappings of them) stacked into one batch."""
    first = conds[0]
    if isinstance(first, Tensor):
        return torch.cat(conds)
    if isinstance(first, Mapping):
        return {k: stacked(*(c[k] for c in conds)) for k in first}
    if all(c is None for c in conds):
        return None
    raise InterpolantError(f"cannot batch a cond of type {type(first).__name__}; use tensors")


def repeated(t: Tensor | float, n: int) -> Tensor | float:
    """The time of ``n`` stacked copies of a batch."""
    return t if isinstance(t, float) else t.repeat(n)


def new_run(last: tuple[float, int] | None, t: Tensor | float,
            x: Tensor) -> tuple[bool, tuple[float, int]]:
    """For the few methods that follow a sampling run across calls: whether ``(t, x)`` starts
    a new run after a call keyed ``last`` (a larger time or another batch size), and its key.
    A run is a sequence of calls with non-increasing ``t``, as every solver makes."""
    key = (t if isinstance(t, float) else float(t.max()), x.shape[0])
    return last is None or key[0] > last[0] or key[1] != last[1], key


def path_of(den: Any, name: str) -> Any:
    if not callable(den) or not hasattr(den, "path"):
        raise InterpolantError(
            f"{name} must be a denoiser (interpolant.Denoiser or a guided one), "
            f"got {type(den).__name__}"
        )
    return den.path


class Guided:
    """Base of the guidance transforms: one or more denoisers in, one denoiser out.

    Subclasses implement ``_guide(x, t, cond, target)`` (``t`` a float or ``(B,)``) and
    evaluate their denoisers through :meth:`_eval`, which keeps the NFE count.
    """

    def __init__(self, **denoisers: Any) -> None:
        paths = {name: path_of(den, name) for name, den in denoisers.items()}
        first, *rest = paths.items()
        for name, path in rest:
            if path != first[1]:
                raise InterpolantError(
                    f"{first[0]} is on {first[1]!r} but {name} is on {path!r}; guided and "
                    "guiding denoisers must share one path (train or wrap them on the same one)"
                )
        self.path = first[1]
        self._inner = tuple(denoisers.values())
        self.nfe = 0
        self.calls = 0

    def __call__(self, x: Tensor, t: Tensor | float, cond: Any = None,
                 target: str = "x0") -> Tensor:
        """The guided ``target`` prediction at ``(x, t)``."""
        if target not in TARGETS:
            raise unknown_name("prediction target", target, TARGETS)
        return self._guide(x, check_time(t, x), cond, target)

    def _guide(self, x: Tensor, t: Tensor | float, cond: Any, target: str) -> Tensor:
        raise NotImplementedError

    def _eval(self, den: Any, x: Tensor, t: Tensor | float, cond: Any, target: str,
              passes: int = 1) -> Tensor:
        """One call of ``den`` on ``passes`` stacked copies of the batch. It costs ``passes``
        times the passes ``den`` itself counts for it (1 for a network; 2 for a CFG inside
        an anagram, ...), so nested guidance counts every network pass once."""
        before = getattr(den, "nfe", None)
        out = den(x, t, cond, target)
        inner = den.nfe - before if isinstance(before, int) else 1
        self.nfe += passes * inner
        self.calls += 1
        return out

    def _convert(self, out: Tensor, src: str, dst: str, x: Tensor, t: Tensor | float) -> Tensor:
        return out if src == dst else convert(out, src, dst, x, t, self.path)

    def _shift(self, delta: Tensor, target: str, x: Tensor, t: Tensor | float) -> Tensor:
        """What adding ``delta`` to the score adds to a ``target`` prediction: the linear part
        of the score-to-target map (``eps: -sigma delta``, ``x0: sigma^2 / alpha delta``, ...).

        At pure noise (``lam < PURE_NOISE_LAM``, e.g. ``alpha(1) = 6e-17`` on the cosine path)
        ``x_t`` carries nothing of ``x_0``, so every guidance gradient (classifier, loss) is
        exactly 0 there; a learned one's leftover would come back multiplied by
        ``sigma^2 / alpha``, so the shift is 0 at those times."""
        shift = convert(delta, "score", target, torch.zeros_like(x), t, self.path)
        noise = self.path.lam(t) < PURE_NOISE_LAM
        if isinstance(noise, Tensor):
            return shift.masked_fill(noise.view(-1, *([1] * (x.ndim - 1))).to(x.device), 0.0)
        return torch.zeros_like(shift) if noise else shift

    def parameter_dtypes(self) -> set[torch.dtype]:
        """Floating dtypes of the inner networks' parameters (for ``ip.sample``'s check)."""
        out: set[torch.dtype] = set()
        for den in self._inner:
            if hasattr(den, "parameter_dtypes"):
                out |= den.parameter_dtypes()
        return out
