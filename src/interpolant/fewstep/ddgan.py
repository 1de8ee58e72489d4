"""Denoising diffusion GANs (Xiao, Kreis & Vahdat 2022, "Tackling the Generative Learning
Trilemma with Denoising Diffusion GANs").

A few large steps ``t_0 = 1 > t_1 > ... > t_N = t_min`` (``N`` in 1, 2, 4). For large steps
the true reverse kernel ``q(x_s | x_t)`` (``s = t_{k+1} < t = t_k``) is multimodal, so it is
not modelled as a Gaussian but implicitly, through the data prediction of a generator with a
latent ``z``:

    x0_hat = G(x_t, z, t),   z ~ N(0, I),
    x_s    ~ q(x_s | x_t, x0_hat) = N(c_0 x0_hat + c_x x_t, beta~ I)        (the exact posterior)

with ``c_0, c_x, beta~`` of :func:`interpolant.solvers.ddpm_learned.posterior_step`. If ``G``
draws ``x0_hat`` from the exact ``p(x0 | x_t)``, the step draws ``x_s`` from the exact
``q(x_s | x_t)`` for any step size (the test checks this on the mixture oracle). A
time-conditional discriminator ``D(x_s, x_t, t)`` tells real pairs
``x_s ~ q(x_s | x0), x_t ~ q(x_t | x_s)`` from fake ones (the paper's eqs. 4-7):

    L_D = E softplus(-D(x_s, x_t, t)) + E softplus(D(x_s', x_t, t)) + gamma/2 E |grad_{x_s} D|^2
    L_G = E softplus(-D(x_s', x_t, t))                         (non-saturating; R1 on real)

whose optimum ``D*`` has ``sigmoid(D*) = q / (q + p_theta)`` (Goodfellow et al. 2014).
:mod:`.emdm` adds label conditioning and a reconstruction term to ``L_G``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from ..errors import InterpolantError
from ..grids import make as make_grid
from ..paths import GaussianPath, VPLinear, broadcast_time
from ..solvers.ddpm_learned import posterior_step
from .gan_nets import GanDiscriminator, GanGenerator
from .loop import check_data

__all__ = ["StepTable", "step_table", "forward_pair", "posterior_sample", "ddgan_sample",
           "discriminator_loss", "generator_loss", "r1_penalty", "train_ddgan", "GanStudent"]

Generator = Callable[..., Tensor]  # G(x_t, z, t, cond) -> x0_hat


class StepTable(NamedTuple):
    """Per step ``k`` (``t = times[k] -> s = times[k+1]``), float64 ``(N,)``: the forward
    kernel ``x_t = a x_s + std eps`` and the posterior ``N(c_0 x0 + c_x x_t, beta~)``."""

    times: Tensor
    a: Tensor
    std: Tensor
    c_0: Tensor
    c_x: Tensor
    post_std: Tensor


def step_table(path: GaussianPath, times: Tensor) -> StepTable:
    """:class:`StepTable` of a decreasing grid (coefficients in float64 on the CPU)."""
    rows = []
    for t, s in zip(times[:-1].tolist(), times[1:].tolist()):
        p = posterior_step(path, t, s)  # beta: the forward kernel's variance s -> t
        rows.append((path.alpha(t) / path.alpha(s), math.sqrt(p.beta), p.c_0, p.c_x,
                     math.sqrt(p.beta_tilde)))
    cols = torch.tensor(rows, dtype=torch.float64).T
    return StepTable(times.to(torch.float64), *cols)


def _at(col: Tensor, k: Tensor, like: Tensor) -> Tensor:
    return broadcast_time(col[k].to(like.dtype).to(like.device), like)


def forward_pair(path: GaussianPath, table: StepTable, x0: Tensor, k: Tensor,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """A real pair: ``x_s = alpha_s x0 + sigma_s eps``, ``x_t = a x_s + std eps'`` at step ``k``."""
    s = table.times[k + 1]
    e1, e2 = (torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
              for _ in range(2))
    x_s = (broadcast_time(path.alpha(s).to(x0.dtype), x0) * x0
           + broadcast_time(path.sigma(s).to(x0.dtype), x0) * e1)
    return x_s, _at(table.a, k, x0) * x_s + _at(table.std, k, x0) * e2


def posterior_sample(table: StepTable, k: Tensor, x_t: Tensor, x0_hat: Tensor,
                     noise: Tensor) -> Tensor:
    """``x_s = c_0 x0_hat + c_x x_t + sqrt(beta~) noise`` (exact at ``s = 0``: ``x0_hat``)."""
    return (_at(table.c_0, k, x_t) * x0_hat + _at(table.c_x, k, x_t) * x_t
            + _at(table.post_std, k, x_t) * noise)


