"""Prediction targets and the :class:`Denoiser` that hands a solver the one it asks for.

For a Gaussian path ``x_t = alpha x0 + sigma eps`` (derivatives ``alpha'``, ``sigma'``) the
five targets a network may learn are

=============  =====================================  ==================================
target         definition                             back to the data prediction
=============  =====================================  ==================================
``x0``         ``x0``                                 ``x0``
``eps``        ``eps``                                ``(x - sigma eps) / alpha``
``v``          ``alpha eps - sigma x0``               ``(alpha x - sigma v) / (alpha^2 + sigma^2)``
``velocity``   ``dx/dt = alpha' x0 + sigma' eps``     ``(sigma' x - sigma u) / (alpha sigma' - sigma alpha')``
``score``      ``grad log p_t = -eps / sigma``        ``(x + sigma^2 s) / alpha``
=============  =====================================  ==================================

``v`` is the target of Salimans & Ho (2022); for variance-preserving paths it is the
derivative of ``x_t`` with respect to the angle ``atan(sigma / alpha)``. Every conversion goes
through the pair ``(x0, eps)`` and is written once, in :func:`convert_with`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .errors import InterpolantError, unknown_name
from .paths import GaussianPath, broadcast_time, check_time

TARGETS = ("eps", "x0", "v", "velocity", "score")

Coef = float | Tensor
TIME_CACHE = 1024  # time tensors a Denoiser keeps (see Denoiser._time_tensor)

__all__ = ["TARGETS", "convert", "convert_with", "Denoiser"]


def _check_target(name: str, kind: str = "prediction target") -> None:
    if name not in TARGETS:
        raise unknown_name(kind, name, TARGETS)


def _x0_of(out: Tensor, src: str, x: Tensor, a: Coef, s: Coef, da: Coef, ds: Coef) -> Tensor:
    if src == "x0":
        return out
    if isinstance(a, float):  # one time for the batch: fused ops, in place on fresh tensors only
        if src == "eps":
            return torch.sub(x, out, alpha=s).div_(a)
        if src == "v":
            return torch.mul(x, a).sub_(out, alpha=s).div_(a * a + s * s)
        if src == "velocity":
            return torch.mul(x, ds).sub_(out, alpha=s).div_(a * ds - s * da)
        return torch.add(x, out, alpha=s * s).div_(a)  # score
    if src == "eps":
        return (x - s * out) / a
    if src == "v":
        return (a * x - s * out) / (a * a + s * s)
    if src == "velocity":
        return (ds * x - s * out) / (a * ds - s * da)
    return (x + (s * s) * out) / a  # score


def _eps_of(out: Tensor, src: str, x: Tensor, a: Coef, s: Coef, da: Coef, ds: Coef) -> Tensor:
    if src == "eps":
        return out
    if isinstance(a, float):
        if src == "x0":
            return torch.sub(x, out, alpha=a).div_(s)
        if src == "v":
            return torch.mul(x, s).add_(out, alpha=a).div_(a * a + s * s)
        if src == "velocity":
            return torch.mul(out, a).sub_(x, alpha=da).div_(a * ds - s * da)
        return out * (-s)  # score
    if src == "x0":
        return (x - a * out) / s
    if src == "v":
        return (s * x + a * out) / (a * a + s * s)
    if src == "velocity":
        return (a * out - da * x) / (a * ds - s * da)
    return -s * out  # score


def convert_with(
    out: Tensor, src: str, dst: str, x: Tensor, a: Coef, s: Coef, da: Coef, ds: Coef
) -> Tensor:
    """Convert ``out`` (a ``src`` prediction at ``x``) into a ``dst`` prediction.

    ``a, s, da, ds`` are ``alpha, sigma`` and their time derivatives at the time of ``x``, as
    floats or as tensors that broadcast against ``x``.
    """
    if src == dst:
        return out
    if dst == "x0":
        return _x0_of(out, src, x, a, s, da, ds)
    if dst == "eps":
        return _eps_of(out, src, x, a, s, da, ds)
    if dst == "score":
        return _eps_of(out, src, x, a, s, da, ds) / (-s)
    if isinstance(a, float):  # dst is linear in (x, out): two ops
        try:
            p, q = _linear(src, dst, a, s, da, ds)  # type: ignore[arg-type]
            return torch.mul(x, p).add_(out, alpha=q)
        except ZeroDivisionError:  # at alpha = 0 or sigma = 0: the tensor formulas below
            pass
    x0 = _x0_of(out, src, x, a, s, da, ds)
    eps = _eps_of(out, src, x, a, s, da, ds)
    if dst == "v":
        return a * eps - s * x0
    return da * x0 + ds * eps  # velocity


def _linear(src: str, dst: str, a: float, s: float, da: float, ds: float) -> tuple[float, float]:
    """``(p, q)`` with ``dst = p x + q out`` (``dst`` is ``v`` or ``velocity``), as tabled above."""
    if src == "x0":
        x0, eps = (0.0, 1.0), (1.0 / s, -a / s)
    elif src == "eps":
        x0, eps = (1.0 / a, -s / a), (0.0, 1.0)
    elif src == "v":
        n = a * a + s * s
        x0, eps = (a / n, -s / n), (s / n, a / n)
    elif src == "velocity":
        d = a * ds - s * da
        x0, eps = (ds / d, -s / d), (-da / d, a / d)
    else:  # score
        x0, eps = (1.0 / a, s * s / a), (0.0, -s)
    c0, c1 = (-s, a) if dst == "v" else (da, ds)  # v = a eps - s x0; velocity = da x0 + ds eps
    return c0 * x0[0] + c1 * eps[0], c0 * x0[1] + c1 * eps[1]


def convert(
    out: Tensor, src: str, dst: str, x: Tensor, t: Tensor | float, path: GaussianPath
) -> Tensor:
    """Convert a ``src`` prediction into a ``dst`` prediction at ``(x, t)`` on ``path``.

    ``t`` is a float or a tensor of shape ``(B,)`` (one time per sample).
    """
    _check_target(src)
    _check_target(dst)
    if out.shape != x.shape:
        raise InterpolantError(
            f"prediction has shape {tuple(out.shape)} but x has shape {tuple(x.shape)}"
        )
    a, s, da, ds = _coefficients(path, check_time(t, x), x)
    return convert_with(out, src, dst, x, a, s, da, ds)


def _coefficients(
    path: GaussianPath, t: Tensor | float, x: Tensor
) -> tuple[Coef, Coef, Coef, Coef]:
    if isinstance(t, float):
        return path.scalars(t)
    t64 = t.to(torch.float64)
    return tuple(  # type: ignore[return-value]
        broadcast_time(f(t64).to(device=x.device, dtype=x.dtype), x)
        for f in (path.alpha, path.sigma, path.d_alpha, path.d_sigma)
    )


ModelLike = nn.Module | Callable[..., Tensor]


# Targets an eps prediction reaches only through x0 = (x - sigma eps) / alpha, and the
# alpha / sigma below which that division has lost every digit.
_NEED_ALPHA = frozenset({"x0", "v", "velocity"})
_TINY = 1e-8


class Denoiser:
    """A network, the path it was trained on and the target it predicts.

    ``Denoiser(model, path, prediction="eps")`` calls ``model(x, t, cond)`` with ``t`` of
    shape ``(B,)`` in the dtype of ``x``, upcasts a low-precision output to the dtype of
    ``x``, converts it to the target the caller asks for, and counts network evaluations
    in :attr:`nfe`.

    ``time_scale`` multiplies ``t`` before the network sees it, for networks trained on
    another time unit (e.g. ``time_scale=1000``); ``time_shift`` is added after that (e.g.
    ``-1`` for networks trained on DDPM indices ``k = 1000 t - 1`` of :class:`VPDiscrete`).
    """

    def __init__(
        self,
        model: ModelLike,
        path: GaussianPath,
        prediction: str = "eps",
        *,
        time_scale: float = 1.0,
        time_shift: float = 0.0,
    ) -> None:
        if not callable(model):
            raise InterpolantError(f"model must be callable, got {type(model).__name__}")
        if not isinstance(path, GaussianPath):
            raise InterpolantError(
                f"Denoiser needs a Gaussian path from interpolant.paths, got {type(path).__name__}"
            )
        _check_target(prediction)
        self.model = model
        self.path = path
        self.prediction = prediction
        self.time_scale = float(time_scale)
        self.time_shift = float(time_shift)
        self.nfe = 0
        self._times: dict[tuple, Tensor] = {}

    def __call__(
        self, x: Tensor, t: Tensor | float, cond: Any = None, target: str = "x0"
    ) -> Tensor:
        """The ``target`` prediction at ``(x, t)``; ``t`` a float or of shape ``(B,)``."""
        if target not in TARGETS:
            _check_target(target)
        if type(t) is float:
            t_model = self._time_tensor(t, x)
            a, s, da, ds = self.path.scalars(t)
            if self.prediction == "eps" and target in _NEED_ALPHA and abs(a) < _TINY * s:
                raise InterpolantError(
                    f"an eps-predicting network cannot give {target!r} at t = {t:g}, where "
                    f"alpha(t) = {a:.3g} (x0 = (x - sigma eps) / alpha is undefined there); "
                    "start sampling below the noise end (e.g. t_start=0.999) or train the "
                    "network to predict 'v' or 'velocity'"
                )
        else:
            t = check_time(t, x)
            if isinstance(t, float):
                return self(x, t, cond, target)
            t_model = self._scale(t.to(device=x.device, dtype=x.dtype))
            a, s, da, ds = _coefficients(self.path, t, x)
        out = self.model(x, t_model, cond)
        self.nfe += 1
        if not isinstance(out, Tensor) or out.shape != x.shape:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InterpolantError(
                f"the model returned {shape} for an input of shape {tuple(x.shape)}; "
                "a denoiser's network must return a tensor shaped like its input"
            )
        if out.dtype != x.dtype:
            out = out.to(x.dtype)
        return convert_with(out, self.prediction, target, x, a, s, da, ds)

    def _scale(self, t_model: Tensor) -> Tensor:
        if self.time_scale != 1.0 or self.time_shift != 0.0:
            t_model = t_model * self.time_scale + self.time_shift
        return t_model

    def _time_tensor(self, t: float, x: Tensor) -> Tensor:
        """The network's time input for one time ``t``: ``(B,)`` in the dtype of ``x``.

        A sampler asks for the same few times over and over (one grid, many runs), so the
        tensors are kept, keyed on their value (``t, B``, dtype, device, inference mode and
        the time scale and shift).
        Entries are never changed once stored (a dict insert is atomic, so threads may share
        the denoiser); the network must not modify ``t`` in place.
        """
        key = (t, x.shape[0], x.dtype, x.device, torch.is_inference_mode_enabled(),
               self.time_scale, self.time_shift)
        times = self._times
        t_model = times.get(key)
        if t_model is None:
            t_model = self._scale(torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
            if len(times) >= TIME_CACHE:
                times.clear()
            times[key] = t_model
        return t_model

    def parameter_dtypes(self) -> set[torch.dtype]:
        """Floating dtypes of the network's parameters (empty for a plain callable)."""
        if isinstance(self.model, nn.Module):
            return {p.dtype for p in self.model.parameters() if p.is_floating_point()}
        return set()

    def __repr__(self) -> str:
        return (
            f"Denoiser({type(self.model).__name__}, {self.path!r}, "
            f"prediction={self.prediction!r}, nfe={self.nfe})"
        )
