"""Classifier-free guidance and its refinements.

Ho & Salimans (2022), "Classifier-Free Diffusion Guidance": one network trained with label
dropout gives the conditional ``D_c = D(x, t, c)`` and the unconditional ``D_u = D(x, t, NULL)``;
the guided prediction is

    D_w = D_u + w (D_c - D_u),

i.e. the score ``w grad log p_t(x | c) + (1 - w) grad log p_t(x)`` of the tilted density
``p_t(x | c)^w p_t(x)^(1 - w)``. Every target is affine in the network output with the same
coefficient on ``x`` for both branches, and the weights sum to one, so the combination is the
same in every target: it is formed in the target the solver asks for (no conversion, no
division by ``alpha`` at the noise end). ``w = 1`` is the conditional denoiser, ``w = 0`` the
unconditional one.

Both branches run in one network call on the concatenated batch ``[x; x]`` with labels
``[c; NULL]`` (counted as 2 NFE, see :mod:`interpolant.guidance.base`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..predictions import TARGETS
from .base import (Guided, check_scale, check_unit, labels_of, repeated, stacked,
                   with_null)

__all__ = ["CFG", "cfg_combine", "check_interval", "inside_interval"]


def cfg_combine(c: Tensor, u: Tensor, scale: float, rescale: float = 0.0) -> Tensor:
    """``u + w (c - u)``, then the CFG rescale of Lin et al. (2024), "Common Diffusion Noise
    Schedules and Sample Steps are Flawed" (Sec. 3.4), with ``phi = rescale``:

        x_cfg = u + w (c - u),   x_res = x_cfg std(c) / std(x_cfg),
        out   = phi x_res + (1 - phi) x_cfg,

    standard deviations per sample over all non-batch dimensions."""
    out = torch.lerp(u, c, scale) if scale != 1.0 else c.clone()
    if rescale == 0.0:
        return out
    dims = tuple(range(1, c.ndim))
    ratio = c.std(dim=dims, keepdim=True) / out.std(dim=dims, keepdim=True)
    return out * (rescale * ratio + (1.0 - rescale))


def check_interval(interval: Any) -> tuple[float, float] | None:
    if interval is None:
        return None
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise InterpolantError(
            f"interval must be a pair (t_lo, t_hi), got {interval!r}"
        ) from None
    if not 0.0 <= lo < hi <= 1.0:
        raise InterpolantError(
            f"interval must satisfy 0 <= t_lo < t_hi <= 1, got ({lo}, {hi})"
        )
    return lo, hi


def inside_interval(interval: tuple[float, float] | None, t: Tensor | float) -> bool | Tensor:
    """Where guidance applies: ``True``/``False`` for one time (or a batch entirely on one
    side), else a ``(B,)`` mask of ``t_lo <= t <= t_hi``."""
    if interval is None:
        return True
    lo, hi = interval
    if isinstance(t, float):
        return lo <= t <= hi
    inside = (t >= lo) & (t <= hi)
    if bool(inside.all()):
        return True
    return inside if bool(inside.any()) else False


def check_conditional(den: Any) -> None:
    """Refuse a network that has no unconditional branch: built without classes
    (``num_classes=None``) or trained without label dropout (``label_dropout == 0``, when the
    denoiser or its network records it)."""
    net = getattr(den, "model", den)
    if getattr(net, "num_classes", 0) is None:
        raise InterpolantError(
            "classifier-free guidance needs a class-conditional network; this one has "
            "num_classes=None (use classifier guidance or autoguidance instead)"
        )
    dropout = getattr(den, "label_dropout", getattr(net, "label_dropout", None))
    if dropout is not None and float(dropout) == 0.0:
        raise InterpolantError(
            "this model was trained without label dropout (label_dropout=0), so its "
            "unconditional branch is untrained; retrain with label_dropout > 0 (e.g. 0.1) "
            "or use autoguidance"
        )


class CFG(Guided):
    """Classifier-free guidance ``D_u + w (D_c - D_u)`` (Ho & Salimans 2022) as a denoiser.

    Args:
        den: a denoiser whose network was trained with label dropout (``NULL_LABEL``).
        scale: the guidance weight ``w`` (1: the conditional prediction, one pass; 0: the
            unconditional one; diffusers' ``guidance_scale`` is this ``w``, which is ``1 + w'``
            in Ho & Salimans' notation).
        interval: ``(t_lo, t_hi)``: guide only for ``t_lo <= t <= t_hi`` and return the plain
            conditional prediction elsewhere, skipping the unconditional pass there
            (Kynkäänniemi et al. 2024, "Applying Guidance in a Limited Interval Improves
            Sample and Distribution Quality in Diffusion Models").
        rescale: ``phi`` of the CFG rescale (Lin et al. 2024); 0 turns it off.
        rescale_space: the target in which the standard deviations are taken (``"x0"``, the
            predicted sample, by default; diffusers applies it to the network's own output,
            e.g. ``"eps"`` or ``"v"``). The rescale is nonlinear, so the space matters.
    """

    method = "CFG"

    def __init__(self, den: Any, scale: float = 2.0, *, interval: Any = None,
                 rescale: float = 0.0, rescale_space: str = "x0") -> None:
        super().__init__(den=den)
        check_conditional(den)
        self.den = den
        self.scale = check_scale(scale)
        self.interval = check_interval(interval)
        self.rescale = check_unit(rescale, "rescale")
        if rescale_space not in TARGETS:
            raise InterpolantError(
                f"rescale_space must be one of {', '.join(TARGETS)}, got {rescale_space!r}"
            )
        self.rescale_space = rescale_space

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.den!r}, scale={self.scale}, "
                f"interval={self.interval}, rescale={self.rescale})")

    def _branches(self, x: Tensor, t: Tensor | float, cond: Any, labels: Tensor,
                  target: str) -> tuple[Tensor, Tensor]:
        """``(D_c, D_u)`` from one call on ``[x; x]`` with labels ``[c; NULL]`` (2 NFE)."""
        both_cond = stacked(cond, with_null(cond, labels))
        out = self._eval(self.den, torch.cat([x, x]), repeated(t, 2), both_cond, target, passes=2)
        return out[: x.shape[0]], out[x.shape[0]:]

    def _guide(self, x: Tensor, t: Tensor | float, cond: Any, target: str) -> Tensor:
        labels = labels_of(cond, x.shape[0], self.method)
        inside = inside_interval(self.interval, t)
        if inside is False or (self.scale == 1.0 and self.rescale == 0.0):
            return self._eval(self.den, x, t, cond, target)  # D_c alone: one pass
        if self.scale == 0.0 and self.rescale == 0.0 and inside is True:
            return self._eval(self.den, x, t, with_null(cond, labels), target)  # D_u: one pass
        space = target if self.rescale == 0.0 else self.rescale_space
        c, u = self._branches(x, t, cond, labels, space)
        return self._finish(x, t, c, u, space, target, inside)

    def _finish(self, x: Tensor, t: Tensor | float, c: Tensor, u: Tensor, space: str,
                target: str, inside: bool | Tensor) -> Tensor:
        """Combine the branches in ``space``, convert to ``target``; rows outside the
        interval keep the conditional prediction."""
        out = self._convert(cfg_combine(c, u, self.scale, self.rescale), space, target, x, t)
        if isinstance(inside, Tensor):
            keep = inside.view(-1, *([1] * (x.ndim - 1)))
            out = torch.where(keep, out, self._convert(c, space, target, x, t))
        return out