@torch.no_grad()
def ddgan_sample(gen: Generator, table: StepTable, x1: Tensor, latent: int,
                 generator: torch.Generator | None = None, cond: Any = None) -> Tensor:
    """``N = len(table.a)`` generator steps from ``x1`` at ``t = 1`` (NFE = N)."""
    x = x1
    for i in range(len(table.a)):
        k = torch.full((x.shape[0],), i, dtype=torch.long)
        t = table.times[k].to(x.dtype).to(x.device)
        z = torch.randn((x.shape[0], latent), generator=generator, dtype=x.dtype).to(x.device)
        x0_hat = gen(x, z, t, cond)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = posterior_sample(table, k, x, x0_hat, noise)
    return x


def discriminator_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """``E softplus(-D(real)) + E softplus(D(fake))``: the logistic loss, ``-log sigmoid`` on
    real and ``-log(1 - sigmoid)`` on fake."""
    return softplus(-d_real).mean() + softplus(d_fake).mean()


def generator_loss(d_fake: Tensor) -> Tensor:
    """The non-saturating generator loss ``E softplus(-D(fake)) = -E log sigmoid(D(fake))``."""
    return softplus(-d_fake).mean()


def r1_penalty(d_real: Tensor, x_real: Tensor) -> Tensor:
    """``E |grad_x D(x)|^2`` at real samples (Mescheder et al. 2018); ``x_real`` requires grad."""
    (grad,) = torch.autograd.grad(d_real.sum(), x_real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


@dataclass
class GanStudent:
    """A trained DDGAN/EMDM generator with its grid; samples with exactly ``N`` evaluations."""

    generator: nn.Module
    path: GaussianPath
    table: StepTable
    latent: int
    method: str = "ddgan"
    losses: list[float] = field(default_factory=list, repr=False)

    @property
    def steps(self) -> int:
        return len(self.table.a)

    @torch.no_grad()
    def sample(self, x1: Tensor, nfe: int | None = None,
               generator: torch.Generator | None = None, cond: Any = None) -> Tensor:
        if nfe is not None and nfe != self.steps:
            raise InterpolantError(f"this {self.method} generator was trained for {self.steps} "
                                   f"steps; sample it with nfe={self.steps}, got nfe={nfe!r}")
        self.generator.eval()
        return ddgan_sample(self.generator, self.table, x1, self.latent, generator, cond)


def _check_labels(labels: Any, n: int) -> Tensor | None:
    if labels is None:
        return None
    if (not isinstance(labels, Tensor) or labels.shape != (n,) or labels.is_floating_point()
            or labels.dtype == torch.bool):
        got = (f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, Tensor)
               else type(labels).__name__)
        raise InterpolantError(f"labels must be int64 class labels of shape ({n},), one per "
                               f"training sample; got {got}")
    return labels.long()


