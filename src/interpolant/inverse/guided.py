"""Measurement-guided denoisers: DPS, PiGDM and DDNM as denoiser-to-denoiser transforms.

Each wraps a :class:`~interpolant.predictions.Denoiser` ``den`` on a Gaussian path and
returns a corrected data prediction ``x0~(x_t)``; every other target follows from it (so
any solver of :func:`interpolant.sample`, on any grid, samples the guided model). A score
correction ``g ~ grad_{x_t} log p(y | x_t)`` enters the data prediction as

    x0~ = x0^ + (sigma_t^2 / alpha_t) g        (Tweedie: x0^ = (x_t + sigma^2 score) / alpha),

and ``grad_{x_t}`` of a function of ``x0^`` is a vector-Jacobian product through the network.
The prior covariance of ``x0`` given ``x_t`` is modelled as ``r_t^2 I`` with

    r_t^2 = c sigma_t^2 / (alpha_t^2 c + sigma_t^2),    c = data_var

(PiGDM's ``r_t^2 = sigma_t^2 / (1 + sigma_t^2)`` for unit-variance data, written for any path);
for an isotropic Gaussian prior ``N(m, c I)`` it is the exact posterior variance.

Each is a :class:`interpolant.guidance.Guided`: one network evaluation per call (DPS and PiGDM
add one backward pass through it), counted in ``.nfe`` and in the wrapped denoiser's ``.nfe``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError
from ..guidance.base import Guided
from ..paths import GaussianPath
from ..predictions import _TINY as NOISE_END
from .operators import RCOND, Operator, as_tensor64, positive_float
from .posterior import check_sigma_y

__all__ = ["MeasurementGuided", "DPS", "PiGDM", "DDNM"]


def _wiener(e: Tensor, r2: float, s2: float) -> Tensor:
    """``1 / (r2 e + s2)`` on the eigenvalues ``e`` of ``A A^T``, zero where it vanishes."""
    lam = r2 * e + s2
    keep = lam > RCOND * lam.max()
    return torch.where(keep, 1.0 / torch.where(keep, lam, 1.0), 0.0)


class MeasurementGuided(Guided):
    """Base of the guided denoisers (a :class:`~interpolant.guidance.Guided`: ``g(x, t, cond,
    target)`` with ``.path``, ``.nfe`` counting network evaluations, and the inner denoiser's own
    counter). Subclasses give :meth:`corrected_x0` at one time ``t``."""

    def __init__(self, den: Any, op: Operator, y: Tensor, sigma_y: float,
                 data_var: float = 1.0) -> None:
        if not callable(den) or not isinstance(getattr(den, "path", None), GaussianPath):
            raise InterpolantError(
                f"{type(self).__name__} needs a denoiser on a Gaussian path (interpolant.Denoiser "
                f"or a wrapper with .path), got {type(den).__name__}"
            )
        super().__init__(den=den)
        if not isinstance(op, Operator):
            raise InterpolantError(f"op must be an interpolant.inverse operator, got "
                                   f"{type(op).__name__}")
        self.den, self.op, self.data_var = den, op, positive_float(data_var, "data_var")
        self.y = as_tensor64(y, "the measurement y")
        self.sigma_y = check_sigma_y(sigma_y)

    def _guide(self, x: Tensor, t: Tensor | float, cond: Any, target: str) -> Tensor:
        """The ``target`` prediction of the guided model; per-sample times are served one
        distinct time at a time."""
        if isinstance(t, Tensor):
            x0 = torch.empty_like(x)
            for tv in torch.unique(t).tolist():
                rows = t == tv
                sub = cond[rows] if isinstance(cond, Tensor) else cond
                x0[rows] = self.corrected_x0(x[rows], float(tv), sub)
        else:
            x0 = self.corrected_x0(x, t, cond)
        return self._convert(x0, "x0", target, x, t)

    def corrected_x0(self, x: Tensor, t: float, cond: Any) -> Tensor:
        raise NotImplementedError

    # -- shared pieces -------------------------------------------------------------------
    def residual(self, x0: Tensor) -> Tensor:
        """``y - A x0`` per sample."""
        ax = self.op(x0)
        if ax.shape[1:] != self.y.shape:
            raise InterpolantError(
                f"y has shape {tuple(self.y.shape)} but the operator gives {tuple(ax.shape[1:])} "
                "for these samples; pass one measurement of one sample (no batch dimension)"
            )
        return self.y.to(x0)[None] - ax

    def r2(self, t: float) -> float:
        """``r_t^2 = c sigma^2 / (alpha^2 c + sigma^2)``."""
        a, s = self.path.alpha(t), self.path.sigma(t)
        return self.data_var * s * s / (a * a * self.data_var + s * s)

    def kalman_direction(self, x0: Tensor, r2: float) -> Tensor:
        """``A^T (r2 A A^T + sigma_y^2 I)^{-1} (y - A x0)`` (the pseudo-inverse on the row space
        when ``sigma_y = 0``)."""
        fn = functools.partial(_wiener, r2=r2, s2=self.sigma_y**2)
        return self.op.adjoint(self.op.gram_apply(self.residual(x0), fn))

    def pulled_back(self, x: Tensor, t: float, cond: Any,
                    direction: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
        """``x0^(x_t)`` and ``(s^2 / a) J^T v`` with ``J = d x0^ / d x_t`` and ``v =
        direction(x0^)`` (a vector-Jacobian product through the denoiser).

        By Tweedie, ``(s^2 / a) J = Cov[x0 | x_t]``: finite, but at the noise end (``alpha(t) <
        1e-8 sigma(t)``, e.g. ``t = 1`` on the cosine path, where ``alpha = 6e-17``) it is the
        ratio of two vanishing numbers. An exact denoiser has ``J = O(alpha)`` there; a trained
        one keeps the Jacobian it has just below the noise end, so ``s^2 / a`` multiplies it by
        ~1e16. There the product is its limit under the methods' own covariance model
        ``Cov[x0 | x_t] = r_t^2 I`` (exact for an isotropic Gaussian prior): ``r_1^2 v =
        data_var v``, with no backward pass."""
        a, s = self.path.alpha(t), self.path.sigma(t)
        if abs(a) < NOISE_END * s:
            x0 = self._eval(self.den, x, t, cond, "x0")
            return x0, self.r2(t) * direction(x0)
        with torch.inference_mode(False), torch.enable_grad():
            xg = x.detach().clone().requires_grad_(True)
            x0 = self._eval(self.den, xg, t, cond, "x0")
            v = direction(x0.detach())
            (g,) = torch.autograd.grad(x0, xg, grad_outputs=v)
        return x0.detach(), g * (s * s / a)


class DPS(MeasurementGuided):
    """Diffusion posterior sampling (Chung et al., ICLR 2023).

    ``p(y | x_t)`` is replaced by ``p(y | x0^(x_t))`` (their eq. 16). With
    ``gaussian_likelihood=True`` that is literally ``N(y; A x0^, sigma_y^2 I)``:
    ``g = J^T A^T (y - A x0^) / sigma_y^2`` and ``x0~ = x0^ + (sigma^2 / alpha) g`` (stiff where
    ``sigma_y`` is small against the prior: it needs ~1000 steps, as the paper takes). By default
    the step is normalised as in their Algorithm 1 and the official code,
    ``g = -zeta grad_{x_t} ||y - A x0^||`` (``zeta_i = zeta / ||y - A x0^||`` on the squared
    norm), with ``zeta = sqrt(m) / sigma_y`` for ``m`` measurements: the Gaussian likelihood's
    gradient where the residual has its expected size ``sigma_y sqrt(m)``, bounded where it is
    larger; pass ``zeta`` when ``sigma_y = 0``. The paper takes its step in ``x`` after each
    DDPM step; here it is a score term, so the result does not depend on the grid, and the
    paper's values of ``zeta`` do not carry over. ``data_var`` (the prior's variance per
    coordinate) serves only at the noise end (see :meth:`MeasurementGuided.pulled_back`).
    """

    def __init__(self, den: Any, op: Operator, y: Tensor, sigma_y: float,
                 zeta: float | None = None, gaussian_likelihood: bool = False,
                 data_var: float = 1.0) -> None:
        super().__init__(den, op, y, sigma_y, data_var)
        if self.sigma_y == 0 and (zeta is None or gaussian_likelihood):
            raise InterpolantError("DPS with sigma_y = 0 needs a step size: pass zeta=...")
        self.gaussian_likelihood = bool(gaussian_likelihood)
        self.zeta = (math.sqrt(self.y.numel()) / self.sigma_y if zeta is None
                     else positive_float(zeta, "zeta"))

    def _direction(self, x0: Tensor) -> Tensor:
        r = self.residual(x0)
        if self.gaussian_likelihood:
            return self.op.adjoint(r) / self.sigma_y**2
        norm = r.flatten(1).norm(dim=1).clamp_min(torch.finfo(r.dtype).tiny)
        return self.op.adjoint(r / norm.view(-1, *[1] * (r.ndim - 1))) * self.zeta

    def corrected_x0(self, x: Tensor, t: float, cond: Any) -> Tensor:
        x0, shift = self.pulled_back(x, t, cond, self._direction)
        return x0 + shift


class PiGDM(MeasurementGuided):
    """Pseudo-inverse guided diffusion (Song, Vahdat, Mardani & Kautz, ICLR 2023).

    ``p(x0 | x_t) ~ N(x0^, r_t^2 I)`` makes ``p(y | x_t) ~ N(A x0^, r_t^2 A A^T + sigma_y^2 I)``,
    whose score is ``g = J^T A^T (r_t^2 A A^T + sigma_y^2 I)^{-1} (y - A x0^)``
    (``J = d x0^ / d x_t``), so ``x0~ = x0^ + (sigma^2 / alpha) g``. Exact for a Gaussian prior
    ``N(m, c I)`` with ``data_var = c``.
    """

    def corrected_x0(self, x: Tensor, t: float, cond: Any) -> Tensor:
        r2 = self.r2(t)
        x0, shift = self.pulled_back(x, t, cond, lambda z: self.kalman_direction(z, r2))
        return x0 + shift


class DDNM(MeasurementGuided):
    """Denoising diffusion null-space model (Wang, Yu & Zhang, ICLR 2023).

    Noiseless (``sigma_y = 0``): keep the null-space part of ``x0^`` and take the row-space
    part from ``y``: ``x0~ = A^+ y + (I - A^+ A) x0^``, so ``A x0~ = y`` exactly.
    Noisy: the row-space correction is shrunk per singular direction,
    ``x0~ = x0^ + r_t^2 A^T (r_t^2 A A^T + sigma_y^2 I)^{-1} (y - A x0^)`` (the Kalman update of
    ``x0^`` with prior covariance ``r_t^2 I``; DDNM+ shrinks with ``Sigma_t`` inside the DDPM
    step instead). No Jacobian: one plain network evaluation per step.
    """

    def corrected_x0(self, x: Tensor, t: float, cond: Any) -> Tensor:
        x0 = self._eval(self.den, x, t, cond, "x0")
        if self.sigma_y == 0:
            return x0 + self.op.pinv(self.residual(x0))
        r2 = self.r2(t)
        return x0 + r2 * self.kalman_direction(x0, r2)
