"""DisCo-Diff: discrete latent codes beside the continuous noise.

Xu, Corso, Jaakkola, Vahdat & Kreis, "DisCo-Diff: Enhancing Continuous Diffusion Models with
Discrete Latents" (ICML 2024). An encoder ``q_phi(z | x_0)`` gives ``L`` categorical latents
``z = (z_1 .. z_L)``, each in a codebook of size ``K``; the denoiser is conditioned on them and
both are trained end to end on the usual denoising loss

    L(theta, phi) = E_{x_0, t, eps} w(t) |F_theta(x_t, t, z(x_0)) - T(x_0, eps, t)|^2,

with ``z`` drawn by the straight-through Gumbel-softmax (forward: the one-hot of
``argmax(logits + g)``; backward: the gradient of ``softmax((logits + g) / tau)``; ``g`` Gumbel
noise). No KL term: the small codebook bounds the information the latents carry.

Dead codes. Trained so, an encoder can merge components into one code for good: a code that
no input picks at initialisation gets almost no straight-through gradient (``y_k`` is tiny)
and the network never learns what it means (measured on 4 separated components: torch seeds
1 and 2 of 0..3 kept 3 and 2 live codes, agreement 0.75 and 0.51). The remedy is DisCo-Diff's
own: its released encoder (gcorso/disco-diffdock, ``models/latent_encoder.py``, the latent
predictor) batch-normalises the latent head. Here the logits themselves pass through a batch
norm without affine parameters, ``l_k <- (l_k - mean_B l_k) / std_B l_k`` per latent and code,
so every code is above its batch mean for part of every batch and none can die (seeds 0..5: 6
of 6 recover the components, against 3 of 6 with the norm on the hidden layers as released);
:meth:`DiscreteEncoder.codes` uses the running statistics. ``norm=False`` restores the plain
head. After training
a prior ``p_psi(z) = prod_l p(z_l | z_<l)`` is fitted to the encoder's codes (the paper: an
autoregressive transformer; here exact tables, the maximum-likelihood autoregressive model for
few latents); sampling draws ``z ~ p_psi`` and integrates the ODE of ``F_theta(., ., z)``.

The network is :class:`~interpolant.models.latent.LatentMLP` (points conditioned on codes). With
the ideal encoder of a Gaussian mixture (``z`` = the component) the conditional denoiser is the
component's Gaussian denoiser and the ODE's curvature falls by ``E int |u(x_t|z) - u(x_t)|^2 dt``
(:mod:`interpolant.interpolants.latents`): the latents take the multimodality off the
noise-to-data map.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..paths import GaussianPath
from .objectives import Objective

__all__ = ["DiscreteEncoder", "DisCoObjective", "LatentPrior", "gumbel_softmax"]


def gumbel_softmax(logits: Tensor, tau: float, hard: bool = True,
                   generator: torch.Generator | None = None) -> Tensor:
    """Gumbel-softmax (Jang et al. 2017; Maddison et al. 2017) over the last axis:
    ``y = softmax((logits + g) / tau)``, ``g = -log(-log U)``; ``hard``: the one-hot of
    ``argmax y`` forward with ``y``'s gradient (straight-through, ``onehot - y.detach() + y``)."""
    if not tau > 0:
        raise InterpolantError(f"the Gumbel-softmax temperature tau must be > 0, got {tau}")
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
    g = -torch.log(-torch.log(u.clamp_min(torch.finfo(logits.dtype).tiny)))
    y = torch.softmax((logits + g) / tau, dim=-1)
    if not hard:
        return y
    onehot = nn.functional.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return onehot - y.detach() + y


class DiscreteEncoder(nn.Module):
    """``q(z | x_0)``: an MLP from points ``(B, dim)`` to logits ``(B, n_latents, codebook)``,
    batch-normalised (no affine parameters) unless ``norm=False`` (see the module docstring)."""

    def __init__(self, dim: int, n_latents: int = 1, codebook: int = 8, hidden: int = 64,
                 norm: bool = True) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("n_latents", n_latents), ("codebook", codebook),
                            ("hidden", hidden)):
            if not isinstance(value, int) or value < 1:
                raise InterpolantError(f"DiscreteEncoder {name} must be a positive integer, "
                                       f"got {value!r}")
        if codebook < 2:
            raise InterpolantError(f"a codebook needs at least 2 codes, got {codebook}")
        self.dim, self.n_latents, self.codebook = dim, n_latents, codebook
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, n_latents * codebook))
        if norm:
            self.net.append(nn.BatchNorm1d(n_latents * codebook, affine=False))

    def forward(self, x0: Tensor) -> Tensor:
        if x0.ndim != 2 or x0.shape[1] != self.dim:
            raise InterpolantError(f"the encoder takes points (B, {self.dim}), got "
                                   f"{tuple(x0.shape)}")
        return self.net(x0).view(-1, self.n_latents, self.codebook)

    @torch.no_grad()
    def codes(self, x0: Tensor) -> Tensor:
        """The most likely codes ``argmax q(z | x_0)``, int64 ``(B, n_latents)`` (in eval
        mode: the logits' norm uses its running statistics and does not update them)."""
        mode = self.training
        try:
            return self.eval()(x0).argmax(-1)
        finally:
            self.train(mode)


