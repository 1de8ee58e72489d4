"""Linear measurement operators ``A`` as immutable values.

A measurement is ``y = A(x) + sigma_y n`` for one sample ``x``; an operator acts on a batch
``(B, *shape)`` and returns ``(B, *measurement_shape)``. Every operator gives

- ``op(x)`` (``A x``) and ``op.adjoint(y)`` (``A^T y``, so that ``<A x, y> = <x, A^T y>``);
- ``op.gram_apply(v, f)``: ``f(A A^T) v`` for an elementwise function ``f`` of the
  eigenvalues of ``A A^T`` (the "SVD-like structure": identity for inpainting, a multiple of
  the identity for average pooling, a Fourier multiplier for circular blur, a stored
  eigendecomposition for a matrix, a dense one built from ``A`` and ``A^T`` otherwise);
- ``op.pinv(y)`` (``A^+ y = A^T (A A^T)^+ y``) and ``op.project(x)`` (``A^+ A x``, the
  projection onto the row space);
- ``op.matrix(shape)``: the dense ``(m, d)`` matrix for samples of ``shape`` (small ``d``;
  the exact posterior of :meth:`interpolant.oracle.GaussianMixture.posterior` uses it);
- ``op.input_shape(y_shape)``: the shape of one sample that gives a measurement of ``y_shape``.

This module has the base class, :class:`Linear` (a user matrix: compressed sensing, random
projections), :class:`FunctionOperator` (a user function and its transpose) and
:class:`Reshaped` (an image operator acting on flattened samples); :mod:`.imaging` has
inpainting, downsampling and blur.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError

Spectral = Callable[[Tensor], Tensor]  # a function of the eigenvalues of A A^T
RCOND = 1e-10  # eigenvalues of A A^T below RCOND * the largest count as zero in A^+

__all__ = ["Operator", "Linear", "FunctionOperator", "Reshaped", "RCOND"]


def as_tensor64(x: Any, name: str) -> Tensor:
    """``x`` as a float64 CPU tensor, or an :class:`InterpolantError` naming it."""
    try:
        t = torch.as_tensor(x).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise InterpolantError(f"{name} must be a tensor of numbers") from None
    if not torch.isfinite(t).all():
        raise InterpolantError(f"{name} contains NaN or infinite values")
    return t


def positive_float(value: Any, name: str) -> float:
    """``value`` as a float, or an error unless it is a finite number ``> 0``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value > 0
    ):
        raise InterpolantError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def positive_int(value: Any, name: str) -> int:
    """``value``, or an error unless it is an integer ``>= 1``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InterpolantError(f"{name} must be a positive integer, got {value!r}")
    return value


def batch_of(x: Any, shape: Sequence[int] | None, what: str) -> Tensor:
    """Check that ``x`` is a floating batch ``(B, *shape)`` (any shape if ``None``)."""
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2:
        got = (f"a {x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor)
               else type(x).__name__)
        raise InterpolantError(f"{what} must be a floating batch (B, ...), got {got}")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise InterpolantError(
            f"{what} must have shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )
    return x


@dataclass(frozen=True, eq=False)
class Operator:
    """Base of the linear operators. Subclasses give :meth:`forward`, :meth:`adjoint` and
    :meth:`input_shape`, and override :meth:`gram_apply` where ``A A^T`` has structure."""

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def input_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The shape of ``A x`` for one sample ``x`` of ``shape``."""
        return tuple(self.forward(torch.zeros(1, *shape, dtype=torch.float64)).shape[1:])

    def matrix(self, shape: Sequence[int]) -> Tensor:
        """The dense float64 matrix ``(m, d)`` of ``A`` on flattened samples of ``shape``."""
        d = math.prod(shape)
        basis = torch.eye(d, dtype=torch.float64).view(d, *shape)
        return self.forward(basis).reshape(d, -1).T.contiguous()

    def gram_apply(self, v: Tensor, fn: Spectral) -> Tensor:
        """``f(A A^T) v`` for a batch ``v`` of measurements; ``fn`` maps the eigenvalues of
        ``A A^T`` (a float64 tensor) to those of ``f(A A^T)``. Here: a dense
        eigendecomposition of ``A A^T`` built with ``m`` calls of ``A`` and ``A^T``."""
        e, u = _dense_gram_eig(self, tuple(v.shape[1:]))
        u = u.to(v)
        flat = v.reshape(v.shape[0], -1)
        return (((flat @ u) * fn(e).to(v)) @ u.T).view_as(v)

    def pinv(self, y: Tensor, rcond: float = RCOND) -> Tensor:
        """``A^+ y = A^T (A A^T)^+ y``, eigenvalues of ``A A^T`` below ``rcond`` times the
        largest treated as zero."""
        return self.adjoint(self.gram_apply(y, functools.partial(_pinv_eig, rcond=rcond)))

    def project(self, x: Tensor) -> Tensor:
        """``A^+ A x``: the orthogonal projection onto the row space of ``A``."""
        return self.pinv(self.forward(x))


