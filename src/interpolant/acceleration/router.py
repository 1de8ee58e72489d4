"""HarmoniCa's trained router: per call and per block, recompute or reuse the cached features.

HarmoniCa (Huang et al. 2024, "HarmoniCa: Harmonizing Training and Inference for Better
Feature Caching in Diffusion Transformer Acceleration") learns a router ``R`` of shape
``(calls, blocks)`` for a fixed sampler: at call ``k`` block ``b`` recomputes its attention and
MLP outputs when ``R[k, b] = 1`` and reuses the ones it kept when ``R[k, b] = 0`` (the adaLN
modulation of the new ``t`` and the residual sums are always recomputed, as in FORA,
:class:`~interpolant.acceleration.cache.BlockCacheDiT`). The router holds logits ``r``; at
inference ``R = [r > 0]`` and reused layers are skipped; in training the gate is the sigmoid

    g = sigmoid(r),   out = g Layer(u) + (1 - g) kept,   kept <- out.

Step-Wise Denoising Training: every training step rolls out the whole sampling run from the
training noises with the router's own earlier cache decisions (errors accumulate as at
inference), rather than training on isolated time steps. Image-Error-Proxy-guided Objective,
in the form used here: the final sample's error against the plain network's plus the price
``lambda`` of the compute spent,

    L(r) = |x_R - x_plain|^2 / |x_plain|^2 + lambda mean_{k >= 1, b} sigmoid(r[k, b]),

minimised by normalised gradient steps ``r <- r - lr grad / max|grad|`` (the gates that matter
most move most). Call 0 always recomputes (nothing is kept yet). With ``lambda = 0`` every
logit rises and the router recomputes everywhere (the plain network, bitwise); a large
``lambda`` turns every allowed gate to reuse. With a ``budget`` of recomputations the router
after each step is cut to that budget (its largest logits recompute), and the best cut
routing met, the starting one included, is returned: at equal compute it is never worse
than the routing it started from (e.g. the searched schedule of
:func:`~interpolant.acceleration.learn_schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..solvers import sample, trajectory
from ._wrap import Wrapper, network_of, rewrap
from .cache import CacheSchedule, _shallow

INIT = 0.1  # |initial logits|: near 1/2 soft gates, so training can reorder them


class _Routed(nn.Module):
    """The attention or MLP of block ``index``, recomputed or reused as the router says."""

    def __init__(self, inner: nn.Module, owner: RoutedDiT, index: int) -> None:
        super().__init__()
        self.inner, self.index = inner, index
        self._owner = [owner]  # not a submodule (no cycle)
        self._kept: Tensor | None = None

    def forward(self, *args: Any) -> Tensor:
        gate = self._owner[0].gate(self.index)
        if gate is None or self._kept is None:
            self._kept = self.inner(*args)
        elif isinstance(gate, Tensor):  # training: the sigmoid mix
            self._kept = gate * self.inner(*args) + (1 - gate) * self._kept
        elif gate:
            self._kept = self.inner(*args)
        return self._kept


class RoutedDiT(Wrapper):
    """A DiT (``net.blocks`` with ``attn`` and ``mlp``) whose blocks follow ``logits``, shape
    ``(calls, blocks)``: recompute where ``logits > 0`` (module docstring). With ``training``
    set the gates are the sigmoids of the logits; otherwise reused layers are skipped."""

    def __init__(self, dit: nn.Module, logits: Tensor) -> None:
        super().__init__()
        items = getattr(dit, "blocks", None)
        if not isinstance(items, nn.ModuleList) or not all(
                hasattr(b, "attn") and hasattr(b, "mlp") for b in items) or not len(items):
            raise InterpolantError(
                f"a cache router needs a transformer with .blocks, each with .attn and .mlp "
                f"(interpolant.models.DiT); {type(dit).__name__} has none")
        if logits.ndim != 2 or logits.shape[1] != len(items):
            raise InterpolantError(f"router logits must have shape (calls, {len(items)}), got "
                                   f"{tuple(logits.shape)}")
        self.logits = logits
        self.schedule = CacheSchedule(1)
        self.net = _shallow(dit, blocks=nn.ModuleList(
            _shallow(b, attn=_Routed(b.attn, self, i), mlp=_Routed(b.mlp, self, i))
            for i, b in enumerate(items)))
        self.training = False

    def gate(self, block: int) -> Any:
        """``None`` (recompute: call 0 or past the router), the sigmoid gate (training) or
        whether to recompute."""
        k = self.schedule.call
        if k == 0 or k >= self.logits.shape[0]:
            return None
        if not self.training:
            return bool(self.logits[k, block] > 0)
        return torch.sigmoid(self.logits[k, block])

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        self.schedule.is_full(x, t)  # counts the call (a new run restarts it)
        return self.net(x, t, cond)


@dataclass(frozen=True)
class Router:
    """A trained router: ``logits`` ``(calls, blocks)``, the ``compute`` fraction of block
    evaluations it recomputes, the final ``error`` on the training noises and ``losses``."""

    logits: Tensor
    compute: float
    error: float
    losses: list[float]

    def recompute(self) -> Tensor:
        """``(calls, blocks)`` booleans: where the blocks recompute (call 0 always)."""
        out = self.logits > 0
        out[0] = True
        return out


def train_router(denoiser: Any, x_start: Tensor, lam: float, iters: int = 40, lr: float = 0.1,
                 init: Tensor | None = None, budget: int | None = None,
                 **sample_kwargs: Any) -> Router:
    """Train HarmoniCa's router for sampling from ``x_start`` with ``sample_kwargs`` on the
    objective of the module docstring. ``init``: the starting ``(calls, blocks)`` recompute
    booleans (default all); ``budget``: block recomputations allowed, call 0's included."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam < 0:
        raise InterpolantError(f"lam (the price of compute) must be a number >= 0, got {lam!r}")
    net = network_of(denoiser)
    with torch.no_grad():
        states = list(trajectory(denoiser, x_start, **sample_kwargs))
    plain, calls = states[-1].x.double(), states[-1].nfe
    routed = RoutedDiT(net, torch.zeros(calls, len(getattr(net, "blocks", []))))
    blocks = routed.logits.shape[1]
    if init is not None and tuple(init.shape) != (calls, blocks):
        raise InterpolantError(f"init must have shape (calls, blocks) = {(calls, blocks)}, "
                               f"got {tuple(init.shape)}")
    if budget is not None and not blocks <= budget <= calls * blocks:
        raise InterpolantError(f"budget must be {blocks}..{calls * blocks} block "
                               f"recomputations (call 0 recomputes all {blocks}), got {budget}")
    start = torch.ones(calls, blocks, dtype=torch.bool) if init is None else init.bool()
    logits = torch.where(start, INIT, -INIT).double().requires_grad_(True)
    routed.logits, routed.training = logits, True

    def error(gates: Tensor | None = None) -> Tensor:
        den = rewrap(denoiser, routed if gates is None else RoutedDiT(net, gates))
        out = sample(den, x_start, **sample_kwargs).double()
        return ((out - plain) ** 2).sum() / (plain ** 2).sum().clamp_min(1e-30)

    best: tuple[float, Tensor] | None = None
    if budget is not None and blocks + int(start[1:].sum()) <= budget:
        with torch.no_grad():
            best = (float(error(logits.detach())), logits.detach().clone())
    losses = []
    for _ in range(iters):
        loss = error() + lam * torch.sigmoid(logits[1:]).mean()
        logits.grad = None
        loss.backward()
        with torch.no_grad():
            logits -= lr * logits.grad / logits.grad.abs().max().clamp_min(1e-300)
            losses.append(float(loss))
            if budget is not None:
                cut = _within(logits, budget - blocks)
                err = float(error(cut))
                if best is None or err < best[0]:
                    best = (err, cut)
    final = logits.detach().clone() if best is None else best[1]
    with torch.no_grad():
        final_error = float(error(final).sqrt())
    return Router(final, (blocks + int((final[1:] > 0).sum())) / (calls * blocks),
                  final_error, losses)


def _within(logits: Tensor, spend: int) -> Tensor:
    """``logits`` cut to ``spend`` recomputations after call 0: the largest stay positive,
    the others turn negative."""
    out = logits.clone()
    order = logits[1:].flatten().argsort(descending=True)
    keep = torch.zeros(logits[1:].numel(), dtype=torch.bool)
    keep[order[:spend]] = True
    out[1:] = torch.where(keep.view_as(logits[1:]), logits[1:].abs().clamp_min(1e-3),
                          -logits[1:].abs().clamp_min(1e-3))
    return out


def routed(denoiser: Any, router: Router) -> Any:
    """``denoiser`` with its DiT following ``router`` (reused layers skipped)."""
    return rewrap(denoiser, RoutedDiT(network_of(denoiser), router.logits))
