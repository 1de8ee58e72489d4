"""GDP: generative diffusion prior with a degradation of unknown parameters (Fei et al.,
"Generative Diffusion Prior for Unified Image Restoration and Enhancement", CVPR 2023).

GDP-x0 guides the data prediction itself, so it needs no Jacobian of the network, and fits the
degradation ``D_phi`` while it samples. Per step from ``t`` to ``s`` on the grid:

    x0^  = E[x0 | x_t]                                   (one network evaluation)
    L    = ||y - D_phi(x0^)||^2 / 2
    x0~  = x0^ - gamma_t grad_{x0^} L,    gamma_t = scale r_t^2 / (r_t^2 + sigma_y^2)
    phi <- phi - lr grad_phi L / m                       (one gradient step, m measurements)
    x_s  ~ q(x_s | x_t, x0~)                              (the DDPM posterior step)

``r_t^2 = c sigma_t^2 / (alpha_t^2 c + sigma_t^2)`` (``c = data_var``) is the spread of ``x0``
given ``x_t`` used by PiGDM (:mod:`.guided`): for ``D = I`` the step is the exact Kalman update
of ``x0^``, and it is a stable gradient step for any ``D`` of Lipschitz constant <= 1 (blur,
inpainting, average pooling). The paper's guidance scale ``s`` and its per-step update of the
light factor / blur kernel ``phi`` are ``scale`` and ``lr``; ``phi`` is averaged over the batch
(one degradation for all samples). :func:`gdp` returns the final data prediction and ``phi``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..solvers import Noise
from .operators import positive_float
from .posterior import check_sigma_y

__all__ = ["gdp", "gaussian_blur"]

Degradation = Callable[[Tensor, Tensor], Tensor]  # D(x batch, phi) -> measurement batch


def _loss_gradients(degrade: Degradation, y: Tensor, x0: Tensor,
                    phi: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """``grad_{x0} L`` per sample and ``grad_phi`` of ``L / m`` averaged over the batch."""
    with torch.inference_mode(False), torch.enable_grad():
        xg = x0.detach().clone().requires_grad_(True)
        pg = None if phi is None else phi.detach().clone().requires_grad_(True)
        out = degrade(xg, pg)
        if not isinstance(out, Tensor) or out.shape[1:] != y.shape[1:]:
            got = tuple(out.shape[1:]) if isinstance(out, Tensor) else type(out).__name__
            raise InterpolantError(f"the degradation gave {got} per sample but y has shape "
                                   f"{tuple(y.shape[1:])}")
        loss = 0.5 * (y - out).pow(2).sum()
        if pg is None:
            (gx,) = torch.autograd.grad(loss, xg)
            return gx, None
        gx, gp = torch.autograd.grad(loss, (xg, pg))
    return gx, gp / (x0.shape[0] * y[0].numel())


def gaussian_blur(x: Tensor, std: Tensor | float, radius: int = 4) -> Tensor:
    """Circular Gaussian blur of the last dimension of ``x`` with the ``2 radius + 1`` taps
    ``exp(-j^2 / (2 std^2))`` (normalised), differentiable in ``std``: a degradation family for
    :func:`gdp` (``degrade = gaussian_blur``, ``phi`` the width)."""
    std = torch.as_tensor(std, dtype=x.dtype)
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    w = torch.exp(-0.5 * (taps / std) ** 2)
    w = w / w.sum()
    return sum(w[i] * torch.roll(x, int(taps[i]), dims=-1) for i in range(taps.numel()))


def gdp(den: Any, degrade: Degradation, y: Tensor, x: Tensor, ts: Tensor,
        generator: Any = None, phi: Tensor | None = None, scale: float = 1.0,
        lr: float = 0.1, sigma_y: float = 0.0, data_var: float = 1.0,
        cond: Any = None) -> tuple[Tensor, Tensor | None]:
    """Run GDP-x0 from ``x`` (noise at ``ts[0]``) down the decreasing grid ``ts``.

    Args:
        degrade: ``degrade(x, phi)``, differentiable in both, e.g. ``lambda x, f: f * x``
            (GDP's light factor) or a blur whose width is ``phi``; with ``phi=None`` a known
            degradation (``phi`` is passed as ``None``).
        y: one measurement (no batch dimension); phi: the starting parameters.
        scale, lr: the guidance scale and the step size of ``phi``.
    Returns ``(x0, phi)``: the final data prediction and the fitted parameters.
    """
    scale, lr = positive_float(scale, "scale"), positive_float(lr, "lr")
    sigma_y, data_var = check_sigma_y(sigma_y), positive_float(data_var, "data_var")
    if not callable(degrade):
        raise InterpolantError(f"degrade must be a function (x, phi) -> measurement, got "
                               f"{type(degrade).__name__}")
    if phi is not None:
        phi = torch.as_tensor(phi, dtype=torch.float64).clone()
        if not torch.isfinite(phi).all():
            raise InterpolantError("phi (the starting degradation parameters) must be finite")
    noise, path, y = Noise(generator), den.path, y.to(x)[None]
    times = ts.tolist()
    for t, s in zip(times[:-1], times[1:]):
        a_t, s_t, a_s, s_s = path.alpha(t), path.sigma(t), path.alpha(s), path.sigma(s)
        x0 = den(x, t, cond, "x0")
        gx, gp = _loss_gradients(degrade, y, x0, None if phi is None else phi.to(x))
        r2 = data_var * s_t**2 / (a_t**2 * data_var + s_t**2)
        x0 = x0 - (scale * r2 / (r2 + sigma_y**2)) * gx
        if phi is not None:
            phi = phi - lr * gp.to(phi)
        # q(x_s | x_t, x0~): mean a_s x0~ + sqrt(s_s^2 - c^2) eps~, noise c (ancestral DDPM)
        c = s_s * math.sqrt(max(1.0 - (a_t * s_s / (a_s * s_t)) ** 2, 0.0))
        eps = (x - a_t * x0) / s_t
        x = a_s * x0 + math.sqrt(max(s_s**2 - c**2, 0.0)) * eps + c * noise.like(x)
    return den(x, times[-1], cond, "x0"), phi
