"""The source end ``x_1`` of a stochastic interpolant, and the objective that trains a run.

Albergo, Goldstein, Boffi, Ranganath & Vanden-Eijnden, "Stochastic interpolants with
data-dependent couplings" (ICML 2024), Sec. 3: the base point is drawn *given* the datum,
``x_1 ~ rho_1(. | x_0)``, e.g. a masked or down-sampled copy of ``x_0`` whose lost part is
filled with noise. For a linear measurement ``A`` (an operator of :mod:`interpolant.inverse`)
that is, with ``zeta ~ N(0, I)``::

    x_1 = A^+ A x_0 + fill (I - A^+ A) zeta                  (:class:`Degraded`)

the part of ``x_0`` that ``A`` measures, kept exactly, plus noise in the part it loses (for
inpainting: the observed pixels and noise in the hole; for 2x average-pool super-resolution:
the block means and noise in the within-block detail). Given a measurement ``y = A x_0`` the
sampler starts from ``A^+ y + fill (I - A^+ A) zeta`` (:meth:`Degraded.from_measurement`). The
independent Gaussian source ``x_1 = zeta`` (:class:`GaussianSource`) is the one-sided case.

The velocity is learned by the same square loss as with an independent coupling (the paper's
Theorem 1): ``E |u(x_t, t) - (a' x_0 + b' x_1)|^2`` with ``gamma = 0`` (one noise draw per
sample, spent on ``x_1``), :class:`SourceObjective`.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..network import call_network, takes_cond
from ..paths.interpolant import Interpolant
from .training import interpolate

__all__ = ["Degraded", "GaussianSource", "Source", "SourceObjective"]


class Source(Protocol):
    """``source(x0, zeta) -> x1``: the source point of each datum from one N(0, I) draw."""

    def __call__(self, x0: Tensor, zeta: Tensor) -> Tensor: ...


class GaussianSource:
    """``x_1 = zeta``, independent of ``x_0`` (the Gaussian base of a flow)."""

    def __call__(self, x0: Tensor, zeta: Tensor) -> Tensor:
        if zeta.shape != x0.shape:
            raise InterpolantError(f"the noise has shape {tuple(zeta.shape)} but the data "
                                   f"{tuple(x0.shape)}")
        return zeta

    def __repr__(self) -> str:
        return "GaussianSource()"


class Degraded:
    """``x_1 = A^+ A x_0 + fill (I - A^+ A) zeta`` for a linear operator ``A`` (an
    :class:`interpolant.inverse.Operator`: ``Inpaint``, ``Downsample``, ...)."""

    def __init__(self, operator: Any, fill: float = 1.0) -> None:
        if not all(hasattr(operator, m) for m in ("forward", "pinv", "project")):
            raise InterpolantError(f"Degraded needs a linear operator of interpolant.inverse "
                                   f"(forward, pinv, project), got {type(operator).__name__}")
        if not fill >= 0.0:
            raise InterpolantError(f"fill must be >= 0, got {fill}")
        self.operator, self.fill = operator, float(fill)

    def from_measurement(self, y: Tensor, zeta: Tensor) -> Tensor:
        """``A^+ y + fill (I - A^+ A) zeta``: the source point of a measurement ``y``."""
        op = self.operator
        kept = op.pinv(y.double())
        if kept.shape != zeta.shape:
            raise InterpolantError(f"the measurement gives images of shape "
                                   f"{tuple(kept.shape)} but the noise has shape "
                                   f"{tuple(zeta.shape)}")
        lost = zeta.double() - op.project(zeta.double())
        return (kept + self.fill * lost).to(zeta.dtype)

    def __call__(self, x0: Tensor, zeta: Tensor) -> Tensor:
        if zeta.shape != x0.shape:
            raise InterpolantError(f"the noise has shape {tuple(zeta.shape)} but the data "
                                   f"{tuple(x0.shape)}")
        return self.from_measurement(self.operator.forward(x0.double()), zeta)

    def __repr__(self) -> str:
        return f"Degraded({type(self.operator).__name__}, fill={self.fill:g})"


class SourceObjective:
    """The trainer's objective of a stochastic-interpolant run: ``t ~ U[0, 1]``,
    ``x_1 = source(x_0, noise)``, ``x_t = a x_0 + b x_1`` and the per-sample loss
    ``mean_j (u(x_t, t, cond) - (a' x_0 + b' x_1))_j^2`` (the velocity's square loss; its
    minimiser is ``E[a' x_0 + b' x_1 | x_t]``). Has what
    :class:`interpolant.training.Trainer` asks of an objective (``path``, ``sample_time``,
    a call returning the batch mean)."""

    def __init__(self, path: Interpolant, source: Source) -> None:
        if not isinstance(path, Interpolant):
            raise InterpolantError(f"SourceObjective needs an interpolant.paths.Interpolant, "
                                   f"got {type(path).__name__}")
        path.check_pinned("training from source draws")
        path.check_deterministic("training with one noise draw per sample (spent on x_1)")
        self.path, self.source = path, source

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` times uniform in ``[0, 1]`` (float64)."""
        return torch.rand(n, generator=generator, dtype=torch.float64)

    def per_sample(self, model: Any, x0: Tensor, noise: Tensor, t: Tensor, cond: Any = None
                   ) -> Tensor:
        """The loss of each sample, ``(B,)``."""
        x1 = self.source(x0, noise).to(x0.dtype)
        xt, target = interpolate(self.path, x0, x1, torch.zeros_like(x0), t)
        out = call_network(model, takes_cond(model), xt, t.to(x0.dtype), cond)
        if not isinstance(out, Tensor) or out.shape != x0.shape:
            raise InterpolantError(f"the velocity network must return the data's shape "
                                   f"{tuple(x0.shape)}")
        dtype = torch.promote_types(x0.dtype, torch.float32)
        return (out.to(dtype) - target.to(dtype)).pow(2).flatten(1).mean(1)

    def __call__(self, model: Any, x0: Tensor, noise: Tensor, t: Tensor, cond: Any = None
                 ) -> Tensor:
        return self.per_sample(model, x0, noise, t, cond).mean()

    def __repr__(self) -> str:
        return f"SourceObjective({self.path!r}, {self.source!r})"