def _pinv_eig(e: Tensor, rcond: float) -> Tensor:
    keep = e > rcond * e.max()
    return torch.where(keep, 1.0 / torch.where(keep, e, 1.0), 0.0)


@functools.lru_cache(maxsize=16)
def _dense_gram_eig(op: Operator, y_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Eigenvalues and vectors of ``A A^T`` (float64), built from ``A`` and ``A^T``."""
    m = math.prod(y_shape)
    basis = torch.eye(m, dtype=torch.float64).view(m, *y_shape)
    gram = op.forward(op.adjoint(basis)).reshape(m, m)
    e, u = torch.linalg.eigh(0.5 * (gram + gram.T))
    return e.clamp_min(0.0), u


@dataclass(frozen=True, eq=False)
class Linear(Operator):
    """``A x = M x`` for a user matrix ``M`` of shape ``(m, d)`` on samples ``(B, d)``:
    compressed sensing, random projections. ``A A^T = M M^T`` is eigendecomposed once."""

    weight: Tensor
    _eig: tuple[Tensor, Tensor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        m = as_tensor64(self.weight, "the matrix")
        if m.ndim != 2 or m.numel() == 0:
            raise InterpolantError(f"Linear needs a matrix of shape (m, d), got {tuple(m.shape)}")
        object.__setattr__(self, "weight", m)
        e, u = torch.linalg.eigh(m @ m.T)
        object.__setattr__(self, "_eig", (e.clamp_min(0.0), u))

    def forward(self, x: Tensor) -> Tensor:
        batch_of(x, (self.weight.shape[1],), "x")
        return x @ self.weight.to(x).T

    def adjoint(self, y: Tensor) -> Tensor:
        batch_of(y, (self.weight.shape[0],), "the measurement")
        return y @ self.weight.to(y)

    def input_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        return (self.weight.shape[1],)

    def matrix(self, shape: Sequence[int]) -> Tensor:
        if tuple(shape) != (self.weight.shape[1],):
            raise InterpolantError(
                f"this Linear operator acts on samples of shape ({self.weight.shape[1]},), "
                f"not {tuple(shape)}"
            )
        return self.weight.clone()

    def gram_apply(self, v: Tensor, fn: Spectral) -> Tensor:
        batch_of(v, (self.weight.shape[0],), "the measurement")
        e, u = self._eig
        u = u.to(v)
        return ((v @ u) * fn(e).to(v)) @ u.T


@dataclass(frozen=True, eq=False)
class FunctionOperator(Operator):
    """A user's linear function ``forward(x)`` and its transpose ``adjoint(y)``, both on
    batches, for samples of ``shape``. Nothing checks that ``adjoint`` is the transpose:
    test it with ``<A x, y> = <x, A^T y>``."""

    fn: Callable[[Tensor], Tensor]
    fn_adjoint: Callable[[Tensor], Tensor]
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not callable(self.fn) or not callable(self.fn_adjoint):
            raise InterpolantError("FunctionOperator needs two functions: forward and adjoint")
        try:
            shape = tuple(int(s) for s in self.shape)
        except (TypeError, ValueError):
            raise InterpolantError(f"shape must be a tuple of sizes, got {self.shape!r}") from None
        object.__setattr__(self, "shape", shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(batch_of(x, self.shape, "x"))

    def adjoint(self, y: Tensor) -> Tensor:
        return self.fn_adjoint(batch_of(y, None, "the measurement"))

    def input_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        return self.shape


@dataclass(frozen=True, eq=False)
class Reshaped(Operator):
    """``op`` applied to flattened samples ``(B, d)`` viewed as ``(B, *shape)``: an image
    operator (blur, downsampling) on a mixture over flattened images."""

    op: Operator
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.op, Operator):
            raise InterpolantError(f"Reshaped needs an Operator, got {type(self.op).__name__}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    def forward(self, x: Tensor) -> Tensor:
        batch_of(x, (math.prod(self.shape),), "x")
        return self.op.forward(x.reshape(x.shape[0], *self.shape))

    def adjoint(self, y: Tensor) -> Tensor:
        return self.op.adjoint(y).reshape(y.shape[0], -1)

    def input_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        return (math.prod(self.shape),)

    def gram_apply(self, v: Tensor, fn: Spectral) -> Tensor:
        return self.op.gram_apply(v, fn)