def train_ddgan(data: Tensor, *, steps: int, n_steps: int = 2, path: GaussianPath | None = None,
                grid: str = "uniform", labels: Tensor | None = None,
                generator_net: nn.Module | None = None, discriminator: nn.Module | None = None,
                latent: int | None = None, r1: float = 0.5, lr_g: float = 1e-3,
                lr_d: float = 1e-3, betas: tuple[float, float] = (0.5, 0.9),
                batch_size: int = 128, rec_weight: float = 0.0, adv_weight: float = 1.0,
                aux_loss: Callable[[Tensor, Tensor, Any], Tensor] | None = None,
                method: str = "ddgan", generator: torch.Generator | None = None) -> GanStudent:
    """Train a DDGAN on ``data`` ``(n, D)`` for ``n_steps`` sampling steps (module docstring):
    per iteration one discriminator step on ``L_D`` and one generator step on ``L_G``
    (``adv_weight L_G + rec_weight E|x0_hat - x0|^2 + aux_loss(x0_hat, x0, cond)``, EMDM's
    terms; ``adv_weight = 0`` is EMDM's ``disable_gan``: plain x0 regression); Adam
    with ``betas`` and both learning rates cosine-annealed to 1/100 (as the paper's code;
    on the 2-D tests this made the result of a fixed budget far less seed-dependent).

    ``labels`` (int64 ``(n,)``) make both networks class-conditional (default networks get
    ``num_classes`` from them); ``path`` defaults to ``VPLinear()``; the grid is ``grid`` with
    ``n_steps`` steps from 1 to ``path.t_min``. Non-finite losses stop with the step named."""
    data = check_data(data)
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise InterpolantError(f"n_steps must be a positive integer (1, 2, 4), got {n_steps!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InterpolantError(f"steps must be a positive integer, got {steps!r}")
    if not (r1 >= 0 and rec_weight >= 0 and adv_weight >= 0):
        raise InterpolantError(f"r1, rec_weight and adv_weight must be >= 0, got {r1}, "
                               f"{rec_weight} and {adv_weight}")
    labels = _check_labels(labels, data.shape[0])
    classes = None if labels is None else int(labels.max()) + 1
    path = VPLinear() if path is None else path
    if not isinstance(path, GaussianPath):
        raise InterpolantError(f"a DDGAN steps through a Gaussian path's posterior; got "
                               f"{type(path).__name__}")
    for name, net in (("generator_net", generator_net), ("discriminator", discriminator)):
        if net is not None and not isinstance(net, nn.Module):
            raise InterpolantError(f"{name} must be a torch.nn.Module, got {type(net).__name__}")
    if data.ndim != 2 and (generator_net is None or discriminator is None):
        raise InterpolantError(f"the default GAN networks take vectors (n, D); for data of "
                               f"shape {tuple(data.shape[1:])} give generator_net= "
                               "G(x_t, z, t, cond) and discriminator= D(x_s, x_t, t, cond)")
    dim = data.shape[1]
    gen = GanGenerator(dim, latent, num_classes=classes) if generator_net is None \
        else generator_net
    latent = getattr(gen, "latent", dim) if latent is None else latent
    disc = GanDiscriminator(dim, num_classes=classes) if discriminator is None else discriminator
    gen, disc = gen.to(data.dtype).to(data.device), disc.to(data.dtype).to(data.device)
    table = step_table(path, make_grid(grid, path, n_steps))
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr_g, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr_d, betas=betas)
    decay = [torch.optim.lr_scheduler.CosineAnnealingLR(o, steps, eta_min=lr / 100)
             for o, lr in ((opt_g, lr_g), (opt_d, lr_d))]

    def batch():
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=generator)
        k = torch.randint(0, n_steps, (batch_size,), generator=generator)
        x0 = data[idx]
        x_s, x_t = forward_pair(path, table, x0, k, generator)
        t = table.times[k].to(data.dtype).to(data.device)
        cond = None if labels is None else labels[idx].to(data.device)
        return x0, x_s, x_t, k, t, cond

    def fake(x_t, k, t, cond):
        z = torch.randn((x_t.shape[0], latent), generator=generator, dtype=x_t.dtype)
        x0_hat = gen(x_t, z.to(x_t.device), t, cond)
        noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype).to(x_t.device)
        return x0_hat, posterior_sample(table, k, x_t, x0_hat, noise)

    losses: list[float] = []
    gen.train(), disc.train()
    for step in range(steps):
        x0, x_s, x_t, k, t, cond = batch()
        x_s.requires_grad_(True)
        d_real = disc(x_s, x_t, t, cond)
        with torch.no_grad():
            _, x_fake = fake(x_t, k, t, cond)
        loss_d = discriminator_loss(d_real, disc(x_fake, x_t, t, cond))
        if r1 > 0:
            loss_d = loss_d + 0.5 * r1 * r1_penalty(d_real, x_s)
        _update(opt_d, loss_d, step, steps, method, "discriminator")

        x0, _, x_t, k, t, cond = batch()
        x0_hat, x_fake = fake(x_t, k, t, cond)
        disc.requires_grad_(False)
        loss_g = adv_weight * generator_loss(disc(x_fake, x_t, t, cond))
        if rec_weight > 0:
            loss_g = loss_g + rec_weight * (x0_hat - x0).flatten(1).pow(2).mean(1).mean()
        if aux_loss is not None:
            loss_g = loss_g + aux_loss(x0_hat, x0, cond)
        _update(opt_g, loss_g, step, steps, method, "generator")
        disc.requires_grad_(True)
        for sched in decay:
            sched.step()
        losses.append(float(loss_g.detach()))
    gen.eval(), disc.eval()
    return GanStudent(gen, path, table, latent, method, losses)


def _update(opt: torch.optim.Optimizer, loss: Tensor, step: int, steps: int, method: str,
            who: str) -> None:
    """One Adam step, refused (with the step named, weights untouched) on a non-finite loss."""
    if not torch.isfinite(loss):
        raise InterpolantError(f"{method} diverged at step {step} of {steps} ({who} loss "
                               f"{float(loss.detach())}); the networks keep their weights from "
                               "the step before: lower lr_g/lr_d or raise r1")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
