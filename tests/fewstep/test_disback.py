"""Score distillation and DisBack (Zhang et al. 2024): the gradient against the closed-form KL
of noised Gaussians, the fixed point, and a short distillation on a 1-D mixture."""

from __future__ import annotations

import copy

import pytest
import torch

import interpolant as ip
from interpolant.errors import InterpolantError
from interpolant.fewstep.disback import (backtracking_targets, disback, record_path,
                                         score_distillation, sd_loss)

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64
PATH = ip.paths.VPLinear()
M = torch.tensor([0.5, -1.0], dtype=F64)
S = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64)


class Gauss(torch.nn.Module):
    """G(z) = mu + A z: the law N(mu, A A^T), its noised marginals Gaussian."""

    def __init__(self, mu: torch.Tensor, a: torch.Tensor) -> None:
        super().__init__()
        self.mu, self.a = torch.nn.Parameter(mu.clone()), torch.nn.Parameter(a.clone())

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.mu + z @ self.a.T

    def law(self) -> ip.oracle.GaussianMixture:
        return ip.oracle.GaussianMixture(self.mu.detach()[None],
                                         (self.a @ self.a.T).detach()[None])


def kl_t(gen: Gauss, t: float) -> torch.Tensor:
    """KL(N(a mu, a^2 A A^T + s^2 I) || N(a m, a^2 S + s^2 I)) in closed form."""
    a, s = PATH.alpha(t), PATH.sigma(t)
    eye = torch.eye(2, dtype=F64)
    s0, s1 = a * a * gen.a @ gen.a.T + s * s * eye, a * a * S + s * s * eye
    d = a * (M - gen.mu)
    return 0.5 * (torch.trace(torch.linalg.solve(s1, s0)) + d @ torch.linalg.solve(s1, d) - 2
                  + torch.logdet(s1) - torch.logdet(s0))


def _grads(gen: Gauss, loss: torch.Tensor) -> torch.Tensor:
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, [gen.mu, gen.a])])


@pytest.mark.parametrize("t, unit_weight", [(0.4, True), (0.7, False)])
def test_gradient_is_the_gradient_of_the_noised_kl(t, unit_weight):
    """With exact fake and teacher scores, E[w (s_fake - s_teacher) dx_t/dphi] = w grad KL_t."""
    teacher = ip.oracle.GaussianMixture(M[None], S[None]).denoiser(PATH)
    gen = Gauss(torch.tensor([-0.2, 0.4], dtype=F64), torch.tensor([[0.3, 0.0], [0.5, 1.4]],
                                                                     dtype=F64))
    fake = gen.law().denoiser(PATH)
    w = 1.0 if unit_weight else (PATH.sigma(t) / PATH.alpha(t)) ** 2
    exact = w * _grads(gen, kl_t(gen, t))
    g = torch.Generator().manual_seed(0)
    batches, b = 30, 4000
    est = []
    for _ in range(batches):
        z, eps = (torch.randn(b, 2, generator=g, dtype=F64) for _ in range(2))
        loss = sd_loss(gen(z, None), torch.full((b,), t, dtype=F64), eps, fake, teacher,
                       (lambda u: torch.ones_like(u)) if unit_weight else None)
        est.append(_grads(gen, loss))
    est = torch.stack(est)
    se = est.std(0) / batches ** 0.5
    assert bool(((est.mean(0) - exact).abs() < 5 * se).all()), (est.mean(0), exact, se)
    assert float(se.max()) < 0.05 * float(exact.abs().max())  # a test that can tell them apart
    # a sign or alpha error is many standard errors away
    assert float((est.mean(0) + exact).norm()) > 10 * float(se.norm())


