"""Denoising diffusion GANs (Xiao et al. 2022) against the mixture oracle: the step's
parameterisation is exact given an exact generator, the GAN losses have the right optimum and
gradient, and a short training beats DDIM with the exact denoiser at two steps."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.fewstep import ddgan as dg

pytestmark = pytest.mark.usefixtures("one_thread")


def exact_generator(gmm, path):
    """``G*(x_t, z, t, cond)``: an exact draw of ``p(x0 | x_t, c)`` as a function of
    ``z ~ N(0, I_{D+1})`` (``z[:, D]`` picks the component by the inverse CDF of the
    responsibilities; the component's Gaussian posterior is ``mu_k + U_k (a l r / v) +
    U_k sqrt(l s^2 / v) z`` with ``v = a^2 l + s^2`` and ``r = U_k^T (x - a mu_k)``)."""
    def gen(x, z, t, cond=None):
        t64 = t.to(torch.float64)
        a, s = path.alpha(t64), path.sigma(t64)
        log_joint, resid, var = gmm._components(x, a, s, cond)
        u = 0.5 * (1 + torch.erf(z[:, -1].double() / math.sqrt(2)))
        cdf = torch.softmax(log_joint, 1).cumsum(1)
        k = torch.searchsorted(cdf, u[:, None]).squeeze(1).clamp(max=gmm.n_components - 1)
        rows = torch.arange(x.shape[0])
        lam, v, r = gmm.eigvals[k], var[rows, k], resid[rows, k]
        rot = a[:, None] * lam * r / v + (lam * s[:, None] ** 2 / v).sqrt() * z[:, :-1].double()
        return (gmm.means[k] + torch.einsum("nde,ne->nd", gmm.eigvecs[k], rot)).to(x.dtype)
    return gen


def z_scores(x, gmm):
    """(sample mean - exact expectation) / standard error, for the statistics x_i, x_i x_j and
    the responsibilities r_k(x) (whose expectation under the mixture is w_k)."""
    log_joint, _, _ = gmm._components(x, 1.0, 0.0)
    second = (x[:, :, None] * x[:, None, :]).flatten(1)
    stats = torch.cat([x, second, torch.softmax(log_joint, 1)], 1)
    exact_second = (gmm.covs + gmm.means[:, :, None] * gmm.means[:, None, :]).flatten(1)
    exact = torch.cat([gmm.weights @ gmm.means, gmm.weights @ exact_second, gmm.weights])
    return (stats.mean(0) - exact) / (stats.std(0) / math.sqrt(x.shape[0]))


@pytest.mark.parametrize("t,s", [(1.0, 0.0), (1.0, 0.5), (0.5, 0.0), (0.6, 0.2)])
def test_exact_generator_gives_the_exact_marginal_for_any_step(oracle, t, s):
    """x_t ~ p_t, x0_hat ~ p(x0 | x_t), x_s ~ q(x_s | x_t, x0_hat) has law p_s exactly: every
    moment and mean responsibility within 5 standard errors (20 000 samples); the library's
    DDPM step (the Gaussian kernel with the exact posterior mean) misses by > 10 of them on
    the large steps (on 1 -> 0.5 the exact kernel is still nearly Gaussian)."""
    gmm, path = oracle.gmm, oracle.path
    g = torch.Generator().manual_seed(3)
    x_t = gmm.marginal(path, t).sample(20_000, generator=g)
    grid = torch.tensor([t, s], dtype=torch.float64)
    x_s = dg.ddgan_sample(exact_generator(gmm, path), dg.step_table(path, grid), x_t, 3, g)
    target = gmm.marginal(path, s) if s > 0 else gmm
    assert float(z_scores(x_s, target).abs().max()) < 5.0
    gauss = ip.sample(gmm.denoiser(path), x_t, solver="ddpm", grid=grid, t_start=t,
                      generator=g)
    if s != 0.5:
        assert float(z_scores(gauss, target).abs().max()) > 10.0


def test_two_exact_generator_steps_sample_the_data_where_ddpm_does_not(oracle):
    """The sampler's loop over the training grid (1 -> 0.5 -> t_min): with G* the two steps
    draw exactly p_{t_min}; DDPM's two Gaussian steps with the exact denoiser do not."""
    gmm, path = oracle.gmm, oracle.path
    g = torch.Generator().manual_seed(5)
    x1 = gmm.marginal(path, 1.0).sample(20_000, generator=g)
    grid = ip.grids.make("uniform", path, 2)
    x = dg.ddgan_sample(exact_generator(gmm, path), dg.step_table(path, grid), x1, 3, g)
    target = gmm.marginal(path, path.t_min)
    assert float(z_scores(x, target).abs().max()) < 5.0
    ddpm = ip.sample(gmm.denoiser(path), x1, solver="ddpm", grid=grid, generator=g)
    assert float(z_scores(ddpm, target).abs().max()) > 10.0


