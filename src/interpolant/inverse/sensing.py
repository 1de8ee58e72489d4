"""Compressed sensing: ``y = M vec(x) + sigma_y n`` with a random Gaussian matrix ``M``.

:func:`random_projection` draws ``M`` with i.i.d. ``N(0, 1 / m)`` entries (the usual
normalisation, so ``E ||M x||^2 = ||x||^2``: restricted isometry for sparse ``x`` when ``m``
is large enough, Candes & Tao 2005) and returns it as an operator on samples of any shape:
:class:`Flattened` views each sample as a vector for a matrix :class:`~.operators.Linear`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InterpolantError
from .operators import Linear, Operator, Spectral, batch_of, positive_int

__all__ = ["Flattened", "random_projection"]


@dataclass(frozen=True, eq=False)
class Flattened(Operator):
    """``op`` (an operator on vectors ``(B, d)``) applied to samples ``(B, *shape)`` flattened
    in row-major order; ``A^T`` reshapes back. The counterpart of :class:`~.operators.Reshaped`."""

    op: Operator
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.op, Operator):
            raise InterpolantError(f"Flattened needs an Operator, got {type(self.op).__name__}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    def forward(self, x: Tensor) -> Tensor:
        batch_of(x, self.shape, "x")
        return self.op.forward(x.reshape(x.shape[0], -1))

    def adjoint(self, y: Tensor) -> Tensor:
        return self.op.adjoint(y).reshape(y.shape[0], *self.shape)

    def input_shape(self, y_shape: Sequence[int]) -> tuple[int, ...]:
        return self.shape

    def gram_apply(self, v: Tensor, fn: Spectral) -> Tensor:
        return self.op.gram_apply(v, fn)


def random_projection(m: int, shape: Sequence[int] | int, seed: int = 0) -> Operator:
    """``m`` random Gaussian measurements (entries ``N(0, 1 / m)``, drawn in float64 from
    ``seed``) of samples of ``shape`` (an int for vectors ``(B, d)``)."""
    m = positive_int(m, "m (the number of measurements)")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    d = math.prod(shape)
    if not shape or d < 1:
        raise InterpolantError(f"shape must be the shape of one sample, got {shape}")
    g = torch.Generator().manual_seed(int(seed))
    matrix = Linear(torch.randn(m, d, generator=g, dtype=torch.float64) / math.sqrt(m))
    return matrix if len(shape) == 1 else Flattened(matrix, shape)
