"""DPM-OT (Li et al. 2023): the semi-discrete OT map from noise to data latents, and its
few-step sampler, against closed forms (cell masses, the 1-D quantile map, the exact flow)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from interpolant.errors import InterpolantError
from interpolant.fewstep.dpm_ot import SemiDiscreteOT, dpm_ot, fit_semidiscrete_ot

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS, BATCH = 400, 4096
N_FIT = STEPS // 2 * BATCH  # noise draws behind the averaged potential


def _tolerance(p: torch.Tensor, n_eval: int) -> torch.Tensor:
    """Five standard errors of a Monte Carlo mass ``p``: the fit's (its averaged half) and the
    measurement's."""
    return 5 * (p * (1 - p)).sqrt() * math.sqrt(1 / n_eval + 1 / N_FIT)


def test_cells_carry_the_target_weights_in_2d():
    g = torch.Generator().manual_seed(0)
    y = 1.5 * torch.randn(8, 2, generator=g, dtype=torch.float64)
    w = torch.rand(8, generator=g, dtype=torch.float64) + 0.3
    w = w / w.sum()
    ot = fit_semidiscrete_ot(y, w, steps=STEPS, batch=BATCH, generator=g)
    n_eval = 200_000
    masses = ot.masses(n_eval, torch.Generator().manual_seed(1))
    assert bool(((masses - w).abs() < _tolerance(w, n_eval)).all()), (masses - w)
    # without the dual potential (h = 0) the cells are far from the weights
    plain = SemiDiscreteOT(y, torch.zeros(8, dtype=torch.float64), w).masses(n_eval, g)
    assert float((plain - w).abs().max()) > 10 * float(_tolerance(w, n_eval).max())


def test_1d_map_is_the_monotone_quantile_map():
    """Cell i of max_i z y_i + h_i is [b_{i-1}, b_i], b_i = (h_i - h_{i+1}) / (y_{i+1} - y_i);
    the OT map to sum w_i delta_{y_i} puts b_i at Phi^-1(w_1 + .. + w_i)."""
    g = torch.Generator().manual_seed(2)
    y = torch.tensor([[-2.0], [-0.5], [0.3], [1.0], [2.5]], dtype=torch.float64)
    w = torch.tensor([0.1, 0.3, 0.15, 0.25, 0.2], dtype=torch.float64)
    ot = fit_semidiscrete_ot(y, w, steps=STEPS, batch=BATCH, generator=g)
    h, yy = ot.h, y[:, 0]
    bounds = (h[:-1] - h[1:]) / (yy[1:] - yy[:-1])
    c = w.cumsum(0)[:-1]
    exact = torch.from_numpy(norm.ppf(c.numpy()))
    # a boundary's error is its cell-mass error over the normal density there
    tol = 5 * (c * (1 - c) / N_FIT).sqrt() / torch.from_numpy(norm.pdf(exact.numpy()))
    assert bool(((bounds - exact).abs() < tol).all()), (bounds - exact, tol)
    z = torch.linspace(-3, 3, 601, dtype=torch.float64)[:, None]
    quantile = y[torch.searchsorted(exact, z[:, 0])]
    far = (z - exact).abs().min(dim=1).values > 0.02
    assert torch.equal(ot(z)[far], quantile[far])


def test_sampler_is_the_ot_map_then_the_teachers_flow_from_t_start(oracle):
    """The DPM-OT sample converges to the exact flow of T(z) from t_s at DPM-Solver++(2M)'s
    second order (20 -> 40 steps: RMS error / ~4)."""
    g = torch.Generator().manual_seed(3)
    student = dpm_ot(oracle.teacher, oracle.data[:200], t_start=0.4, steps=100,
                     batch=1024, solver="dpm++2m", generator=g)
    x1 = oracle.x1[:100]
    xs = student.ot(x1)
    assert bool((xs[:, None] == student.ot.targets[None]).all(-1).any(1).all())
    ref = oracle.gmm.flow(oracle.path, xs, 0.4, oracle.path.t_min)
    errs = [float(((student.sample(x1, nfe=k) - ref) ** 2).sum(1).mean().sqrt())
            for k in (20, 40)]
    assert errs[1] < 5e-3 and errs[1] < errs[0] / 3, errs


def test_bad_input_is_refused(oracle):
    y = torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(InterpolantError, match="positive numbers summing to 1"):
        fit_semidiscrete_ot(y, torch.tensor([0.5, 0.5, 0.5, -0.5]))
    with pytest.raises(InterpolantError, match="steps must be a positive integer"):
        fit_semidiscrete_ot(y, steps=0)
    with pytest.raises(InterpolantError, match="OT targets"):
        fit_semidiscrete_ot(torch.zeros(3))
    ot = fit_semidiscrete_ot(y, steps=2, batch=16)
    with pytest.raises(InterpolantError, match="does not match the OT targets"):
        ot(torch.randn(5, 3, dtype=torch.float64))
    with pytest.raises(InterpolantError, match="t_start must lie in"):
        dpm_ot(oracle.teacher, oracle.data[:10], t_start=0.0, steps=2)
    with pytest.raises(InterpolantError, match="Denoiser"):
        dpm_ot(lambda x, t: x, oracle.data[:10], steps=2)


def test_distill_dpm_ot_spends_only_the_solver_steps(oracle):
    """distill(..., "dpm-ot") builds the OT student; the map costs no network evaluation."""
    from interpolant import fewstep as fs

    teacher = oracle.gmm.denoiser(oracle.path)
    student = fs.distill(teacher, "dpm-ot", data=oracle.data[:100], steps=20, t_start=0.5,
                         generator=torch.Generator().manual_seed(4))
    teacher.nfe = 0
    x = fs.sample(student, oracle.x1[:10], nfe=3)
    assert x.shape == (10, 2) and teacher.nfe == 3


def test_the_cli_refuses_dpm_ot_in_one_line(capsys, tmp_path):
    from support.cli import run_cli

    threads = torch.get_num_threads()
    try:
        code, _, err = run_cli(capsys, "distill", "--teacher", tmp_path / "t", "--method",
                               "dpm-ot", "--run-dir", tmp_path / "s")
    finally:
        torch.set_num_threads(threads)  # the command sets its own thread count
    assert code == 2 and "library only" in err and len(err.strip().splitlines()) == 1