def test_step_table_composes_to_the_paths_marginals(oracle):
    """Forward kernel: a alpha_s = alpha_t, a^2 sigma_s^2 + std^2 = sigma_t^2; posterior:
    c_0 + c_x alpha_t = alpha_s, c_x^2 sigma_t^2 + post_std^2 = sigma_s^2 (x_s | x0 is
    recovered through x_t), on a 4-step grid ending at clean data (c_0 = 1, c_x = 0 there)."""
    path = oracle.path
    times = ip.grids.make("uniform", path, 4, t_end=0.0)
    tab = dg.step_table(path, times)
    al = torch.tensor([path.alpha(float(u)) for u in times], dtype=torch.float64)
    sg = torch.tensor([path.sigma(float(u)) for u in times], dtype=torch.float64)
    torch.testing.assert_close(tab.a * al[1:], al[:-1])
    torch.testing.assert_close(tab.a**2 * sg[1:] ** 2 + tab.std**2, sg[:-1] ** 2)
    torch.testing.assert_close(tab.c_0 + tab.c_x * al[:-1], al[1:])
    torch.testing.assert_close(tab.c_x**2 * sg[:-1] ** 2 + tab.post_std**2, sg[1:] ** 2)
    assert float(tab.c_0[-1]) == 1.0 and float(tab.c_x[-1]) == 0.0


