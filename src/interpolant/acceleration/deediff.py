"""DeeDiff's trained uncertainty heads: exit the DiT where the predicted error is small.

DeeDiff (Tang et al. 2023, "DeeDiff: Dynamic Uncertainty-Aware Early Exiting for Accelerating
Diffusion Model Generation") attaches a timestep-aware uncertainty estimation module to every
layer and stops the forward pass at the first layer whose estimated uncertainty is below a
threshold, sending its tokens to the output head. Here, after ``k`` blocks of a DiT (tokens
``h_k``, activated conditioning ``c`` that carries the time), the module is

    u_k(h_k, c) = exp(w_k2 . SiLU(W_k1 [mean_tokens(LN(h_k)), c] + b_k1) + b_k2),

trained (network frozen) to predict the error of exiting there, per sample,

    e_k = |readout(h_k) - readout(h_depth)| / |readout(h_depth)|,

by least squares on ``log u_k - log e_k`` over the network inputs of a plain sampling run
(DeeDiff's layer-wise uncertainty loss regresses the exit error in the same way; the log keeps
errors of all sizes in play). At inference a sample leaves after the first ``k`` with
``u_k < threshold`` (strict, so ``threshold = 0`` never exits: bitwise the plain network); the
blocks run on the samples still going, and those that left keep their tokens for the shared
output head. Unlike :func:`~interpolant.acceleration.calibrate_exits`, whose depths are
measured once per calibrated time, the heads judge every input on its own.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ._wrap import Wrapper, network_of, rewrap
from .cache import _shallow
from .quantize import calibration_inputs


class UncertaintyHeads(nn.Module):
    """One head per exit ``k = 0 .. depth - 1`` (module docstring): ``heads(k, h, c)`` is the
    predicted log error ``log u_k`` of every sample."""

    def __init__(self, hidden: int, depth: int, width: int = 32) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * hidden, width), nn.SiLU(), nn.Linear(width, 1))
            for _ in range(depth))

    def forward(self, k: int, h: Tensor, c: Tensor) -> Tensor:
        pooled = self.norm(h).mean(dim=1)
        return self.heads[k](torch.cat([pooled, c], dim=1)).squeeze(1)


def _check_dit(dit: Any) -> int:
    blocks = getattr(dit, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not all(
            hasattr(dit, a) for a in ("embed", "readout", "run_blocks")):
        raise InterpolantError(
            f"uncertainty heads need a transformer with .blocks, .embed, .run_blocks and "
            f".readout (interpolant.models.DiT); {type(dit).__name__} has none")
    return len(blocks)


def exit_states(dit: nn.Module, x: Tensor, t: Tensor, cond: Any = None
                ) -> tuple[list[Tensor], Tensor, Tensor]:
    """``(h_0 .. h_depth, c, e)``: the tokens after every block, the conditioning, and the
    per-sample exit errors ``e[:, k]`` (module docstring) for ``k = 0 .. depth - 1``."""
    h, c, _, _ = dit.embed(x, t, cond)
    states = [h]
    for block in dit.blocks:
        states.append(block(states[-1], c))
    full = dit.readout(states[-1], c).double().flatten(1)
    errors = [(dit.readout(s, c).double().flatten(1) - full).norm(dim=1)
              / full.norm(dim=1).clamp_min(1e-30) for s in states[:-1]]
    return states, c, torch.stack(errors, dim=1)


def train_heads(denoiser: Any, x_start: Tensor, per_call: int = 16, iters: int = 300,
                lr: float = 3e-3, width: int = 32, seed: int = 0,
                **sample_kwargs: Any) -> UncertaintyHeads:
    """Fit :class:`UncertaintyHeads` on the network inputs of a plain run from ``x_start``
    (``per_call`` of every call; ``sample_kwargs`` go to :func:`interpolant.sample`)."""
    dit = network_of(denoiser)
    depth = _check_dit(dit)
    feats: list[tuple[list[Tensor], Tensor, Tensor]] = []
    with torch.no_grad():
        for x, t, cond in calibration_inputs(denoiser, x_start, per_call, **sample_kwargs):
            states, c, errors = exit_states(dit, x, t, cond)
            feats.append((states[:-1], c, errors.clamp_min(1e-12).log()))
    torch.manual_seed(seed)
    heads = UncertaintyHeads(dit.blocks[0].modulation.in_features if depth else 1, depth, width)
    heads = heads.to(x_start.dtype)
    opt = torch.optim.Adam(heads.parameters(), lr=lr)
    for step in range(iters):
        states, c, target = feats[step % len(feats)]
        loss = sum(((heads(k, states[k], c).double() - target[:, k]) ** 2).mean()
                   for k in range(depth))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return heads.eval()


class UncertainExitDiT(Wrapper):
    """A DiT in which each sample stops after the first block ``k`` whose head predicts an
    error below ``threshold`` for it (module docstring); the blocks run on the samples still
    going. ``exits`` collects every sample's depth."""

    def __init__(self, dit: nn.Module, heads: UncertaintyHeads, threshold: float) -> None:
        super().__init__()
        depth = _check_dit(dit)
        if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)
                and threshold >= 0):
            raise InterpolantError(f"threshold must be a finite number >= 0, got {threshold!r}")
        if len(heads.heads) != depth:
            raise InterpolantError(f"{len(heads.heads)} uncertainty heads for a DiT of depth "
                                   f"{depth}; train them on this network (train_heads)")
        self.heads, self.threshold = heads, float(threshold)
        self.net = _shallow(dit)
        self.net.run_blocks = self._run_blocks
        self.exits: list[int] = []  # the depth of every call (for the speed-up)

    def _run_blocks(self, h: Tensor, c: Tensor, t: Tensor) -> Tensor:
        depth = len(self.net.blocks)
        if self.threshold == 0:  # nothing exits: the plain loop
            for block in self.net.blocks:
                h = block(h, c)
            self.exits.extend([depth] * len(h))
            return h
        out, active = h.clone(), torch.arange(len(h), device=h.device)
        for k, block in enumerate(self.net.blocks):
            done = self.heads(k, h, c).double().exp() < self.threshold
            if bool(done.any()):  # these samples leave with their tokens after k blocks
                out[active[done]] = h[done]
                self.exits.extend([k] * int(done.sum()))
                active, h, c = active[~done], h[~done], c[~done]
                if not len(active):
                    return out
            h = block(h, c)
        out[active] = h
        self.exits.extend([depth] * len(active))
        return out

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        return self.net(x, t, cond)


def uncertain_exits(denoiser: Any, heads: UncertaintyHeads, threshold: float) -> Any:
    """``denoiser`` whose DiT exits as ``heads`` predict (:class:`UncertainExitDiT`)."""
    return rewrap(denoiser, UncertainExitDiT(network_of(denoiser), heads, threshold))
