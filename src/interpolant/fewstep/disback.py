"""Score distillation of a one-step generator, plain and with DisBack's distribution
backtracking (Zhang et al. 2024, "Distribution backtracking builds a faster convergence
trajectory for one-step diffusion distillation").

**Score distillation** (Diff-Instruct, DMD). A generator ``x = G_phi(z)`` (called as
``G(z, t)`` with ``t = 1``, like any network of the library) is moved by::

    grad_phi = E_{t, z, eps} [ w(t) (s_fake(x_t, t) - s_teacher(x_t, t))^T dx_t / dphi ],
    x_t = alpha_t G_phi(z) + sigma_t eps,

where ``s_fake`` is the score of the generator's own noised law, learned online by denoising
score matching on its samples. With the exact fake score this is ``E_t w(t) grad_phi
KL(p_phi,t || p_teacher,t)`` (the derivative of the density at fixed ``x`` has zero mean); at
``p_phi = p_data`` it vanishes. As ``s = (alpha x0^ - x_t) / sigma^2``, the default
``w = sigma^2 / alpha^2`` gives the per-sample gradient ``(x0^_fake - x0^_teacher)^T dG/dphi``
(DMD's form). :func:`sd_loss` is the surrogate whose gradient is ``grad_phi``.

**DisBack.** Plain distillation starts with ``s_fake`` = the teacher, which does not match the
initial generator (the "score mismatch"). DisBack (1) *records the degradation path*: a copy
of the teacher is trained by score matching on samples of the initial generator ``G_0``,
saving ``N`` snapshots ``s_1 .. s_N`` (``s_N`` fits ``G_0``; ``s_0`` is the teacher); (2)
*backtracks*: ``s_fake`` starts from ``s_N`` and the generator is distilled towards
``s_{N-1}``, then ``s_{N-2}``, ..., and finally the teacher ``s_0``, a fixed number of
generator steps per target, ``s_fake`` updated on the generator's samples throughout.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..paths import broadcast_time
from ..predictions import Denoiser
from ..training.objectives import Objective
from .loop import fit

__all__ = ["sd_loss", "GeneratorStudent", "score_distillation", "disback", "record_path",
           "backtracking_targets"]

Weight = Callable[[Tensor], Tensor]


def sd_loss(x: Tensor, t: Tensor, noise: Tensor, fake: Denoiser, teacher: Denoiser,
            weight: Weight | None = None) -> Tensor:
    """The surrogate ``mean_b w(t_b) <sg(s_fake - s_teacher)(x_t), x_t>`` whose gradient in the
    generator's parameters (through ``x = G(z)``) is the score-distillation gradient (module
    docstring); ``weight(t)`` defaults to ``sigma^2 / alpha^2``."""
    path = teacher.path
    t64 = t.to(torch.float64)
    a, s = path.alpha(t64), path.sigma(t64)
    w = (s / a) ** 2 if weight is None else weight(t64).to(torch.float64)
    x_t = broadcast_time(a.to(x.dtype), x) * x + broadcast_time(s.to(x.dtype), x) * noise
    with torch.no_grad():
        diff = fake(x_t, t.to(x.dtype)) - teacher(x_t, t.to(x.dtype))  # x0^ difference
    coef = broadcast_time((w * a / s ** 2).to(x.dtype), x)  # score = alpha x0^ / sigma^2 + ...
    return (coef * diff * x_t).flatten(1).sum(1).mean()


@dataclass
class GeneratorStudent:
    """A one-step generator ``x = G(z, t=1)``."""

    generator: nn.Module
    path: Any
    method: str
    losses: list[float] = field(default_factory=list, repr=False)

    @torch.no_grad()
    def sample(self, x1: Tensor, nfe: int = 1, generator: torch.Generator | None = None,
               cond: Any = None) -> Tensor:
        if nfe != 1:
            raise InterpolantError(f"a {self.method} student is a one-step generator; sample "
                                   f"it with nfe=1, got {nfe!r}")
        self.generator.eval()
        return self.generator(x1, torch.ones(x1.shape[0], dtype=x1.dtype, device=x1.device))


def _draw(shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator | None,
          lo: float, hi: float) -> tuple[Tensor, Tensor, Tensor]:
    z = torch.randn(shape, generator=generator, dtype=dtype)
    eps = torch.randn(shape, generator=generator, dtype=dtype)
    t = lo + (hi - lo) * torch.rand(shape[0], generator=generator, dtype=torch.float64)
    return z, eps, t


def _generate(gen: nn.Module, z: Tensor) -> Tensor:
    return gen(z, torch.ones(z.shape[0], dtype=z.dtype, device=z.device))


def _check(teacher: Any, gen: Any, fake: Any, example: Tensor) -> Denoiser:
    if not isinstance(teacher, Denoiser):
        raise InterpolantError("score distillation needs the teacher as an interpolant."
                               f"Denoiser, got {type(teacher).__name__}")
    if not isinstance(gen, nn.Module):
        raise InterpolantError(f"the generator must be a torch.nn.Module called as G(z, t), "
                               f"got {type(gen).__name__}")
    if fake is None:
        if not isinstance(teacher.model, nn.Module):
            raise InterpolantError("the fake score starts as a copy of the teacher's network, "
                                   "but this teacher has none (an exact oracle?): give fake= "
                                   "(a Denoiser whose network imitates the teacher)")
        fake = Denoiser(copy.deepcopy(teacher.model), teacher.path, teacher.prediction)
    if not isinstance(fake, Denoiser) or not isinstance(fake.model, nn.Module):
        raise InterpolantError("fake must be an interpolant.Denoiser around a torch.nn.Module")
    if fake.path != teacher.path:
        raise InterpolantError(f"the fake score must live on the teacher's path "
                               f"{teacher.path!r}, got {fake.path!r}")
    with torch.no_grad():
        try:
            out = _generate(gen, example)
        except (RuntimeError, TypeError) as err:
            raise InterpolantError(f"the generator cannot take noise of shape "
                                   f"{tuple(example.shape[1:])}: {err}") from None
    if not isinstance(out, Tensor) or out.shape != example.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise InterpolantError(f"the generator returned {got} for noise "
                               f"{tuple(example.shape)}; it must return the data's shape")
    return fake


def record_path(fake: Denoiser, gen: nn.Module, shape: tuple[int, ...], *, steps: int,
                snapshots: int, lr: float = 1e-3, times: tuple[float, float] = (0.02, 0.98),
                generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
                ) -> list[dict[str, Tensor]]:
    """DisBack's degradation recording: train ``fake`` (a copy of the teacher) by score
    matching on samples of the fixed generator ``gen``; return ``snapshots`` state dicts
    taken every ``steps // snapshots`` steps, the last one fitting ``gen``."""
    if isinstance(snapshots, bool) or not isinstance(snapshots, int) or not 1 <= snapshots <= steps:
        raise InterpolantError(f"snapshots must be an integer in 1..steps={steps}, got "
                               f"{snapshots!r}")
    objective = Objective(fake.path, fake.prediction)
    every, saved = steps // snapshots, []

    def loss(k: int) -> Tensor:
        z, eps, t = _draw(shape, dtype, generator, *times)
        with torch.no_grad():
            x = _generate(gen, z)
        return objective(fake.model, x, eps, t.to(dtype))

    def after(k: int) -> None:
        if (k + 1) % every == 0 and len(saved) < snapshots:
            saved.append(copy.deepcopy(fake.model.state_dict()))

    fit(fake.model, loss, steps, lr, after, name="DisBack degradation recording")
    return saved


