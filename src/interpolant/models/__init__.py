"""Reference networks: every one is called as ``model(x, t, cond=None)``.

- ``x``: ``(B, D)`` for :class:`MLP`; ``(B, C, H, W)`` for :class:`UNet`, :class:`EDM2UNet`
  (magnitude-preserving, EDM2), :class:`DiT`, :class:`MMDiT` (SD3's two-stream blocks), the
  routed DiTs :class:`DTRDiT` and :class:`SwitchDiT`, :class:`DiffuSSM` (no attention) and
  :class:`ODEUNet` (continuous-depth blocks, "Beyond U"), :class:`SpectralUNet` (wavelet-gated
  resampling, Spectral Diffusion);
  ``(B, C, L)`` for :class:`TemporalUNet`; int64 tokens ``(B, L)`` for
  :class:`TokenTransformer` (which returns logits ``(B, L, K)``);
- ``t``: floating tensor of shape ``(B,)`` in ``[0, 1]`` (``t = 0`` data, ``t = 1`` noise);
- ``cond``: ``None`` or int64 class labels ``(B,)`` (or ``{"labels": ...}``) for nets built
  with ``num_classes=K``; ``NULL_LABEL`` (-1) means "no label" and uses embedding row ``K``.

The output has the shape and dtype of ``x``. Models know nothing of paths or prediction
targets. :class:`Aggregate` combines trained networks with learned weights per time (AFA).
Each reference network exposes ``arch`` and a JSON-serialisable ``config`` so that
``build(model.arch, **model.config)`` rebuilds it; output layers are zero-initialised.

Default sizes (trainable parameters): ``MLP(dim=2)`` 1,138,946; ``UNet()`` (8x8, 1 channel)
755,009; ``DiT()`` 1,254,532; ``TemporalUNet(channels=2)`` 482,370. For a lighter U-Net,
``UNet(base_channels=24)`` has 425,905.

>>> from interpolant import models
>>> net = models.build("mlp", dim=2, hidden=64, depth=2)
>>> models.count_parameters(net) > 0
True
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import unknown_name
from .base import ReferenceNet
from .embeddings import TIME_SCALE, LabelEmbedding, TimeEmbedding, sinusoidal_embedding
from .dit import DiT
from .edm2 import EDM2UNet
from .ensemble import Aggregate
from .mlp import MLP
from .mmdit import MMDiT
from .odeunet import ODEUNet
from .routing import DTRDiT, SwitchDiT
from .spectral import SpectralUNet
from .ssm import DiffuSSM
from .temporal import TemporalUNet
from .tokens import TokenTransformer
from .unet import UNet

__all__ = [
    "Aggregate",
    "DTRDiT",
    "DiT",
    "DiffuSSM",
    "EDM2UNet",
    "MLP",
    "MMDiT",
    "ODEUNet",
    "TIME_SCALE",
    "LabelEmbedding",
    "ReferenceNet",
    "SpectralUNet",
    "SwitchDiT",
    "TemporalUNet",
    "TimeEmbedding",
    "TokenTransformer",
    "UNet",
    "available",
    "build",
    "count_parameters",
    "sinusoidal_embedding",
]

_REGISTRY: dict[str, type[ReferenceNet]] = {
    "dit": DiT, "edm2": EDM2UNet, "mlp": MLP, "mmdit": MMDiT, "dtr": DTRDiT,
    "switch-dit": SwitchDiT, "diffussm": DiffuSSM, "temporal": TemporalUNet,
    "tokens": TokenTransformer, "unet": UNet, "ode-unet": ODEUNet,
    "spectral-unet": SpectralUNet,
}


def available() -> list[str]:
    """Names accepted by :func:`build`."""
    return sorted(_REGISTRY)


def build(name: str, **config: Any) -> ReferenceNet:
    """Construct a reference network by name (see :func:`available`)."""
    if name not in _REGISTRY:
        raise unknown_name("model", name, _REGISTRY)
    return _REGISTRY[name](**config)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
