"""SCott (stochastic consistency distillation) against the exact Gaussian oracle."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant import fewstep as fs
from interpolant.errors import InterpolantError

from .conftest import small_mlp


def _grid_batch(oracle, n=6, size=48):
    ts = fs.consistency_grid(oracle.path, n)
    g = torch.Generator().manual_seed(1)
    idx = torch.arange(size) % n
    x0 = oracle.data[:size]
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    return ts, idx, oracle.path.sample(x0, ts[idx + 1], noise)


@pytest.mark.parametrize("sde, ode", [("dpm++2m-sde", "dpm++2m"), ("ddim", "ddim")])
def test_zero_noise_is_the_cd_target_bit_for_bit(oracle, sde, ode):
    """eta = 0: SCott's teacher step is the ODE solver's, so its target is CD's exactly."""
    ts, idx, x_next = _grid_batch(oracle)
    scott = fs.cd_pairs(fs.stochastic_step(oracle.teacher, 0.0, 3, sde,
                                           torch.Generator().manual_seed(0)), x_next, idx, ts)
    cd = fs.cd_pairs(fs.teacher_step(oracle.teacher, ode, 3), x_next, idx, ts)
    assert torch.equal(scott, cd)
    noisy = fs.cd_pairs(fs.stochastic_step(oracle.teacher, 0.5, 3, sde,
                                           torch.Generator().manual_seed(0)), x_next, idx, ts)
    assert float((noisy - cd).abs().max()) > 1e-2  # eta > 0 does inject noise


@pytest.mark.parametrize("solver, eta", [("dpm++2m-sde", 1.0), ("dpm++2m-sde", 0.3)])
def test_stochastic_target_has_the_exact_marginal(solver, eta):
    """With the exact denoiser of one Gaussian, x^_n = SDE-step(x_{n+1}) for x_{n+1} from
    the exact law at t_{n+1} has the exact law at t_n (moments against the oracle's
    marginal) as the substeps grow: the error of one substep is the solver's, and it falls
    to the Monte Carlo level of the input (~0.004) at 16 substeps."""
    gmm, path = ip.oracle.GaussianMixture.preset("gauss2d"), ip.paths.VPLinear()
    den = gmm.denoiser(path)
    ts = fs.consistency_grid(path, 6)
    t_from, t_to = float(ts[2]), float(ts[1])  # 0.30 -> 0.05, where the law changes most
    g = torch.Generator().manual_seed(0)
    n = 100_000
    x = path.sample(gmm.sample(n, generator=g), t_from,
                    torch.randn(n, 2, generator=g, dtype=torch.float64))
    want = gmm.marginal(path, t_to)
    errs = []
    for k in (1, 4, 16):
        y = fs.stochastic_step(den, eta, k, solver, torch.Generator().manual_seed(1))(
            x, t_from, t_to)
        assert float((y.mean(0) - want.means[0]).abs().max()) < 0.005
        errs.append(float((torch.cov(y.T) - want.covs[0]).abs().max()))
    assert errs[0] > 0.1 and errs[0] > errs[1] > errs[2], errs
    assert errs[2] < 0.006, errs


def test_bad_noise_strength_or_solver_is_refused(oracle):
    with pytest.raises(InterpolantError, match=r"eta must lie in \[0, 1\]"):
        fs.stochastic_step(oracle.teacher, 1.5)
    with pytest.raises(InterpolantError, match="needs a stochastic solver"):
        fs.stochastic_step(oracle.teacher, 0.5, solver="heun")
    with pytest.raises(InterpolantError, match="substeps must be a positive integer"):
        fs.stochastic_step(oracle.teacher, 0.5, substeps=0)


def test_scott_student_against_cd_at_equal_steps(oracle):
    """200 steps each, the same ODE solver and substeps: at eta = 0 SCott is CD (the same
    losses); with noise (eta = 0.05) the student learns the average of stochastic targets,
    which pulls its one-step map off the exact flow map (it loses to CD there, ~0.6 vs 0.3
    RMS) while its 2-step samples stay close to CD's and beat the teacher's 2 DDIM steps."""
    def run(student, steps, **kw):
        g = torch.Generator().manual_seed(3)
        common = dict(steps=steps, n=10, batch_size=128, sigma_data=1.0, generator=g)
        if not kw:
            step = fs.teacher_step(oracle.teacher, "dpm++2m", 2)
            model = fs.consistency_distillation(oracle.teacher, student, oracle.data,
                                                step=step, **common)
            return fs.ConsistencyStudent(model, "cd", 0.0, model.losses)
        return fs.distill(oracle.teacher, "scott", student=student, data=oracle.data, eta=0.0,
                          substeps=2, **common, **kw)

    assert run(small_mlp(), 8, noise=0.0).losses == run(small_mlp(), 8).losses
    cd, scott = run(small_mlp(), 200), run(small_mlp(), 200, noise=0.05)
    errs = {nfe: oracle.error(fs.sample(scott, oracle.x1, nfe=nfe)) for nfe in (1, 2)}
    cd_one = oracle.error(fs.sample(cd, oracle.x1, nfe=1))
    ddim2 = oracle.error(ip.sample(oracle.teacher, oracle.x1, solver="ddim", steps=2))
    assert errs[1] > 1.5 * cd_one, (errs, cd_one)
    assert errs[2] < 0.6 * ddim2, (errs, ddim2)
