"""Measurement operators: adjoint identities, dense matrices, A A^T spectra, pseudo-inverses."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.inverse import (Blur, Downsample, FunctionOperator, Inpaint, Linear, Operator,
                                 Reshaped)

G = torch.Generator().manual_seed(0)
F64 = torch.float64


def _cases():
    """(id, operator, shape of one sample, full row rank)."""
    mask_img = torch.rand(2, 6, 4, generator=G) > 0.4
    mat = torch.randn(5, 12, generator=G, dtype=F64)
    fmat = torch.randn(4, 3, 2, generator=G, dtype=F64)  # a user function on (3, 2) samples
    user = FunctionOperator(lambda x: torch.einsum("mij,bij->bm", fmat, x),
                            lambda y: torch.einsum("mij,bm->bij", fmat, y), (3, 2))
    return [
        ("inpaint-vec", Inpaint(torch.tensor([1, 0, 1, 1, 0, 0, 1, 0])), (8,), True),
        ("inpaint-img", Inpaint(mask_img), (2, 6, 4), True),
        ("down-vec", Downsample(3), (12,), True),
        ("down-img", Downsample(2), (3, 6, 4), True),
        ("blur-circ-vec", Blur(5, 1.2), (16,), False),
        ("blur-zeros-vec", Blur(5, 0.8, padding="zeros"), (10,), False),
        ("blur-circ-img", Blur(3, 0.7), (2, 6, 5), False),
        ("blur-zeros-img", Blur(5, 1.0, padding="zeros"), (1, 5, 4), False),
        ("linear", Linear(mat), (12,), True),
        ("function", user, (3, 2), True),
        ("reshaped-blur", Reshaped(Blur(3, 0.6), (2, 4, 4)), (32,), False),
    ]


CASES = _cases()
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_adjoint_identity(case):
    """<A x, y> = <x, A^T y> to 1e-12 in float64, for a batch of random pairs."""
    _, op, shape, _ = case
    x = torch.randn(7, *shape, generator=G, dtype=F64)
    y = torch.randn(7, *op.output_shape(shape), generator=G, dtype=F64)
    lhs = (op(x) * y).flatten(1).sum(1)
    rhs = (x * op.adjoint(y)).flatten(1).sum(1)
    scale = op(x).flatten(1).norm(dim=1) * y.flatten(1).norm(dim=1)
    assert torch.all((lhs - rhs).abs() <= 1e-12 * scale)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matrix_gram_and_pinv(case):
    """The dense matrix reproduces A; gram_apply (the operator's own structure: identity,
    multiple of I, FFT, stored eigh) agrees with A A^T built from the dense matrix; pinv
    satisfies the Moore-Penrose conditions and equals torch.linalg.pinv."""
    _, op, shape, full_rank = case
    a = op.matrix(shape)
    x = torch.randn(3, *shape, generator=G, dtype=F64)
    assert torch.allclose(op(x).flatten(1), x.flatten(1) @ a.T, atol=1e-13)
    m = a.shape[0]
    ybasis = torch.eye(m, dtype=F64).view(m, *op.output_shape(shape))
    gram = op.gram_apply(ybasis, lambda e: e).reshape(m, m)
    assert torch.allclose(gram, a @ a.T, atol=1e-12)
    shifted = op.gram_apply(ybasis, lambda e: 1.0 / (0.3 * e + 0.05)).reshape(m, m)
    assert torch.allclose(shifted, torch.linalg.inv(0.3 * a @ a.T + 0.05 * torch.eye(m, dtype=F64)),
                          atol=1e-10)
    p = op.pinv(ybasis).reshape(m, -1).T  # A^+ as a (d, m) matrix
    rcond = 1e-10 * torch.linalg.eigvalsh(a @ a.T).max().sqrt()
    assert torch.allclose(p, torch.linalg.pinv(a, rtol=float(rcond)), atol=1e-8)
    assert torch.allclose(a @ p @ a, a, atol=1e-8)
    assert torch.allclose(p @ a @ p, p, atol=1e-6 * p.abs().max())
    assert torch.allclose(a @ p, (a @ p).T, atol=1e-8)
    proj = op.project(torch.eye(a.shape[1], dtype=F64).view(-1, *shape)).reshape(a.shape[1], -1)
    assert torch.allclose(proj, proj.T, atol=1e-8) and torch.allclose(proj @ proj, proj, atol=1e-8)
    if full_rank:
        assert torch.allclose(a @ p, torch.eye(m, dtype=F64), atol=1e-12)


def test_structured_gram_matches_dense_fallback():
    """The closed-form spectra (inpaint, pooling, circular FFT, stored eigh) against the generic
    dense eigendecomposition of the base class, on a non-trivial function of A A^T."""
    fn = lambda e: torch.sqrt(e + 0.1)  # noqa: E731
    for op, shape in [(Inpaint(torch.tensor([0, 1, 1, 0, 1])), (5,)), (Downsample(2), (1, 4, 6)),
                      (Blur(5, 1.1), (2, 7, 6)), (Blur(7, 2.0), (9,)),
                      (Linear(torch.randn(3, 5, generator=G)), (5,))]:
        v = torch.randn(4, *op.output_shape(shape), generator=G, dtype=F64)
        assert torch.allclose(op.gram_apply(v, fn), Operator.gram_apply(op, v, fn), atol=1e-12)


def test_operators_do_what_they_say():
    """Pooling averages blocks, blur preserves constants and is the Gaussian kernel, inpainting
    keeps the observed entries and its adjoint fills zeros."""
    img = torch.arange(16, dtype=F64).view(1, 1, 4, 4)
    pooled = torch.tensor([[2.5, 4.5], [10.5, 12.5]], dtype=F64)
    assert torch.equal(Downsample(2)(img)[0, 0], pooled)
    runs = Downsample(2)(torch.tensor([[1.0, 3.0, 5.0, 9.0]]))
    assert torch.equal(runs, torch.tensor([[2.0, 7.0]]))
    const = torch.full((2, 3, 5, 6), 0.7, dtype=F64)
    assert torch.allclose(Blur(5, 1.3)(const), const, atol=1e-15)
    delta = torch.zeros(1, 9, dtype=F64)
    delta[0, 4] = 1.0
    taps = Blur(5, 1.5)(delta)[0, 2:7]
    expect = torch.exp(-0.5 * (torch.arange(-2, 3, dtype=F64) / 1.5) ** 2)
    assert torch.allclose(taps, expect / expect.sum(), atol=1e-15)
    op = Inpaint(torch.tensor([True, False, True]))
    assert torch.equal(op(torch.tensor([[1.0, 2.0, 3.0]])), torch.tensor([[1.0, 3.0]]))
    assert torch.equal(op.adjoint(torch.tensor([[4.0, 5.0]])), torch.tensor([[4.0, 0.0, 5.0]]))
    assert op.input_shape((2,)) == (3,) and Downsample(2).input_shape((3, 2, 2)) == (3, 4, 4)


def test_float32_and_operators_are_values():
    """Operators work in float32 and are immutable values (no attribute can be set)."""
    op = Blur(3, 0.5)
    x = torch.randn(2, 1, 4, 4, generator=G)
    assert op(x).dtype == torch.float32 and op.pinv(op(x)).dtype == torch.float32
    with pytest.raises(AttributeError):
        op.sigma = 2.0  # type: ignore[misc]
    assert isinstance(ip.inverse.Downsample(2), Operator)


@pytest.mark.parametrize("make, match", [
    (lambda: Inpaint(torch.tensor([0.0, 0.5, 1.0])), "boolean or hold only 0 and 1"),
    (lambda: Inpaint(torch.zeros(4, dtype=torch.bool)), "observe something"),
    (lambda: Downsample(0), "positive integer"),
    (lambda: Downsample(3)(torch.zeros(2, 8)), "does not divide the length 8"),
    (lambda: Downsample(3)(torch.zeros(2, 1, 6, 8)), "does not divide the image size"),
    (lambda: Downsample(2)(torch.zeros(2, 3, 4)), r"vectors \(B, D\) or images"),
    (lambda: Blur(4, 1.0), "positive odd integer"),
    (lambda: Blur(3, -1.0), "sigma must be a positive number"),
    (lambda: Blur(3, 1.0, padding="reflect"), "padding must be"),
    (lambda: Blur(9, 1.0)(torch.zeros(1, 3)), "too large"),
    (lambda: Linear(torch.zeros(3)), r"shape \(m, d\)"),
    (lambda: Linear(torch.tensor([[1.0, math.nan]])), "NaN"),
    (lambda: Linear(torch.zeros(2, 3))(torch.zeros(4, 5)), r"shape \(B, 3\)"),
    (lambda: Inpaint(torch.ones(3))(torch.zeros(2, 4)), r"shape \(B, 3\)"),
    (lambda: Inpaint(torch.ones(3)).adjoint(torch.zeros(2, 2)), r"shape \(B, 3\)"),
    (lambda: Linear(torch.zeros(2, 3)).matrix((4,)), "acts on samples of shape"),
])
def test_bad_input(make, match):
    with pytest.raises(InterpolantError, match=match):
        make()
