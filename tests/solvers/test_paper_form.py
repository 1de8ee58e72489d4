"""Each solver's fast coefficient table against its step written in the paper's own form, and
the solvers' own metadata (NFE per step, warm-up, multistep) against what a run spends."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.oracle import GaussianMixture
from interpolant.solvers.base import Model, Noise

F64 = torch.float64
CASES = {  # path, grid: a start at pure noise (cosine), a discrete schedule, EDM's sigma grid
    "vp-linear/logsnr": (ip.paths.VPLinear(), "logsnr"),
    "vp-cosine/uniform": (ip.paths.VPCosine(), "uniform"),
    "vp-discrete/uniform": (ip.paths.VPDiscrete.from_betas("linear", 1000), "uniform"),
    "edm/karras": (ip.paths.EDM(), "karras"),
}
OPTIONS = {  # variants whose paper form differs in more than a coefficient
    "ddim": [{"eta": 0.0}, {"eta": 0.6}],
    "dpm1": [{}, {"form": "data"}],
    "dpm2": [{}, {"form": "data"}],
    "dpm3": [{}, {"form": "data"}],
    "dpm++2m": [{}, {"solver_type": "heun"}],
    "dpm++3m": [{}, {"third_order": "consistent"}],
    "unipc": [{"order": 1}, {"order": 2}, {"order": 3, "variant": "bh1"}, {"form": "noise"}],
    "deis": [{"order": 1}, {"order": 2}, {"order": 3}],
    "euler-maruyama": [{"diffusion": 1.0}, {"diffusion": 0.5}],
}


def _with_paper_form() -> list[tuple[str, dict]]:
    names = [n for n in ip.solvers.available() if ip.solvers.get(n).paper_run is not None]
    return [(n, o) for n in names for o in OPTIONS.get(n, [{}])]


def test_every_solver_with_a_table_also_has_its_paper_form():
    for name in ip.solvers.available():
        solver = ip.solvers.get(name)
        if hasattr(solver, "table") and solver.max_nfe(4) is not None:  # not step-size control
            assert solver.paper_run is not None, f"{name} has a coefficient table but no paper form"


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name,options", _with_paper_form(), ids=lambda v: str(v))
def test_table_equals_the_paper_form_step_by_step(name, options, case):
    path, grid = CASES[case]
    den = GaussianMixture.preset("aniso2d").denoiser(path)
    solver = ip.solvers.get(name, **options)
    ts = ip.grids.make(grid, path, 8) if name != "dpm-fast" else ip.grids.make(grid, path, 9)
    x = path.sigma(1.0) * torch.randn(16, 2, generator=torch.Generator().manual_seed(1),
                                      dtype=F64)

    def fn(x_, t_, target):
        return den(x_, t_, None, target)

    fast = list(solver.run(Model(fn), x, ts, path, Noise(torch.Generator().manual_seed(2))))
    paper = list(solver.paper_run(Model(fn), x, ts, path,
                                  Noise(torch.Generator().manual_seed(2))))
    assert len(fast) == len(paper)
    for a, b in zip(fast, paper):
        assert (a.step, a.nfe) == (b.step, b.nfe) and math.isclose(a.t, b.t, rel_tol=1e-15)
        scale = 1.0 + b.x.abs().max().item()
        assert (a.x - b.x).abs().max().item() < 1e-10 * scale, f"step {a.step}"


@pytest.mark.parametrize("name", ip.solvers.available())
def test_a_run_spends_what_the_metadata_says(name):
    """On VPLinear from t = 1 (no step from pure noise, none to clean data) a run of ``steps``
    steps spends exactly ``max_nfe(steps)``; solvers with step-size control say ``None``."""
    path = ip.paths.VPLinear()
    den = GaussianMixture.preset("aniso2d").denoiser(path)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    solver = ip.solvers.get(name)
    for steps in (6, 9):
        last = None
        for last in ip.trajectory(den, x, solver, steps=steps, grid="logsnr",
                                  generator=torch.Generator().manual_seed(0)):
            pass
        expected = solver.max_nfe(steps)
        if expected is None:
            assert solver.own_grid
        else:
            assert last.nfe == expected


@pytest.mark.parametrize("name", ip.solvers.available())
def test_a_corrector_keeps_a_one_step_predictor_and_refuses_the_others(name):
    predictor = ip.solvers.get(name)
    if predictor.multistep or predictor.own_grid:
        with pytest.raises(InterpolantError, match="multistep|its own grid"):
            ip.solvers.with_corrector(name, steps=1)
        return
    path = ip.paths.VPLinear()
    den = GaussianMixture.preset("aniso2d").denoiser(path)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    last = None
    for last in ip.trajectory(den, x, ip.solvers.with_corrector(name, steps=2), steps=5,
                              grid="logsnr", generator=torch.Generator().manual_seed(0)):
        pass
    assert last.nfe == (predictor.nfe_per_step + 2) * 5


def test_multistep_metadata_matches_the_history_a_solver_keeps():
    """A multistep solver's run on a grid differs from running it one step at a time."""
    path = ip.paths.VPLinear()
    den = GaussianMixture.preset("aniso2d").denoiser(path)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    ts = ip.grids.make("logsnr", path, 6)
    for name in ip.solvers.available():
        solver = ip.solvers.get(name)
        if solver.own_grid or solver.min_steps > 1:
            continue
        gen = torch.Generator().manual_seed(3)
        whole = ip.sample(den, x, solver, grid=ts, generator=gen)
        y = x
        gen = torch.Generator().manual_seed(3)
        for i in range(6):
            y = ip.sample(den, y, solver, grid=ts[i: i + 2], generator=gen)
        differs = (whole - y).abs().max().item() > 1e-9
        assert differs == solver.multistep, name


def test_non_finite_starting_noise_is_refused():
    den = GaussianMixture.preset("aniso2d").denoiser(ip.paths.VPLinear())
    x = torch.randn(5, 2, dtype=F64)
    x[3, 1] = math.nan
    with pytest.raises(InterpolantError, match="NaN or infinite values in 1 of its 5"):
        ip.sample(den, x, solver="ddim", steps=4)


def test_sample_is_the_last_state_of_trajectory():
    den = GaussianMixture.preset("aniso2d").denoiser(ip.paths.VPLinear())
    x = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    kw = dict(solver="dpm++2m-sde", steps=7, grid="logsnr")
    last = list(ip.trajectory(den, x, generator=torch.Generator().manual_seed(1), **kw))[-1]
    assert torch.equal(ip.sample(den, x, generator=torch.Generator().manual_seed(1), **kw),
                       last.x)
