"""Spectral Diffusion's spectrum-aware distillation (Yang, Zhou, Feng & Wang, "Diffusion
Probabilistic Model Made Slim", CVPR 2023, Sec. 4.2): a slim student (the wavelet-gated
:class:`interpolant.models.SpectralUNet`) learns from the data and from a large teacher's
predictions at the same noisy input,

    L = L_DPM + lambda_s L_spatial + lambda_f L_freq,
    L_spatial = || X_T - X_S ||^2,
    L_freq    = sum_k w_k | F(X_T)_k - F(X_S)_k |^2,   w_k = |F(X_0)_k|^alpha,  alpha = -1,

``X_T``, ``X_S`` the teacher's and student's outputs (same target), ``F`` the orthonormal 2-D
DFT and ``X_0`` the clean image: the inverse weighting by the clean image's spectrum magnitude
puts the weight on the rare high frequencies that slim networks miss. The paper uses
``lambda_s = lambda_f = 0.1`` and also matches intermediate features through 1x1 convolutions;
here only the outputs are distilled (the networks differ in width, not in output).

Choices made here, not in the paper's formula: the squared norms are means over the
coefficients (so ``lambda`` weighs them against the per-pixel MSE ``L_DPM``); the weights are
floored at ``|F(X_0)_k| >= eps`` and normalised to mean 1 over each image's coefficients, so
that ``alpha = 0`` gives ``L_freq = L_spatial`` exactly (Parseval: ``F`` is orthonormal);
``transform="haar"`` takes the one-level orthonormal Haar subbands
(:func:`interpolant.models.spectral.haar_dwt2`, the wavelet the student gates) in place of the
DFT, with the same identity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError, unknown_name
from ..models.spectral import haar_dwt2

__all__ = ["SpectralDistillation", "spectrum", "spectrum_loss", "spectrum_weights"]

TRANSFORMS = ("fft", "haar")


def spectrum(x: Tensor, transform: str = "fft") -> Tensor:
    """Orthonormal coefficients of images ``(B, C, H, W)``, flattened to ``(B, K)``: the 2-D
    DFT (complex, ``norm="ortho"``) or the one-level Haar subbands."""
    if transform == "fft":
        return torch.fft.fft2(x, norm="ortho").flatten(1)
    if transform == "haar":
        return haar_dwt2(x).flatten(1)
    raise unknown_name("spectrum transform", transform, TRANSFORMS)


def spectrum_weights(x0: Tensor, alpha: float = -1.0, transform: str = "fft",
                     eps: float = 1e-2) -> Tensor:
    """``w_k = max(|F(x0)_k|, eps)^alpha``, normalised to mean 1 per image: ``(B, K)``."""
    w = spectrum(x0.to(torch.promote_types(x0.dtype, torch.float32)), transform).abs()
    w = w.clamp_min(eps).pow(alpha)
    return w / w.mean(dim=1, keepdim=True)


def spectrum_loss(student: Tensor, teacher: Tensor, x0: Tensor, alpha: float = -1.0,
                  transform: str = "fft", eps: float = 1e-2) -> Tensor:
    """Per-image ``mean_k w_k |F(teacher)_k - F(student)_k|^2`` (module docstring): ``(B,)``."""
    diff = spectrum(teacher.to(student.dtype) - student, transform)
    return (spectrum_weights(x0, alpha, transform, eps).to(diff.real.dtype)
            * diff.abs().pow(2)).mean(dim=1)


class SpectralDistillation(nn.Module):
    """``SpectralDistillation(base, teacher, spatial=0.1, freq=0.1, alpha=-1.0,
    transform="fft")``: ``base``'s loss (an :class:`interpolant.training.Objective`, whose
    path, target and time density it uses) plus the spatial and frequency distillation terms
    towards ``teacher(x_t, t, cond)``, a frozen network predicting the same target."""

    def __init__(self, base: Any, teacher: Callable[..., Tensor], spatial: float = 0.1,
                 freq: float = 0.1, alpha: float = -1.0, transform: str = "fft",
                 eps: float = 1e-2) -> None:
        super().__init__()
        if not callable(teacher):
            raise InterpolantError(f"the distillation teacher must be a network "
                                   f"teacher(x_t, t, cond), got {type(teacher).__name__}")
        if not (spatial >= 0 and freq >= 0 and eps > 0):
            raise InterpolantError(f"spectrum-aware distillation needs spatial, freq >= 0 and "
                                   f"eps > 0, got {spatial}, {freq}, {eps}")
        if transform not in TRANSFORMS:
            raise unknown_name("spectrum transform", transform, TRANSFORMS)
        self.base, self.spatial, self.freq = base, float(spatial), float(freq)
        self.alpha, self.transform, self.eps = float(alpha), transform, float(eps)
        # kept out of the module's parameters: the teacher is frozen, neither trained nor saved
        object.__setattr__(self, "teacher", teacher)
        if isinstance(teacher, nn.Module):
            teacher.eval().requires_grad_(False)

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.base.sample_time(n, generator)

    def forward(self, net: Any, x0: Tensor, noise: Tensor, t: Tensor, cond: Any = None
                ) -> Tensor:
        """``L_DPM + lambda_s L_spatial + lambda_f L_freq`` (module docstring)."""
        x_t, out = self.base.outputs(net, x0, noise, t, cond)
        loss = self.base.loss_of(out, x0, noise, t).mean()
        with torch.no_grad():
            target = self.teacher(x_t, t.to(device=x0.device, dtype=x0.dtype), cond)
        if not isinstance(target, Tensor) or target.shape != out.shape:
            got = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
            raise InterpolantError(f"the teacher returned {got} for outputs of shape "
                                   f"{tuple(out.shape)}; it must predict the student's target")
        spatial = (target.to(out.dtype) - out).pow(2).flatten(1).mean(1).mean()
        freq = spectrum_loss(out, target, x0, self.alpha, self.transform, self.eps).mean()
        self.last_terms = (float(spatial.detach()), float(freq.detach()))
        return loss + self.spatial * spatial + self.freq * freq

    def __repr__(self) -> str:
        return (f"SpectralDistillation({self.base!r}, spatial={self.spatial}, freq={self.freq}, "
                f"alpha={self.alpha}, transform={self.transform!r})")