def backtracking_targets(teacher: Denoiser, fake: Denoiser,
                         states: list[dict[str, Tensor]]) -> list[Denoiser]:
    """The targets the generator backtracks, in order: frozen copies of ``fake`` with the
    snapshots ``s_{N-1}, ..., s_1`` (``states`` = ``s_1 .. s_N`` as recorded), then the
    teacher ``s_0``."""
    targets: list[Denoiser] = []
    for state in reversed(states[:-1]):
        net = copy.deepcopy(fake.model)
        net.load_state_dict(state)
        net.requires_grad_(False).eval()
        targets.append(Denoiser(net, fake.path, fake.prediction))
    return targets + [teacher]


def _distil(teacher: Denoiser, targets: list[Denoiser], fake: Denoiser, gen: nn.Module,
            shape: tuple[int, ...], steps: int, lr: float, fake_lr: float, fake_steps: int,
            times: tuple[float, float], weight: Weight | None,
            generator: torch.Generator | None, dtype: torch.dtype, name: str,
            after: Callable[[int], None] | None = None) -> list[float]:
    """Alternate ``fake_steps`` score-matching steps of ``fake`` on the generator's samples and
    one score-distillation step of ``gen`` towards ``targets[k * len(targets) // steps]``."""
    objective = Objective(fake.path, fake.prediction)
    opt = torch.optim.Adam(fake.model.parameters(), lr=fake_lr)

    def loss(k: int) -> Tensor:
        fake.model.train()
        for _ in range(fake_steps):
            z, eps, t = _draw(shape, dtype, generator, *times)
            with torch.no_grad():
                x = _generate(gen, z)
            fl = objective(fake.model, x, eps, t.to(dtype))
            if not torch.isfinite(fl):
                raise InterpolantError(f"{name}: the fake score's loss diverged at step {k} "
                                       f"({float(fl)}); lower fake_lr")
            opt.zero_grad(set_to_none=True)
            fl.backward()
            opt.step()
        fake.model.eval()
        z, eps, t = _draw(shape, dtype, generator, *times)
        target = targets[min(k * len(targets) // steps, len(targets) - 1)]
        return sd_loss(_generate(gen, z), t.to(dtype), eps, fake, target, weight)

    return fit(gen, loss, steps, lr, after, name=name)


def score_distillation(teacher: Denoiser, gen: nn.Module, shape: tuple[int, ...], *,
                       steps: int, fake: Denoiser | None = None, lr: float = 1e-3,
                       fake_lr: float = 1e-3, fake_steps: int = 1,
                       times: tuple[float, float] = (0.02, 0.98), weight: Weight | None = None,
                       generator: torch.Generator | None = None,
                       dtype: torch.dtype = torch.float32,
                       after: Callable[[int], None] | None = None) -> GeneratorStudent:
    """Plain score distillation (Diff-Instruct/DMD without regression or GAN terms): ``fake``
    starts as the teacher (a copy of its network unless given) and ``gen`` follows the
    teacher from the first step; ``shape`` = (batch, *data shape); ``after(k)`` runs after
    generator step ``k``."""
    fake = _check(teacher, gen, fake, torch.zeros((2, *shape[1:]), dtype=dtype))
    losses = _distil(teacher, [teacher], fake, gen, shape, steps, lr, fake_lr, fake_steps,
                     times, weight, generator, dtype, "score distillation", after)
    return GeneratorStudent(gen, teacher.path, "sd", losses)


def disback(teacher: Denoiser, gen: nn.Module, shape: tuple[int, ...], *, steps: int,
            record_steps: int = 400, snapshots: int = 4, fake: Denoiser | None = None,
            lr: float = 1e-3, fake_lr: float = 1e-3, fake_steps: int = 1,
            times: tuple[float, float] = (0.02, 0.98), weight: Weight | None = None,
            generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
            after: Callable[[int], None] | None = None) -> GeneratorStudent:
    """DisBack (module docstring): record ``snapshots`` checkpoints of the teacher degrading
    to the initial ``gen`` in ``record_steps`` score-matching steps, then ``steps`` generator
    steps backtracking ``s_{N-1}, ..., s_1`` and the teacher, ``steps / snapshots`` each."""
    fake = _check(teacher, gen, fake, torch.zeros((2, *shape[1:]), dtype=dtype))
    path_states = record_path(fake, gen, shape, steps=record_steps, snapshots=snapshots,
                              lr=fake_lr, times=times, generator=generator, dtype=dtype)
    fake.model.load_state_dict(path_states[-1])  # s_fake starts fitting G_0
    targets = backtracking_targets(teacher, fake, path_states)
    losses = _distil(teacher, targets, fake, gen, shape, steps, lr, fake_lr, fake_steps,
                     times, weight, generator, dtype, "DisBack", after)
    return GeneratorStudent(gen, teacher.path, "disback", losses)
