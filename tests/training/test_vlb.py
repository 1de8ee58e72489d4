"""Improved DDPM (Nichol & Dhariwal 2021): learned-range sampling against diffusers, and the
variational bound against its closed form on a Gaussian data law."""

from __future__ import annotations

import math

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.solvers.ddpm_learned import (WITH_RANGE, DDPMLearned, LearnedRangeDenoiser,
                                              posterior_step)

F64 = torch.float64


def _stand_in(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """A deterministic network of the DDPM index ``k``: (eps, r), r in (-1, 1)."""
    kk = k.view(-1, *([1] * (x.ndim - 1)))
    eps = 0.7 * torch.tanh(x) + 0.1 * torch.sin(kk / 97.0)
    r = torch.tanh(torch.cos(3.0 * x + kk / 300.0))
    return torch.cat([eps, r], dim=1)


@pytest.mark.parametrize("n,steps,clip", [(100, 100, None), (1000, 50, None), (1000, 50, 1.0)])
def test_learned_range_sampling_matches_diffusers(n, steps, clip):
    """Every index of a short schedule, and diffusers' 'leading' strided steps of the default
    one, with and without clipping x0: the same samples to float64 rounding."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=n, variance_type="learned_range",
                                    clip_sample=clip is not None, clip_sample_range=clip or 1.0)
    sched.alphas_cumprod = sched.alphas_cumprod.to(F64)  # float64 arithmetic, for parity
    sched.one = torch.tensor(1.0, dtype=F64)
    sched.set_timesteps(steps)
    x1 = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    x, gen = x1.clone(), torch.Generator().manual_seed(5)
    for k in sched.timesteps:
        out = _stand_in(x, torch.full((x.shape[0],), float(k), dtype=F64))
        x = sched.step(out, int(k), x, generator=gen).prev_sample
    path = ip.paths.VPDiscrete(sched.alphas_cumprod)
    ts = torch.tensor([(int(k) + 1) / n for k in sched.timesteps] + [0.0], dtype=F64)
    den = LearnedRangeDenoiser(_stand_in, path, time_scale=n, time_shift=-1)
    ours = ip.sample(den, x1, solver=DDPMLearned(clip=clip), grid=ts,
                     generator=torch.Generator().manual_seed(5))
    assert den.nfe == steps
    torch.testing.assert_close(ours, x, rtol=1e-11, atol=1e-12)


def test_posterior_step_is_ddpm_on_a_vp_schedule():
    """c_0, c_x, beta, beta~ in path form against Ho et al.'s eq. 7 on alphas_cumprod."""
    path = ip.paths.VPDiscrete.from_betas("linear", 1000)
    ac = path.alphas_cumprod
    for k, j in ((999, 979), (500, 499), (3, 0)):
        st = posterior_step(path, (k + 1) / 1000, (j + 1) / 1000)
        a_s, a_t = float(ac[k]), float(ac[j])
        beta = 1 - a_s / a_t
        want = (math.sqrt(a_t) * beta / (1 - a_s), math.sqrt(a_s / a_t) * (1 - a_t) / (1 - a_s),
                beta, (1 - a_t) / (1 - a_s) * beta)
        for got, ref in zip(st[:4], want):
            assert math.isclose(got, ref, rel_tol=1e-11)


def test_the_wrapper_refuses_a_network_without_the_variance_half():
    den = LearnedRangeDenoiser(lambda x, t: x, ip.paths.VPLinear())
    with pytest.raises(InterpolantError, match="twice the channels"):
        den(torch.zeros(2, 3, dtype=F64), 0.5, None, WITH_RANGE)


# --- the bound ---------------------------------------------------------------------------

MU, VAR = torch.tensor([0.4, -0.3], dtype=F64), torch.tensor([0.5, 0.05], dtype=F64)
SHORT = ip.paths.VPDiscrete.from_betas("linear", 40, beta_start=2e-3, beta_end=0.3)


def _exact_network(path):
    """(eps, r) of the exact reverse kernel of N(MU, diag(VAR)): the oracle's eps, and r
    placing log Sigma at the exact log Var(x_{k-1} | x_k) = log(beta~ + c_0^2 Var(x0 | x_k))."""
    den = ip.oracle.GaussianMixture(MU[None], torch.diag(VAR)[None]).denoiser(path)
    n = path.num_train_timesteps

    def net(x, t):
        s = float(t[0])
        k = round(s * n) - 1
        st = posterior_step(path, s, k / n, clip_next=2 / n if k == 0 else None)
        a, sig = path.alpha(s), path.sigma(s)
        post = VAR * sig**2 / (a**2 * VAR + sig**2)  # Var(x0 | x_k)
        v = (torch.log(st.beta_tilde + st.c_0**2 * post) - st.log_beta_tilde) / (
            st.log_beta - st.log_beta_tilde)
        return torch.cat([den(x, s, None, "eps"), (2 * v - 1).expand_as(x)], dim=1)
    return net


def _sigma_points():
    """(x0, eps) at the 4D symmetric sigma points of N(MU, diag(VAR)) x N(0, I): the mean of a
    quadratic over them is its exact expectation (every term of the bound is quadratic here)."""
    n = 2 * MU.numel()
    z = math.sqrt(n) * torch.cat([torch.eye(n), -torch.eye(n)]).to(F64)
    return MU + z[:, :2] * VAR.sqrt(), z[:, 2:]


def test_the_bound_at_the_exact_kernel_equals_its_closed_form():
    """With the exact reverse kernels (a Gaussian data law: every kernel is Gaussian, the
    learned range holds it) E[bound] = H(q_0) + KL(q_T || N(0, I)), and each term
    E[L_k] = I(x_{k-1}; x0 | x_k) = sum_i log(Var(x_{k-1} | x_k) / beta~) / 2, E[L_0] =
    sum_i log(2 pi e Var(x0 | x_1)) / 2: closed forms written without the library's bound."""
    path = SHORT
    from interpolant.training import vlb
    x0, eps = _sigma_points()
    kernel = vlb.learned_range_kernel(LearnedRangeDenoiser(_exact_network(path), path))
    n = path.num_train_timesteps
    ac = path.alphas_cumprod
    terms = []
    for k in range(n):
        ks = torch.full((x0.shape[0],), k, dtype=torch.int64)
        terms.append(vlb.bound_term(path, kernel, x0, ks, eps).mean().item())
    prior = vlb.prior_kl(path, x0).mean().item()
    for k in (0, 1, 17, n - 1):
        a_s, a_t = float(ac[k]), float(ac[k - 1]) if k else 1.0
        post = VAR * (1 - a_s) / (a_s * VAR + 1 - a_s)
        if k == 0:
            want = 0.5 * torch.log(2 * math.pi * math.e * post).sum()
        else:
            beta = 1 - a_s / a_t
            bt = (1 - a_t) / (1 - a_s) * beta
            c0 = math.sqrt(a_t) * beta / (1 - a_s)
            want = 0.5 * torch.log((bt + c0**2 * post) / bt).sum()
        assert math.isclose(terms[k], float(want), rel_tol=1e-9, abs_tol=1e-12), k
    a_T = float(ac[-1])
    var_T = a_T * VAR + 1 - a_T
    kl_T = 0.5 * (var_T + a_T * MU**2 - 1 - torch.log(var_T)).sum()
    entropy = 0.5 * torch.log(2 * math.pi * math.e * VAR).sum()
    assert math.isclose(sum(terms) + prior, float(entropy + kl_T), rel_tol=1e-10)


def test_a_wrong_variance_loosens_the_bound():
    """The same mean with r = -1 (beta~, DDPM's fixed_small) is a looser bound."""
    from interpolant.training import vlb
    path = SHORT
    exact = _exact_network(path)
    fixed = lambda x, t: torch.cat([exact(x, t)[:, :2], -torch.ones_like(x)], 1)  # noqa: E731
    x0, eps = _sigma_points()
    gen = torch.Generator().manual_seed(0)
    bounds = [vlb.nll_bound(path, vlb.learned_range_kernel(LearnedRangeDenoiser(f, path)),
                            x0, generator=gen).mean() for f in (exact, fixed)]
    assert bounds[1] > bounds[0] + 0.05


def test_discretized_decoder_is_a_distribution_over_the_256_levels():
    from scipy.stats import norm

    from interpolant.training.vlb import discretized_gaussian_log_likelihood as dll
    levels = torch.linspace(-1, 1, 256, dtype=F64)
    for mean, log_var in ((0.3, -3.0), (-0.99, -9.0), (0.999, 1.0), (0.0, -14.0)):
        p = dll(levels, torch.full_like(levels, mean), torch.full_like(levels, log_var)).exp()
        assert math.isclose(float(p.sum()), 1.0, rel_tol=1e-12)
        mid = float(levels[128])
        c = lambda u: norm.cdf((u - mean) / math.exp(0.5 * log_var))  # noqa: E731
        assert math.isclose(float(p[128]), c(mid + 1 / 255) - c(mid - 1 / 255), rel_tol=1e-9,
                            abs_tol=1e-300)


def test_hybrid_loss_trains_the_variance_only_through_the_bound():
    """Stop-grad on the mean: d(lam N L_k)/d eps = 0, so the eps half's gradient is that of
    L_simple alone, and the r half's is the bound's."""
    from interpolant.training import vlb
    path = ip.paths.VPDiscrete.from_betas("linear", 100)
    w = torch.full((2, 2), 0.2, dtype=F64, requires_grad=True)
    net = lambda x, t: torch.cat([x * w[0], x * w[1] + 0.1], 1)  # noqa: E731
    den = LearnedRangeDenoiser(net, path)
    g = torch.Generator().manual_seed(3)
    x0, noise = torch.randn(64, 2, generator=g, dtype=F64), torch.randn(64, 2, generator=g,
                                                                         dtype=F64)
    k = torch.randint(0, 100, (64,), generator=g)
    grad_h, = torch.autograd.grad(vlb.hybrid_loss(den, x0, noise, k, lam=0.5), w)
    xk = path.sample(x0, (k + 1).to(F64) / 100, noise)
    grad_s, = torch.autograd.grad((xk * w[0] - noise).pow(2).mean(), w)
    torch.testing.assert_close(grad_h[0], grad_s[0], rtol=1e-12, atol=1e-14)
    assert grad_h[1].abs().min() > 0


def _hybrid_fit(lam, steps=250):
    """An (eps, r) MLP fitted to N(MU, diag(VAR)) on SHORT by the hybrid loss; its bound in
    bits per dimension on held-out data, with the standard error."""
    from interpolant.processes.nonequilibrium import KernelMLP
    from interpolant.training import vlb
    torch.manual_seed(0)
    net = KernelMLP(2).double()
    den = LearnedRangeDenoiser(net, SHORT)
    g = torch.Generator().manual_seed(1)
    draw = lambda n: MU + VAR.sqrt() * torch.randn(n, 2, generator=g, dtype=F64)  # noqa: E731
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        x0, noise = draw(256), torch.randn(256, 2, generator=g, dtype=F64)
        k = torch.randint(0, SHORT.num_train_timesteps, (256,), generator=g)
        loss = vlb.hybrid_loss(den, x0, noise, k, lam=lam)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = draw(2000)
    with torch.no_grad():
        bpd = vlb.bits_per_dim(vlb.nll_bound(SHORT, vlb.learned_range_kernel(den), x,
                                             generator=torch.Generator().manual_seed(2)), x)
    return bpd.mean().item(), bpd.std().item() / math.sqrt(x.shape[0])


def test_hybrid_training_learns_variances_that_tighten_the_bound():
    """Improved DDPM's claim at toy scale: the hybrid loss (lam = 1e-3) gives a bound in bits
    per dimension close to the exact entropy (never below it, within Monte Carlo error), and
    tighter than L_simple alone (lam = 0: r stays at its zero start, v = 1/2)."""
    entropy = float(0.5 * torch.log(2 * math.pi * math.e * VAR).sum()) / (2 * math.log(2))
    hybrid, se = _hybrid_fit(1e-3)
    simple, _ = _hybrid_fit(0.0)
    assert entropy - 4 * se < hybrid < entropy + 0.25
    assert hybrid < simple - 0.2
