"""The one convergence-order harness of the solver tests and its one order table.

Every deterministic solver of ``ip.solvers.available()`` has an entry in :data:`ORDERS`
(``tests/solvers/test_orders.py`` checks the coverage, so a new solver without one fails the
suite); the others are listed in :data:`CHECKED_ELSEWHERE` with the test that checks them.
The error of a run is :func:`rms_error` (root mean square over points of the Euclidean
endpoint error) against the exact probability-flow map of an oracle mixture
(:func:`reference`), and the order is the least-squares log-log slope (:func:`fit_order`).
"""

from __future__ import annotations

import functools

import torch

import interpolant as ip

STEPS = (80, 160, 320)  # the asymptotic regime on both presets (checked: local slopes settle)
VP = [("aniso2d", "vp-linear", "logsnr"), ("mix8d", "vp-linear", "logsnr")]
ANISO = VP[:1]
EDM = [("aniso2d", "edm", "karras"), ("mix8d", "edm", "karras")]
FLOW = [("aniso2d", "linear", "uniform")]

# (solver, options, order, steps, cases). UniPC-p with its corrector is of order p + 1 (its
# slope approaches 4 from below, hence finer steps for p = 3). DPM-Solver++(3M) with the
# published half D2 term is of order 2; dpm-fast's steps are NFE budgets = 2 (mod 3), so its
# last step is order 2 and the method order 3. The pseudo methods (plms, pndm, ipndm) use the
# papers' constant Adams-Bashforth weights, which assume equal steps in sigma~; on the smooth
# non-uniform log-SNR and Karras grids their local error is O(h^3): order 2. EDM's Heun is
# order 2. Variants of a method checked on both presets run on aniso2d only.
ORDERS = [
    ("ddim", {}, 1, STEPS, VP + EDM[:1] + FLOW),
    ("euler", {}, 1, STEPS, VP + EDM[:1] + FLOW),
    ("heun", {}, 2, (20, 40, 80), VP + EDM[:1] + FLOW),
    ("edm", {}, 2, (24, 48, 96), EDM + VP[1:]),
    ("plms", {}, 2, (24, 48, 96), ANISO + EDM[:1]),
    ("pndm", {}, 2, (24, 48, 96), ANISO + EDM[:1]),
    ("pndm", {"variant": "s"}, 2, (64, 128, 256), VP),
    ("ipndm", {}, 2, (24, 48, 96), ANISO + EDM[:1]),
    ("dpm1", {}, 1, STEPS, VP),
    ("dpm2", {}, 2, STEPS, VP),
    ("dpm2", {"form": "data"}, 2, STEPS, ANISO),
    ("dpm3", {}, 3, STEPS, VP),
    ("dpm3", {"form": "data"}, 3, STEPS, ANISO),
    ("dpm-fast", {}, 3, (122, 242, 482), VP),
    ("dpm++2s", {}, 2, STEPS, VP),
    ("dpm++2m", {}, 2, STEPS, VP),
    ("dpm++2m", {"solver_type": "heun"}, 2, STEPS, ANISO),
    ("dpm++3m", {"third_order": "consistent"}, 3, STEPS, VP),
    ("dpm++3m", {"third_order": "published"}, 2, STEPS, VP),
    ("unipc", {"order": 1}, 2, STEPS, VP),
    ("unipc", {"order": 2}, 3, STEPS, VP),
    ("unipc", {"order": 2, "variant": "bh1"}, 3, STEPS, ANISO),
    ("unipc", {"order": 3}, 4, (320, 640, 1280), VP),
    ("unipc", {"order": 2, "corrector": False}, 2, STEPS, ANISO),
    ("deis", {"order": 1}, 1, STEPS, ANISO),
    ("deis", {"order": 2}, 2, STEPS, VP),
    ("deis", {"order": 3}, 3, STEPS, VP),
    ("sde", {"diffusion": 0.0}, 1, STEPS, ANISO),  # the SDE at eps = 0 is the ODE
]

#: Solvers whose correctness is not a convergence order, and the test that checks them.
CHECKED_ELSEWHERE = {
    "ddpm": "solvers/test_first_order.py::test_ddpm_matches_the_exact_marginal",
    "euler-ancestral": "solvers/test_stochastic.py (exact marginal)",
    "euler-maruyama": "solvers/test_stochastic.py (exact marginal)",
    "dpm++2m-sde": "solvers/test_stochastic.py (exact marginal); SDE at eta 0 = 2M",
    "dpm++3m-sde": "solvers/test_exponential.py (k-diffusion transcription, exact marginal)",
    "dpm-adaptive": "solvers/test_exponential.py::test_dpm_adaptive_meets_its_tolerance",
    "dpm-v3": "solvers/test_dpm_v3.py (= DPM-Solver++ at its reduction; exact on a Gaussian)",
}


def fit_order(steps, errors) -> float:
    """Least-squares slope of log error against log steps: the empirical order."""
    ls = torch.log(torch.tensor(steps, dtype=torch.float64))
    le = torch.log(torch.tensor(errors, dtype=torch.float64))
    ls = ls - ls.mean()
    return float(-(ls * (le - le.mean())).sum() / (ls * ls).sum())


def rms_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Root mean square over points of the Euclidean endpoint error."""
    return (x - ref).pow(2).sum(1).mean().sqrt().item()


@functools.lru_cache(maxsize=None)
def reference(preset: str, path_name: str):
    """``(gmm, path, x1, exact endpoint)``: exact draws of ``p_1`` (64 points in 2-D, 40 in
    8-D) and their exact probability flow to ``path.t_min``."""
    gmm, path = ip.oracle.GaussianMixture.preset(preset), ip.paths.get(path_name)
    x1 = gmm.marginal(path, 1.0).sample(64 if gmm.dim == 2 else 40,
                                        torch.Generator().manual_seed(0))
    return gmm, path, x1, gmm.flow(path, x1, 1.0, path.t_min, rtol=1e-10, atol=1e-10)


def measured_order(solver: str, options: dict, steps, preset: str, path_name: str,
                   grid: str) -> tuple[float, list[float]]:
    """The empirical order of ``solver`` and its errors at ``steps``."""
    gmm, path, x1, ref = reference(preset, path_name)
    den = gmm.denoiser(path)
    errors = [rms_error(ip.sample(den, x1, solver=solver, steps=n, grid=grid, **options), ref)
              for n in steps]
    return fit_order(steps, errors), errors