class DisCoObjective(nn.Module):
    """DisCo-Diff's joint loss as a :class:`~interpolant.training.Trainer` objective (an
    ``nn.Module``: the encoder trains and checkpoints with the network): the ``Objective(path,
    target, density, weight)`` loss of the network conditioned on straight-through
    Gumbel-softmax codes of ``x_0`` at temperature ``tau``. ``drop``: the share of samples whose
    codes are replaced by the null condition (all-zero one-hots), so that classifier-free
    guidance over the latents can be sampled (``NULL_LABEL`` codes)."""

    def __init__(self, encoder: DiscreteEncoder, path: GaussianPath, target: str = "eps",
                 density: Any = "uniform", weight: Any = "uniform", tau: float = 1.0,
                 hard: bool = True, drop: float = 0.0) -> None:
        super().__init__()
        if not tau > 0:
            raise InterpolantError(f"the Gumbel-softmax temperature tau must be > 0, got {tau}")
        if not 0 <= drop <= 1:
            raise InterpolantError(f"the latent drop rate must lie in [0, 1], got {drop}")
        self.encoder, self.tau, self.hard, self.drop = encoder, float(tau), bool(hard), drop
        self.base = Objective(path, target, density, weight)

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.base.sample_time(n, generator)

    def forward(self, model: Any, x0: Tensor, noise: Tensor, t: Tensor, cond: Any = None
                ) -> Tensor:
        if cond is not None:
            raise InterpolantError("DisCo-Diff conditions the network on its own latents; "
                                   "train it without labels")
        z = gumbel_softmax(self.encoder(x0), self.tau, self.hard)
        if self.drop > 0:
            keep = torch.rand(len(z), device=z.device) >= self.drop
            z = z * keep[:, None, None].to(z.dtype)
        return self.base(model, x0, noise, t, z)


class LatentPrior:
    """``p(z) = prod_l p(z_l | z_<l)`` over ``L`` codes in ``[0, K)`` as exact tables (the
    maximum-likelihood autoregressive model; ``K^L`` joint cells, so for few latents), fitted
    by counting with ``smoothing`` pseudo-counts per cell."""

    def __init__(self, n_latents: int, codebook: int, max_cells: int = 1 << 16) -> None:
        if n_latents < 1 or codebook < 2 or codebook**n_latents > max_cells:
            raise InterpolantError(f"the tabular prior needs n_latents >= 1, codebook >= 2 and "
                                   f"codebook**n_latents <= {max_cells}, got {n_latents}, "
                                   f"{codebook}")
        self.n_latents, self.codebook = n_latents, codebook
        self.log_joint = torch.full((codebook,) * n_latents, -float(n_latents) * torch.log(
            torch.tensor(float(codebook))).item(), dtype=torch.float64)

    def fit(self, codes: Tensor, smoothing: float = 0.0) -> LatentPrior:
        """Fit ``p(z_l | z_<l) = n(z_<=l) / n(z_<l)`` by counting (``smoothing`` pseudo-counts
        added to every joint cell): the product of the conditionals is the joint frequency."""
        codes = self._check(codes)
        counts = torch.zeros(self.codebook**self.n_latents, dtype=torch.float64)
        counts.index_add_(0, self._flat(codes), torch.ones(len(codes), dtype=torch.float64))
        counts = counts.view(self.log_joint.shape) + smoothing
        if not counts.sum() > 0:
            raise InterpolantError("the prior needs at least one code (or smoothing > 0)")
        self.log_joint = torch.log(counts / counts.sum())
        return self

    def conditional(self, prefix: Tensor) -> Tensor:
        """``log p(z_l | z_<l = prefix)`` over the ``K`` codes, for prefixes ``(B, l)``."""
        marg = self.log_joint
        for _ in range(self.n_latents - prefix.shape[1] - 1):
            marg = torch.logsumexp(marg, dim=-1)
        table = marg[tuple(prefix.T)].expand(len(prefix), self.codebook)  # (B, K)
        return table - torch.logsumexp(table, dim=-1, keepdim=True)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` codes ``(n, L)``, one latent after another (ancestral, float64)."""
        z = torch.zeros(n, 0, dtype=torch.int64)
        for _ in range(self.n_latents):
            p = self.conditional(z).exp()
            z = torch.cat([z, torch.multinomial(p, 1, generator=generator)], 1)
        return z

    def log_prob(self, codes: Tensor) -> Tensor:
        """``log p(z)`` as the sum of the autoregressive conditionals, ``(B,)``."""
        codes = self._check(codes)
        return sum(self.conditional(codes[:, :l]).gather(1, codes[:, l:l + 1])[:, 0]
                   for l in range(self.n_latents))

    def _flat(self, codes: Tensor) -> Tensor:
        place = self.codebook ** torch.arange(self.n_latents - 1, -1, -1)
        return (codes * place).sum(1)

    def _check(self, codes: Tensor) -> Tensor:
        if (not isinstance(codes, Tensor) or codes.is_floating_point() or codes.ndim != 2
                or codes.shape[1] != self.n_latents):
            raise InterpolantError(f"codes must be int64 (B, {self.n_latents}), got "
                                   f"{getattr(codes, 'shape', type(codes).__name__)}")
        if len(codes) and (codes.min() < 0 or codes.max() >= self.codebook):
            raise InterpolantError(f"codes must lie in [0, {self.codebook})")
        return codes.long()
