"""Cold diffusion (Bansal et al. 2022): what the naive and improved samplers guarantee."""

from __future__ import annotations

import pytest
import torch

from interpolant.errors import InterpolantError
from interpolant.processes import cold

F64 = torch.float64
G = torch.Generator().manual_seed(0)
X0 = torch.rand(3, 2, 8, 8, generator=G, dtype=F64) * 2 - 1
DEGRADATIONS = {"blur": cold.Blur(1.0), "mask": cold.Mask((8, 8), seed=1)}


def _deblur(blur):
    """The exact restoration of a blur: its inverse (the gains are >= exp(-4))."""
    def restore(x, t):
        f = torch.fft.fft2(x)
        h, w = x.shape[-2:]
        fh = 2 - 2 * torch.cos(2 * torch.pi * torch.fft.fftfreq(h, dtype=F64))
        fw = 2 - 2 * torch.cos(2 * torch.pi * torch.fft.fftfreq(w, dtype=F64))
        return torch.fft.ifft2(f * torch.exp(0.5 * t * blur.max_std**2
                                             * (fh[:, None] + fw[None]))).real
    return restore


@pytest.mark.parametrize("name", list(DEGRADATIONS))
@pytest.mark.parametrize("method", cold.METHODS)
def test_an_exact_restoration_reproduces_x0(name, method):
    degrade = DEGRADATIONS[name]
    restore = _deblur(degrade) if name == "blur" else (lambda x, t: X0)  # mask: an oracle
    out = cold.sample(restore, degrade, degrade(X0, 1.0), steps=10, method=method)
    torch.testing.assert_close(out, X0, rtol=0, atol=1e-9)


def test_the_improved_sampler_is_exact_for_an_additive_degradation_with_any_restoration():
    """D(x, t) = x + t e: x_{s-1} = x_s - (t_s - t_{s-1}) e whatever R says (Sec. 3.3)."""
    e = torch.randn(X0.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    degrade = cold.Additive(e)
    junk = torch.Generator().manual_seed(3)
    restore = lambda x, t: torch.randn(x.shape, generator=junk, dtype=F64)  # noqa: E731
    improved = cold.sample(restore, degrade, degrade(X0, 1.0), 7, "improved")
    naive = cold.sample(restore, degrade, degrade(X0, 1.0), 7, "naive")
    torch.testing.assert_close(improved, X0, rtol=0, atol=1e-12)
    assert (naive - X0).abs().max() > 0.5


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_a_constant_restoration_error_ends_as_I_minus_A1_times_it(name):
    """R(x, t) = x0 + c: the improved steps telescope to x0 + (I - A_1) c, the naive sampler
    ends at x0 + c. For the blur (I - A_1) c is smaller, and 0 for a constant offset c; the
    full mask (A_1 = 0) keeps all of c."""
    degrade = DEGRADATIONS[name]
    c = 0.3 * torch.randn(X0.shape, generator=torch.Generator().manual_seed(4), dtype=F64)
    restore = lambda x, t: X0 + c  # noqa: E731
    improved = cold.sample(restore, degrade, degrade(X0, 1.0), 12, "improved")
    naive = cold.sample(restore, degrade, degrade(X0, 1.0), 12, "naive")
    torch.testing.assert_close(improved - X0, c - degrade(c, 1.0), rtol=0, atol=1e-12)
    torch.testing.assert_close(naive - X0, c, rtol=0, atol=1e-12)
    if name == "blur":
        assert (improved - X0).norm() < 0.9 * c.norm()
        offset = torch.full_like(X0, 0.25)
        shifted = cold.sample(lambda x, t: X0 + offset, degrade, degrade(X0, 1.0), 12)
        torch.testing.assert_close(shifted, X0, rtol=0, atol=1e-12)


def test_bad_levels_and_methods_are_refused():
    with pytest.raises(InterpolantError, match=r"\[0, 1\]"):
        cold.Blur(1.0)(X0, 1.5)
    with pytest.raises(InterpolantError, match="unknown cold-diffusion sampler"):
        cold.sample(lambda x, t: x, cold.Blur(1.0), X0, 3, "fast")
