"""Deterministic inversion (an increasing grid) against the exact inverse probability flow of a
Gaussian mixture: every deterministic solver converges at its order, round trips return the
data, stochastic solvers are refused, bad grids and inputs get one-line errors."""

from __future__ import annotations

import pytest
import torch
from support.orders import fit_order

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.oracle import GaussianMixture
from interpolant.solvers.base import Model, Noise

F64 = torch.float64
STEPS = [24, 32, 48]
#: solver, options, order: the order each one has when sampling
ORDERS = [
    ("ddim", {}, 1), ("euler", {}, 1), ("heun", {}, 2), ("edm", {}, 2), ("dpm2", {}, 2),
    ("dpm3", {}, 3), ("dpm++2s", {}, 2), ("dpm++2m", {}, 2),
    ("dpm++3m", {"third_order": "consistent"}, 3), ("unipc", {}, 3), ("deis", {}, 3),
    ("ipndm", {}, 2), ("plms", {}, 2),
]


@pytest.fixture(scope="module")
def gmm():
    return GaussianMixture.preset("aniso2d")


@pytest.fixture(scope="module")
def gauss():
    """One Gaussian: its flow in closed form, so the orders show without pre-asymptotic noise."""
    return GaussianMixture.preset("gauss2d")


@pytest.fixture(scope="module")
def data(gmm):
    return gmm.sample(32, torch.Generator().manual_seed(3))


_REFS: dict = {}


def exact_inverse(gmm, path, x0):
    """The exact flow from ``t_min`` to 1, once per path (DOP853 at 1e-12)."""
    key = (type(path).__name__, gmm.n_components)
    if key not in _REFS:
        _REFS[key] = gmm.flow(path, x0, t_from=path.t_min, t_to=1.0)
    return _REFS[key]


def inversion_errors(gmm, path, x0, name, options, steps=STEPS):
    den = gmm.denoiser(path)
    ref = exact_inverse(gmm, path, x0)
    return [rms(ip.invert(den, x0, solver=name, steps=n, grid="logsnr", **options) - ref)
            for n in steps]


def rms(err):
    return float(err.square().mean().sqrt())


@pytest.mark.parametrize("name,options,order", ORDERS, ids=[f"{n}{o}" for n, o, _ in ORDERS])
def test_inversion_converges_at_the_solver_order(gauss, data, name, options, order):
    errs = inversion_errors(gauss, ip.paths.VPLinear(), data, name, options)
    fitted = fit_order(STEPS, errs)
    assert fitted > order - 0.35, (name, errs, fitted)
    if order == 1:  # DDIM inversion is not exact: first order, not better
        assert fitted < 1.5 and errs[-1] > 1e-3


@pytest.mark.parametrize("name,order", [("ddim", 1), ("heun", 2), ("dpm2", 2), ("dpm++2m", 2),
                                        ("dpm3", 3)])
def test_inversion_of_a_mixture_converges_to_its_exact_inverse_flow(gmm, data, name, order):
    """Against ``gmm.flow(path, x0, t_from=t_min, t_to=1)`` of an 8-component mixture."""
    errs = inversion_errors(gmm, ip.paths.VPLinear(), data, name, {})
    assert fit_order(STEPS, errs) > order - 0.25, errs


@pytest.mark.parametrize("path", [ip.paths.VPCosine(), ip.paths.Linear(), ip.paths.Trig()],
                         ids=["vp-cosine", "linear", "trig"])
@pytest.mark.parametrize("name,order", [("ddim", 1), ("heun", 2), ("dpm++2m", 2), ("unipc", 3)])
def test_inversion_into_pure_noise_keeps_the_order(gmm, data, path, name, order):
    """alpha(1) = 0 on these paths: the last step ends at pure noise (a data-form DDIM step
    with finite coefficients); the result is finite and converges."""
    errs = inversion_errors(gmm, path, data, name, {})
    assert fit_order(STEPS, errs) > order - 0.25, errs


@pytest.mark.parametrize("name,order", [("ddim", 1), ("dpm++2m", 2), ("unipc", 3), ("heun", 2)])
def test_round_trip_returns_the_data_within_the_solver_error(gmm, data, name, order):
    path = ip.paths.VPLinear()
    den = gmm.denoiser(path)
    errs = []
    for n in STEPS:
        z = ip.invert(den, data, solver=name, steps=n, grid="logsnr")
        back = ip.sample(den, z, solver=name, steps=n, grid="logsnr")
        errs.append(rms(back - data))
    assert fit_order(STEPS, errs) > order - 0.5, errs
    assert errs[-1] < {1: 0.1, 2: 2e-3, 3: 2e-3}[order], errs


def test_default_invert_is_ddim_50_steps_to_t1_and_back(gmm, data):
    path = ip.paths.VPLinear()
    den = gmm.denoiser(path)
    z = ip.invert(den, data)
    direct = ip.invert(den, data, solver="ddim", steps=50, t_start=path.t_min, t_end=1.0)
    assert torch.equal(z, direct)
    states = list(ip.inversion.trajectory(den, data, steps=50))
    assert len(states) == 50 and states[-1].t == 1.0 and states[-1].nfe == 50
    assert states[0].t > path.t_min


def test_explicit_increasing_grid_equals_the_named_grid_reversed(gmm, data):
    path = ip.paths.VPLinear()
    den = gmm.denoiser(path)
    ts = ip.grids.make("logsnr", path, 12).flip(0)
    assert torch.equal(ip.invert(den, data, solver="dpm++2m", grid=ts),
                       ip.invert(den, data, solver="dpm++2m", steps=12, grid="logsnr"))


