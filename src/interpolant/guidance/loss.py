"""Loss guidance on the predicted clean sample (universal guidance, forward step).

Bansal et al. (2023), "Universal Guidance for Diffusion Models": for any differentiable loss
``l(x0_hat, cond)`` of the predicted clean sample ``x0_hat = D(x_t, t)``,

    eps_g = eps + s sigma grad_{x_t} l(D(x_t, t)),    i.e.   score_g = score - s grad_{x_t} l,

the gradient taken through the denoiser by autograd (TSDiff's self-guidance and "Steered
Diffusion" use the same step). ``through_denoiser=False`` skips the network's Jacobian and
uses ``grad_{x0_hat} l`` in its place (the gradient skipping of FlowChef, Patel et al. 2024:
no backpropagation through the model). Every target shifts by the linear part of its map from
the score (:meth:`Guided._shift`). One network call (1 NFE) per evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from .base import Guided, check_callable, check_scale

__all__ = ["LossGuidance"]

Loss = Callable[[Tensor, Any], Tensor]


class LossGuidance(Guided):
    """``score - s grad_{x_t} loss(D(x_t), cond)`` (Bansal et al. 2023) as a denoiser.

    Args:
        den: the model to guide (called with ``cond`` unchanged).
        loss_fn: ``loss_fn(x0_hat, cond)`` -> a per-sample ``(B,)`` loss or a scalar (summed).
        scale: ``s``.
        through_denoiser: backpropagate through the network (default) or not (FlowChef).
    """

    def __init__(self, den: Any, loss_fn: Loss, scale: float = 1.0, *,
                 through_denoiser: bool = True) -> None:
        super().__init__(den=den)
        self.den, self.loss_fn = den, check_callable(loss_fn, "loss_fn")
        self.scale, self.through_denoiser = check_scale(scale), bool(through_denoiser)

    def _guide(self, x: Tensor, t: Tensor | float, cond: Any, target: str) -> Tensor:
        with torch.inference_mode(False), torch.enable_grad():
            xr = x.detach().clone().requires_grad_(self.through_denoiser)
            x0 = self._eval(self.den, xr, t, cond, "x0")
            wrt = xr if self.through_denoiser else x0.detach().requires_grad_(True)
            loss = self.loss_fn(x0 if self.through_denoiser else wrt, cond)
            if not isinstance(loss, Tensor) or loss.ndim > 1:
                raise InterpolantError("loss_fn must return a scalar or a per-sample (B,) loss")
            (grad,) = torch.autograd.grad(loss.sum(), wrt)
        x0 = x0.detach()
        out = self._convert(x0, "x0", target, x, t)
        return out + self._shift(-self.scale * grad.detach(), target, x, t)
