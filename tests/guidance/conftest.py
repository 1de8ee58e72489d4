"""Class-conditional oracles for the guidance tests, and exact guided fields built from them
without the guidance layer (restricted mixtures and plain Denoisers)."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip

F64 = torch.float64


def labelled_mixture() -> ip.oracle.GaussianMixture:
    """``aniso2d`` with its 8 components in 3 classes (3, 3 and 2 components)."""
    base = ip.oracle.GaussianMixture.preset("aniso2d")
    return ip.oracle.GaussianMixture(base.means, base.covs, base.weights,
                                     labels=torch.arange(8) % 3)


class Exact:
    """Per-row class-conditional quantities from the restricted mixtures ``gmm.restrict(c)``
    (an independent route from the masked responsibilities of the oracle)."""

    def __init__(self, gmm: ip.oracle.GaussianMixture) -> None:
        self.gmm = gmm
        self.parts = [gmm.restrict(c) for c in range(gmm.num_classes)]

    def rows(self, fn, x, labels):
        out = torch.empty_like(x)
        for c, part in enumerate(self.parts):
            rows = labels == c
            if rows.any():
                out[rows] = fn(part, x[rows])
        return out

    def mean_c(self, x, a, s, labels):
        return self.rows(lambda m, xr: m.posterior_mean(xr, a, s), x, labels)

    def score_c(self, x, t, path, labels):
        return self.rows(lambda m, xr: m.score(xr, t, path), x, labels)

    def guided_denoiser(self, path, scale):
        """A plain x0 Denoiser of ``w D_c + (1 - w) D_u`` (no guidance code involved)."""
        gmm = self.gmm

        def model(x, t, cond):
            a, s = path.alpha(t.to(F64)), path.sigma(t.to(F64))
            d_u = gmm.posterior_mean(x, a, s)
            d_c = torch.empty_like(x)
            for c, part in enumerate(self.parts):
                rows = cond == c
                if rows.any():
                    d_c[rows] = part.posterior_mean(x[rows], a[rows], s[rows])
            return scale * d_c + (1 - scale) * d_u

        return ip.Denoiser(model, path, prediction="x0")


@pytest.fixture(scope="module")
def gmm():
    return labelled_mixture()


@pytest.fixture(scope="module")
def exact(gmm):
    return Exact(gmm)


@pytest.fixture
def labels():
    return torch.tensor([0, 1, 2, 0, 1, 2, 2, 0])


@pytest.fixture
def points():
    return 1.3 * torch.randn(8, 2, dtype=F64, generator=torch.Generator().manual_seed(11))


@pytest.fixture
def samples_alike():
    """``check(got_den, want_den, x1, labels, tol)``: every solver gives the same samples with
    both denoisers (same grid, same noise)."""

    def check(got_den, want_den, x1, labels, tol):
        for solver in ip.solvers.available():
            kw = dict(solver=solver, steps=6, t_start=0.98, cond=labels)
            got = ip.sample(got_den, x1, generator=torch.Generator().manual_seed(4), **kw)
            want = ip.sample(want_den, x1, generator=torch.Generator().manual_seed(4), **kw)
            torch.testing.assert_close(got, want, rtol=tol, atol=tol, msg=solver)

    return check