@pytest.mark.parametrize("name,options", [("dpm1", {}), ("dpm2", {}), ("dpm3", {}),
                                          ("dpm++2m", {}), ("dpm++3m", {}), ("unipc", {}),
                                          ("unipc", {"order": 3}), ("deis", {})])
def test_inverse_table_equals_the_paper_form_step_by_step(gmm, name, options):
    """The coefficient tables with h < 0 against each step written in its paper's form."""
    path = ip.paths.VPLinear()
    den = gmm.denoiser(path)
    solver = ip.solvers.get(name, **options)
    ts = ip.grids.between("logsnr", path, 8, path.t_min, 1.0)
    x = gmm.sample(16, torch.Generator().manual_seed(5))

    def run(fn):
        return [s.x for s in fn(Model(lambda x_, t_, tg: den(x_, t_, None, tg)), x, ts, path,
                                Noise(None))]

    for a, b in zip(run(solver.run), run(solver.paper_run)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,options", [
    ("ddpm", {}), ("ddim", {"eta": 0.5}), ("euler-ancestral", {}), ("euler-maruyama", {}),
    ("dpm++2m-sde", {}), ("dpm++3m-sde", {}), ("edm", {"s_churn": 10.0}),
])
def test_stochastic_solvers_refuse_to_invert(gmm, data, name, options):
    den = gmm.denoiser(ip.paths.VPLinear())
    with pytest.raises(InterpolantError, match="cannot invert"):
        ip.invert(den, data, solver=name, steps=10, **options)
    with pytest.raises(InterpolantError, match="cannot invert"):
        ip.invert(den, data, solver=ip.solvers.with_corrector("ddim", steps=1), steps=10)


def test_every_solver_inverts_to_finite_values_or_is_refused(gmm, data):
    """A solver not checked for increasing grids (``invertible`` is opt-in) is refused with
    an InterpolantError, never run into NaN."""
    den = gmm.denoiser(ip.paths.VPCosine())
    ran = []
    for name in ip.solvers.available():
        try:
            z = ip.invert(den, data, solver=name, steps=12)
        except InterpolantError:
            continue
        assert bool(torch.isfinite(z).all()), name
        ran.append(name)
    assert {"ddim", "dpm++2m", "unipc", "heun", "deis", "pndm", "dpm-fast"} <= set(ran)


def test_solvers_without_a_reverse_run_refuse(gmm, data):
    den = gmm.denoiser(ip.paths.VPLinear())
    with pytest.raises(InterpolantError, match="increasing grid"):  # euler-ancestral, eta = 0
        ip.invert(den, data, solver="euler-ancestral", steps=10, eta=0.0)


@pytest.mark.parametrize("path", [ip.paths.VPLinear(), ip.paths.VPCosine()], ids=["vp", "cos"])
def test_adaptive_inversion_meets_its_tolerance(gmm, data, path):
    """dpm-adaptive adapts |h| towards the noise end (into pure noise: up to the clip, then one
    DDIM step); a tighter tolerance costs more NFE and lands nearer the exact inverse flow."""
    ref = exact_inverse(gmm, path, data)
    runs = [list(ip.inversion.trajectory(gmm.denoiser(path), data, solver="dpm-adaptive",
                                         rtol=rtol, atol=rtol / 10))[-1] for rtol in (0.05, 5e-4)]
    errs = [rms(s.x - ref) for s in runs]
    assert runs[0].t == runs[1].t == 1.0 and runs[1].nfe > runs[0].nfe
    assert errs[1] < 0.1 * errs[0] and errs[1] < 5e-4, errs


def test_bad_grids_and_inputs_get_one_line_errors(gmm, data):
    path = ip.paths.VPLinear()
    den = gmm.denoiser(path)
    decreasing = ip.grids.make("uniform", path, 10)
    with pytest.raises(InterpolantError, match="strictly increasing"):
        ip.invert(den, data, grid=decreasing)
    with pytest.raises(InterpolantError, match="t_start < t_end"):
        ip.invert(den, data, t_start=0.5, t_end=0.2)
    with pytest.raises(InterpolantError, match="sigma > 0"):
        ip.invert(den, data, t_start=0.0)
    with pytest.raises(InterpolantError, match="disagrees"):
        ip.invert(den, data, steps=5, grid=decreasing.flip(0))
    images = torch.full((2, 1, 4, 4), 3.0, dtype=F64)
    with pytest.raises(InterpolantError, match=r"\[-1, 1\]"):
        ip.invert(den, images)
    with pytest.raises(InterpolantError, match="floating-point"):
        ip.invert(den, torch.zeros(4, 2, dtype=torch.int64))
    # sampling keeps refusing increasing grids
    with pytest.raises(InterpolantError, match="strictly decreasing"):
        ip.sample(den, data, grid=decreasing.flip(0))


def test_an_unknown_label_is_refused(data):
    means = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=F64)
    covs = 0.1 * torch.eye(2, dtype=F64).expand(2, 2, 2)
    gmm = GaussianMixture(means, covs, labels=torch.tensor([0, 1]))
    den = gmm.denoiser(ip.paths.VPLinear())
    with pytest.raises(InterpolantError, match="label 7"):
        ip.invert(den, data, cond=torch.full((data.shape[0],), 7), steps=4)
