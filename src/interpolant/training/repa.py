"""REPA: representation alignment (Yu et al. 2025, "Representation Alignment for Generation:
Training Diffusion Transformers Is Easier Than You Think").

The denoiser's hidden state ``h = f_l(x_t)`` at an early layer ``l`` is projected by a small
trainable MLP head ``h_phi`` and pulled towards a frozen pretrained encoder's features of the
clean image, ``e(x0)``:

    L = L_diffusion + lambda * L_align,   L_align = -mean_i cos(h_phi(f_l(x_t))_i, e(x0)_i).

The paper aligns patch tokens with DINOv2's patch features; here the encoder is by default the
bundled digits classifier (:func:`interpolant.metrics.digits_classifier.load_digits_classifier`),
whose 64 penultimate features describe the whole image, so the head maps the whole flattened
hidden state ``(B, ...)`` to one vector per image. The hidden state is read by a forward hook
on the named submodule, so any network works unchanged; the head (SiLU MLP, three linear
layers as in the paper) trains with the network because :class:`REPA` is an ``nn.Module``
objective of :class:`interpolant.training.Trainer`. The encoder runs without gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import InterpolantError

__all__ = ["DEFAULT_LAYERS", "REPA", "alignment_loss", "digits_encoder"]

# an early block of each reference network: the output of its first down-sampled stage
DEFAULT_LAYERS = {"unet": "encoder.1.res.0", "ode-unet": "encoder.1.res.0",
                  "edm2": "enc.l1_block0", "dit": "blocks.1", "mmdit": "blocks.1",
                  "dtr": "blocks.1", "switch-dit": "blocks.1", "diffussm": "blocks.1"}

Encoder = Callable[[Tensor], Tensor]


def digits_encoder() -> Encoder:
    """The frozen digits classifier's 64 penultimate features of ``(B, 1, 8, 8)`` images."""
    from ..metrics.digits_classifier import load_digits_classifier

    return load_digits_classifier().features


def alignment_loss(projected: Tensor, target: Tensor) -> Tensor:
    """``-mean_i cos(projected_i, target_i)`` over the batch (rows are feature vectors)."""
    return -F.cosine_similarity(projected, target.to(projected.dtype), dim=1).mean()


def _head(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                         nn.SiLU(), nn.Linear(hidden, out_features))


def _unwrap(net: nn.Module) -> nn.Module:
    return getattr(net, "module", net)  # DistributedDataParallel keeps the network as .module


class REPA(nn.Module):
    """``REPA(base, net, example=None, layer=None, encoder=None, weight=0.5, hidden=256,
    head=None)``.

    ``base`` is the diffusion objective ``(net, x0, noise, t, cond) -> loss`` (e.g.
    :class:`interpolant.training.Objective`); its ``sample_time`` draws the times. ``layer``
    names the submodule of ``net`` whose output is aligned (default: ``DEFAULT_LAYERS`` by the
    net's ``arch``). ``example`` is a small batch of clean data, run once through the net and the
    encoder to size the head (or to check a given ``head``: its input must be the flattened
    hidden state, its output the encoder's feature size); by default two blank 8x8 grey images,
the digits encoder's input. ``weight`` is the paper's lambda.
    """

    def __init__(self, base: Callable[..., Tensor], net: nn.Module, example: Tensor | None = None,
                 layer: str | None = None, encoder: Encoder | None = None,
                 weight: float = 0.5, hidden: int = 256, head: nn.Module | None = None) -> None:
        super().__init__()
        arch = getattr(_unwrap(net), "arch", None)
        if layer is None:
            if arch not in DEFAULT_LAYERS:
                raise InterpolantError(f"REPA has no default layer for network {arch!r}; name "
                                       "one with layer=<submodule name>")
            layer = DEFAULT_LAYERS[arch]
        names = dict(_unwrap(net).named_modules())
        if layer not in names:
            raise InterpolantError(f"REPA layer {layer!r} is not a submodule of the network; "
                                   f"choose one of {', '.join(n for n in names if n)[:300]}")
        if not weight >= 0:
            raise InterpolantError(f"REPA weight (lambda) must be >= 0, got {weight}")
        self.base, self.layer, self.weight = base, layer, float(weight)
        # kept out of the module's parameters: the encoder is frozen, neither trained nor saved
        object.__setattr__(self, "encoder", encoder or digits_encoder())
        param = next(_unwrap(net).parameters())
        x = example[:2] if example is not None else torch.zeros(2, 1, 8, 8, dtype=param.dtype)
        with torch.no_grad():
            hidden_state = self._hidden(net, lambda: net(x, torch.full((len(x),), 0.5,
                                                                      dtype=x.dtype)))
            features = self._encode(x)
        n_in, n_out = hidden_state.flatten(1).shape[1], features.shape[1]
        self.head = head if head is not None else _head(n_in, hidden, n_out)
        self._check_head(n_in, n_out)

    def _check_head(self, n_in: int, n_out: int) -> None:
        linears = [m for m in self.head.modules() if isinstance(m, nn.Linear)]
        if linears and linears[0].in_features != n_in:
            raise InterpolantError(
                f"the REPA head takes {linears[0].in_features} features but layer "
                f"{self.layer!r} gives {n_in}; size the head's input to the hidden state")
        if linears and linears[-1].out_features != n_out:
            raise InterpolantError(
                f"the encoder gives {n_out} features but the REPA head outputs "
                f"{linears[-1].out_features}; size the head's output to the encoder's features")

    def _encode(self, x0: Tensor) -> Tensor:
        with torch.no_grad():
            e = self.encoder(x0)
        if not isinstance(e, Tensor) or e.ndim != 2 or e.shape[0] != x0.shape[0]:
            got = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
            raise InterpolantError(f"the REPA encoder must return features (B, D) = "
                                   f"({x0.shape[0]}, D), got {got}")
        return e.detach()

    def _hidden(self, net: nn.Module, call: Callable[[], Any]) -> Tensor:
        """Run ``call`` and return the output of ``self.layer`` seen during it."""
        seen: list[Tensor] = []
        module = _unwrap(net).get_submodule(self.layer)
        handle = module.register_forward_hook(lambda m, i, out: seen.append(
            out[0] if isinstance(out, tuple) else out))
        try:
            call()
        finally:
            handle.remove()
        if not seen:
            raise InterpolantError(f"REPA layer {self.layer!r} did not run in the forward pass")
        return seen[0]

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.base.sample_time(n, generator)

    def forward(self, net: nn.Module, x0: Tensor, noise: Tensor, t: Tensor,
                cond: Any = None) -> Tensor:
        """``L_diffusion + lambda * L_align`` (see module docstring)."""
        out: list[Tensor] = []
        hidden = self._hidden(net, lambda: out.append(self.base(net, x0, noise, t, cond)))
        target = self._encode(x0)
        projected = self.head(hidden.flatten(1).to(next(self.head.parameters()).dtype))
        if projected.shape[1] != target.shape[1]:
            raise InterpolantError(
                f"the encoder gives {target.shape[1]} features but the REPA head outputs "
                f"{projected.shape[1]}; size the head's output to the encoder's features")
        align = alignment_loss(projected, target)
        self.last_alignment = float(align.detach())
        return out[0] + self.weight * align

    def __repr__(self) -> str:
        return f"REPA({self.base!r}, layer={self.layer!r}, weight={self.weight})"