def test_discriminator_optimum_r1_and_generator_gradient():
    """Real N(0, 1), fake N(1, 1): log p_r / p_f = 0.5 - x is linear, so the logistic
    discriminator minimising L_D converges to w = -1, b = 0.5 (sigmoid(D*) = p_r/(p_r+p_f));
    R1 of a linear D is w^2; the non-saturating loss pushes fakes towards the real data:
    d/dx softplus(-D*(x)) = sigmoid(x - 0.5) > 0."""
    g = torch.Generator().manual_seed(0)
    real = torch.randn(20_000, 1, generator=g, dtype=torch.float64)
    fake = 1.0 + torch.randn(20_000, 1, generator=g, dtype=torch.float64)
    disc = torch.nn.Linear(1, 1).double()
    opt = torch.optim.LBFGS(disc.parameters(), max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = dg.discriminator_loss(disc(real)[:, 0], disc(fake)[:, 0])
        loss.backward()
        return loss

    opt.step(closure)
    w, b = float(disc.weight.detach()), float(disc.bias.detach())
    assert abs(w + 1) < 0.05 and abs(b - 0.5) < 0.05, (w, b)
    x = real[:100].clone().requires_grad_(True)
    assert abs(float(dg.r1_penalty(disc(x)[:, 0], x).detach()) - w * w) < 1e-12
    xf = fake[:100].clone().requires_grad_(True)
    dg.generator_loss(0.5 - xf[:, 0]).backward()
    torch.testing.assert_close(xf.grad[:, 0] * 100, torch.sigmoid(xf.detach()[:, 0] - 0.5))


def test_two_step_ddgan_beats_ddim_with_the_exact_denoiser(oracle):
    """300 iterations on aniso2d (float32, 2 steps), distances to exact samples. Measured
    over seeds 0-7: MMD^2 (RBF, bandwidth 0.3) DDGAN 0.020-0.044 vs DDIM(2) with the exact
    denoiser 0.137-0.145; sliced W2 0.17-0.30 vs 0.47-0.49 (exact samples: 0.03-0.06).
    Asserted: MMD^2 < 0.5 x and SW2 < 0.8 x DDIM's."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    data = oracle.gmm.sample(4000, generator=g).float()
    student = dg.train_ddgan(data, steps=300, n_steps=2, generator=g)
    assert student.steps == 2 and len(student.losses) == 300
    x1 = torch.randn(2000, 2, dtype=torch.float64, generator=g)
    ref = oracle.gmm.sample(2000, generator=g)
    gan = student.sample(x1.float(), 2, g).double()
    ddim = ip.sample(oracle.teacher, x1, solver="ddim", steps=2)
    mmd = [ip.metrics.mmd(x, ref, bandwidth=0.3) for x in (gan, ddim)]
    sw = [ip.metrics.sliced_wasserstein(x, ref) for x in (gan, ddim)]
    assert mmd[0] < 0.5 * mmd[1] and sw[0] < 0.8 * sw[1], (mmd, sw)
    with pytest.raises(InterpolantError, match="trained for 2 steps"):
        student.sample(x1.float(), 1)


def test_bad_input_and_divergence_are_refused(oracle):
    data = oracle.data[:64].float()
    with pytest.raises(InterpolantError, match="n_steps"):
        dg.train_ddgan(data, steps=1, n_steps=0)
    with pytest.raises(InterpolantError, match="labels must be int64"):
        dg.train_ddgan(data, steps=1, labels=torch.zeros(3, dtype=torch.int64))
    with pytest.raises(InterpolantError, match="r1, rec_weight and adv_weight"):
        dg.train_ddgan(data, steps=1, r1=-1.0)
    with pytest.raises(InterpolantError, match="floating tensor"):
        dg.train_ddgan(torch.zeros(5, dtype=torch.int64), steps=1)
    with pytest.raises(InterpolantError, match="Gaussian path"):
        dg.train_ddgan(data, steps=1, path="vp")
    with pytest.raises(InterpolantError, match="must be a torch.nn.Module"):
        dg.train_ddgan(data, steps=1, generator_net=lambda x, z, t, c: x)
    with pytest.raises(InterpolantError, match="give generator_net="):
        dg.train_ddgan(torch.zeros(4, 1, 8, 8), steps=1)
    bad = data.clone()
    bad[:] = float("nan")
    with pytest.raises(InterpolantError, match="diverged at step 0"):
        dg.train_ddgan(bad, steps=2, batch_size=8)


def test_distill_trains_a_ddgan_without_a_teacher_and_emdm_with_labels(oracle):
    """``distill(None, "ddgan")`` trains from data on the given path; a teacher lends its path;
    ``fs.sample`` draws with the trained number of steps; EMDM takes ``labels=``."""
    from interpolant import fewstep as fs

    data = oracle.data[:256].float()
    student = fs.distill(None, "ddgan", data=data, steps=2, n_steps=4, batch_size=16,
                         path=ip.paths.VPCosine())
    assert isinstance(student.path, ip.paths.VPCosine) and student.steps == 4
    assert fs.sample(student, torch.randn(8, 2), nfe=4).shape == (8, 2)
    lent = fs.distill(oracle.teacher, "ddgan", data=data, steps=1, n_steps=1, batch_size=16)
    assert lent.path is oracle.path
    labels = (data[:, 0] > 0).long()
    cond = fs.distill(None, "emdm", data=data, labels=labels, steps=1, batch_size=16)
    assert cond.method == "emdm"
    assert fs.sample(cond, torch.randn(8, 2), nfe=2, cond=labels[:8]).shape == (8, 2)
    with pytest.raises(InterpolantError, match="EMDM is conditional"):
        fs.distill(None, "emdm", data=data, steps=1)


def test_distill_command_refuses_the_gans_in_one_line(capsys, tmp_path):
    """A run holds a network sampled by a solver; a GAN generator is library only. (The
    command sets torch's thread count; it is restored for the tests that follow.)"""
    from support.cli import run_cli

    threads = torch.get_num_threads()
    try:
        for method in ("ddgan", "emdm"):
            code, _, err = run_cli(capsys, "distill", "--teacher", tmp_path, "--method", method,
                                   "--run-dir", tmp_path / "student")
            assert code == 2 and err.startswith("interpolant: error: ")
            assert "library only" in err and err.count("\n") == 1
    finally:
        torch.set_num_threads(threads)
