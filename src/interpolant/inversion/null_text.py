"""Null-text inversion: tune the unconditional embedding per step so that guided DDIM
reconstructs a real sample.

Mokady, Hertz, Aberman, Pritch & Cohen-Or, "Null-text Inversion for Editing Real Images using
Guided Diffusion Models" (CVPR 2023), Algorithm 1, with the null *label* embedding of a
class-conditional network (the row ``NULL_LABEL`` of its :class:`~interpolant.models.LabelEmbedding`)
in place of the null-text embedding. On the sampling grid ``t_0 > ... > t_N``:

1. Pivot: DDIM inversion with the conditional model (guidance scale 1) gives ``z*_N = x0, ...,
   z*_0``.
2. From ``zbar_0 = z*_0``, for ``i = 0 .. N-1``, optimise the null embedding ``u_i`` (starting
   from ``u_{i-1}``, first from the network's own) by Adam on::

       | z*_{i+1} - DDIM_{t_i -> t_{i+1}}(zbar_i; D_u + w (D_c - D_u)) |^2

   (``D_u`` with the embedding ``u_i``), ``iters`` steps or until the loss is below ``tol``;
   then ``zbar_{i+1}`` is that step with the tuned ``u_i``.
3. Guided DDIM from ``z*_0`` with the per-step embeddings reconstructs ``x0`` up to the
   optimisation's residual; with another label it edits ``x0``.

One embedding per sample (the paper inverts one image at a time). The embedding is swapped in by
a forward hook on the label-embedding module for the duration of each call, so the network must
not be used by another thread meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..labels import NULL_LABEL
from ..solvers.exponential import Point, ddim_step
from .common import labels_for, sampling_points
from .ode import trajectory

__all__ = ["NullTextLatent", "null_text_invert", "null_text_sample", "null_rows"]


class NullTextLatent(NamedTuple):
    """The noise-end state ``z`` and the tuned null embedding of every step, ``(N, B, dim)``."""

    z: Tensor
    nulls: Tensor


@contextmanager
def null_rows(embedding: nn.Module, null: Tensor) -> Iterator[None]:
    """While active, the rows of ``embedding``'s output whose label is ``NULL_LABEL`` are the
    rows of ``null`` (one per sample, in batch order)."""

    def hook(module: nn.Module, inputs: tuple, out: Tensor) -> Tensor:
        out = out.clone()
        out[inputs[0] == NULL_LABEL] = null.to(out.dtype)
        return out

    handle = embedding.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _embedding(denoiser: Any, embedding: nn.Module | None) -> nn.Module:
    found = embedding if embedding is not None else getattr(
        getattr(denoiser, "model", None), "label_embed", None)
    if not isinstance(found, nn.Module):
        raise InterpolantError(
            "null-text inversion needs a class-conditional network with a label embedding "
            "(e.g. interpolant.models.MLP(num_classes=K)), or pass embedding=<module>"
        )
    return found


def _guided(denoiser: Any, scale: float) -> Any:
    from ..guidance import CFG  # loaded on first use, as interpolant.guidance itself

    return CFG(denoiser, scale)


def _step(guided: Any, emb: nn.Module, z: Tensor, s: Point, t: Point, labels: Tensor,
          null: Tensor) -> Tensor:
    """The guided DDIM step from ``z`` at ``s`` to ``t`` with the null embedding ``null``."""
    c_x, c_0 = ddim_step("data", s, t)
    with null_rows(emb, null):
        return c_x * z + c_0 * guided(z, s.t, labels, "x0")


def null_text_invert(denoiser: Any, x0: Tensor, label: Any, scale: float = 3.0,
                     steps: int | None = None, grid: Any = None, iters: int = 10,
                     lr: float = 1e-2, tol: float = 1e-10,
                     embedding: nn.Module | None = None) -> NullTextLatent:
    """The null-text latent of ``x0`` with class ``label`` at guidance ``scale`` (Algorithm
    1 above); :func:`null_text_sample` with the same arguments reconstructs ``x0``."""
    emb = _embedding(denoiser, embedding)
    labels = labels_for(denoiser, label, x0.shape[0])
    if labels is None or bool((labels == NULL_LABEL).any()):
        raise InterpolantError("null-text inversion needs a class label for every sample")
    pts = sampling_points(denoiser, x0, steps, grid)
    ts = torch.tensor([p.t for p in pts], dtype=torch.float64)
    with torch.no_grad():  # the pivot: DDIM inversion at scale 1, reversed to z*_0 .. z*_N = x0
        pivot = [x0] + [s.x for s in trajectory(denoiser, x0, solver="ddim", grid=ts.flip(0),
                                                 cond=labels)]
    pivot.reverse()
    guided = _guided(denoiser, scale)
    with torch.no_grad():
        null = emb(torch.full((1,), NULL_LABEL, device=x0.device)).expand(x0.shape[0], -1)
    z, nulls = pivot[0], []
    for i, (s, t) in enumerate(zip(pts[:-1], pts[1:])):
        u = null.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([u], lr=lr)
        for _ in range(iters):
            loss = (_step(guided, emb, z, s, t, labels, u) - pivot[i + 1]).square().sum()
            if float(loss.detach()) < tol:
                break
            (u.grad,) = torch.autograd.grad(loss, [u])
            opt.step()
        null = u.detach()
        with torch.no_grad():
            z = _step(guided, emb, z, s, t, labels, null)
        nulls.append(null)
    return NullTextLatent(pivot[0], torch.stack(nulls))


def null_text_sample(denoiser: Any, latent: NullTextLatent, label: Any, scale: float = 3.0,
                     steps: int | None = None, grid: Any = None,
                     embedding: nn.Module | None = None) -> Tensor:
    """Guided DDIM from ``latent.z`` with the per-step null embeddings and class ``label``
    (the inversion's label reconstructs, another edits)."""
    if not isinstance(latent, NullTextLatent):
        raise InterpolantError("null_text_sample takes the NullTextLatent of null_text_invert")
    emb = _embedding(denoiser, embedding)
    labels = labels_for(denoiser, label, latent.z.shape[0])
    pts = sampling_points(denoiser, latent.z, steps, grid)
    if latent.nulls.shape[0] != len(pts) - 1:
        raise InterpolantError(
            f"the latent has {latent.nulls.shape[0]} steps but this grid has {len(pts) - 1}; "
            "sample with the steps and grid of the inversion"
        )
    guided, z = _guided(denoiser, scale), latent.z
    with torch.no_grad():
        for s, t, null in zip(pts[:-1], pts[1:], latent.nulls):
            z = _step(guided, emb, z, s, t, labels, null)
    return z
