"""The two small networks of a denoising diffusion GAN on vectors ``(B, D)``.

    generator      G(x_t, z, t, cond) -> x0_hat        (input [x_t, z], output D)
    discriminator  D(x_s, x_t, t, cond) -> logit       (input [x_s, x_t], output 1)

Both are MLPs on the concatenated input; the time (and, for ``num_classes``, the label)
embedding ``c`` of :mod:`interpolant.models.embeddings` is added, through its own linear map,
to every hidden layer: ``e_0 = W_in h + c``, ``e_{l+1} = W_l act(e_l) + P_l c``. The
discriminator uses LeakyReLU(0.2), the generator SiLU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..models.embeddings import LabelEmbedding, TimeEmbedding, check_time, labels_from_cond

__all__ = ["ConditionedMLP", "GanGenerator", "GanDiscriminator"]


class ConditionedMLP(nn.Module):
    """``in_dim -> hidden -> ... -> out_dim`` with the conditioning added to every hidden layer."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, depth: int = 3,
                 num_classes: int | None = None, act: Callable[[], nn.Module] = nn.SiLU) -> None:
        super().__init__()
        for name, value in (("hidden", hidden), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InterpolantError(f"the GAN network's {name} must be a positive integer, "
                                       f"got {value!r}")
        self.in_dim, self.num_classes = in_dim, num_classes
        self.input = nn.Linear(in_dim, hidden)
        self.time_embed = TimeEmbedding(hidden)
        self.label_embed = None if num_classes is None else LabelEmbedding(num_classes, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.cond_proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.act = act()
        self.output = nn.Linear(hidden, out_dim)

    def forward(self, h: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        if h.ndim != 2 or h.shape[1] != self.in_dim:
            raise InterpolantError(f"the GAN networks take vectors (B, D); got input of shape "
                                   f"{tuple(h.shape)} where ({h.shape[0]}, {self.in_dim}) "
                                   "was expected")
        t = check_time(t, h.shape[0]).to(h.dtype)
        c = self.time_embed(t)
        labels = labels_from_cond(cond, h.shape[0], self.num_classes)
        if labels is not None:
            c = c + self.label_embed(labels.to(h.device))
        e = self.input(h) + c
        for layer, proj in zip(self.hidden, self.cond_proj):
            e = layer(self.act(e)) + proj(c)
        return self.output(self.act(e))


class GanGenerator(nn.Module):
    """``G(x_t, z, t, cond) -> x0_hat`` for data of dimension ``dim`` and latent ``latent``."""

    def __init__(self, dim: int, latent: int | None = None, hidden: int = 128, depth: int = 3,
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.dim, self.latent = dim, dim if latent is None else latent
        self.net = ConditionedMLP(dim + self.latent, dim, hidden, depth, num_classes)

    def forward(self, x: Tensor, z: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        return self.net(_cat(x, z), t, cond)


class GanDiscriminator(nn.Module):
    """``D(x_s, x_t, t, cond) -> (B,)`` logits; real pairs come from ``q(x_s, x_t)``. With
    ``num_classes`` the label enters by projection (Miyato & Koyama 2018):
    ``D = w . f + e(y) . f`` with ``f`` the time-conditioned features of ``[x_s, x_t]``."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3,
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.features = ConditionedMLP(2 * dim, hidden, hidden, depth,
                                       act=lambda: nn.LeakyReLU(0.2))
        self.act = nn.LeakyReLU(0.2)
        self.head = nn.Linear(hidden, 1)
        self.num_classes = num_classes
        self.project = None if num_classes is None else LabelEmbedding(num_classes, hidden)

    def forward(self, x_s: Tensor, x_t: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        f = self.act(self.features(_cat(x_s, x_t), t))
        logit = self.head(f)[:, 0]
        labels = labels_from_cond(cond, x_s.shape[0], self.num_classes)
        if labels is not None:
            logit = logit + (self.project(labels.to(f.device)) * f).sum(1)
        return logit


def _cat(a: Tensor, b: Tensor) -> Tensor:
    return torch.cat([a, b.to(a.dtype)], dim=1)