def test_gradient_vanishes_at_the_fixed_point():
    teacher = ip.oracle.GaussianMixture(M[None], S[None]).denoiser(PATH)
    gen = Gauss(M, torch.linalg.cholesky(S))
    z, eps = (torch.randn(500, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
              for _ in range(2))
    t = torch.rand(500, generator=torch.Generator().manual_seed(2), dtype=F64) * 0.9 + 0.05
    grad = _grads(gen, sd_loss(gen(z, None), t, eps, gen.law().denoiser(PATH), teacher))
    assert float(grad.abs().max()) < 1e-10
    assert float(_grads(gen, kl_t(gen, 0.5)).abs().max()) < 1e-10


class Gen(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.net = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.SiLU(),
                                       torch.nn.Linear(32, 32), torch.nn.SiLU(),
                                       torch.nn.Linear(32, 1)).double()

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class TeacherPlus(torch.nn.Module):
    """The exact teacher plus a zero-initialised correction: a fake score that starts as the
    teacher (what a copy of a teacher network is)."""

    def __init__(self, teacher: ip.Denoiser) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.teacher, self.net = teacher, ip.models.MLP(1, hidden=32, depth=2).double()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.teacher(x, t) + self.net(x, t)


def _w2(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((x.sort(0).values - ref.sort(0).values) ** 2).mean().sqrt())


@pytest.fixture(scope="module")
def mixture():
    gmm = ip.oracle.GaussianMixture(torch.tensor([[-1.5], [1.5]], dtype=F64),
                                    torch.full((2, 1, 1), 0.09, dtype=F64),
                                    torch.tensor([0.3, 0.7], dtype=F64))
    g = torch.Generator().manual_seed(0)
    return gmm.denoiser(PATH), gmm.sample(2000, generator=g), torch.randn(2000, 1, dtype=F64,
                                                                          generator=g)


def test_disback_brings_a_one_step_generator_towards_the_data(mixture):
    teacher, ref, z = mixture
    gen = Gen()
    start = _w2(gen(z, None).detach(), ref)
    fake = ip.Denoiser(TeacherPlus(teacher), PATH, "x0")
    student = disback(teacher, gen, (128, 1), steps=150, record_steps=40, snapshots=4,
                      fake=fake, lr=3e-3, fake_lr=3e-3, fake_steps=4, dtype=F64,
                      generator=torch.Generator().manual_seed(5))
    end = _w2(student.sample(z), ref)
    assert end < 0.6 * start, (start, end)


def test_degradation_path_ends_at_the_generator(mixture):
    """The last recorded snapshot denoises the generator's samples better than the teacher."""
    teacher, _, z = mixture
    gen = Gen()
    fake = ip.Denoiser(TeacherPlus(teacher), PATH, "x0")
    states = record_path(fake, gen, (128, 1), steps=60, snapshots=3, lr=3e-3,
                         generator=torch.Generator().manual_seed(6), dtype=F64)
    assert len(states) == 3
    targets = backtracking_targets(teacher, fake, states)  # s_2, s_1, then the teacher
    assert len(targets) == 3 and targets[-1] is teacher
    for target, state in zip(targets[:2], (states[1], states[0])):
        got = target.model.state_dict()
        assert all(torch.equal(got[k], v) for k, v in state.items())
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0])  # it moves
    x0 = gen(z, None).detach()
    t = torch.full((len(z),), 0.3, dtype=F64)
    xt = PATH.sample(x0, t, torch.randn_like(x0))
    with torch.no_grad():
        err_fake = float(((fake(xt, t) - x0) ** 2).mean())
        err_teacher = float(((teacher(xt, t) - x0) ** 2).mean())
    assert err_fake < 0.5 * err_teacher, (err_fake, err_teacher)


def test_bad_input_is_refused(mixture):
    teacher = mixture[0]
    with pytest.raises(InterpolantError, match="Denoiser"):
        disback(lambda x, t: x, Gen(), (8, 1), steps=2)
    with pytest.raises(InterpolantError, match="give fake="):
        score_distillation(teacher, Gen(), (8, 1), steps=2, dtype=F64)
    with pytest.raises(InterpolantError, match="the teacher's path"):
        disback(teacher, Gen(), (8, 1), steps=2, dtype=F64,
                fake=ip.Denoiser(TeacherPlus(teacher), ip.paths.VPCosine(), "x0"))
    fake = ip.Denoiser(TeacherPlus(teacher), PATH, "x0")
    with pytest.raises(InterpolantError, match="cannot take noise of shape"):
        disback(teacher, Gen(), (8, 2), steps=2, fake=fake, dtype=F64)
    with pytest.raises(InterpolantError, match="snapshots must be"):
        disback(teacher, Gen(), (8, 1), steps=2, record_steps=3, snapshots=5, fake=fake,
                dtype=F64)
    student = score_distillation(teacher, Gen(), (8, 1), steps=1, fake=copy.deepcopy(fake),
                                 dtype=F64)
    with pytest.raises(InterpolantError, match="nfe=1"):
        student.sample(torch.zeros(3, 1, dtype=F64), nfe=2)


def test_distill_disback_returns_a_one_step_generator(mixture):
    from interpolant import fewstep as fs

    teacher, ref, z = mixture
    fake = ip.Denoiser(TeacherPlus(teacher), PATH, "x0")
    student = fs.distill(teacher, "disback", student=Gen(), data=ref, steps=2, record_steps=2,
                         snapshots=1, fake=fake, batch_size=8)
    assert isinstance(student, fs.GeneratorStudent) and student.method == "disback"
    assert fs.sample(student, z[:4]).shape == (4, 1)
