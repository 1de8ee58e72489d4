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
through the pair ``(x0, eps)``: the two columns of the table are written once, in
:func:`definition_coefficients` and :func:`hub_coefficients`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .errors import InterpolantError, unknown_name
from .network import ModelLike, call_network, takes_cond
from .paths import GaussianPath, broadcast_time, check_time

TARGETS = ("eps", "x0", "v", "velocity", "score")

Coef = float | Tensor
TIME_CACHE = 1024  # time tensors a Denoiser keeps (see Denoiser._time_tensor)

__all__ = [
    "TARGETS", "convert", "convert_with", "combine", "definition_coefficients",
    "hub_coefficients", "Denoiser",
]


def _check_target(name: str, kind: str = "prediction target") -> None:
    if name not in TARGETS:
        raise unknown_name(kind, name, TARGETS)


def _div(num: Coef, den: Coef) -> Coef:
    """``num / den``; a float division by zero gives +-inf or nan as tensor arithmetic does."""
    if isinstance(den, float) and den == 0.0 and isinstance(num, float):
        return math.nan if num == 0.0 else math.copysign(math.inf, num)
    return num / den


def hub_coefficients(
    src: str, a: Coef, s: Coef, da: Coef, ds: Coef
) -> tuple[tuple[Coef, Coef], tuple[Coef, Coef]]:
    """``x0`` and ``eps`` as ``p x + q out`` for a ``src`` prediction ``out`` (the last column
    of the table above): returns ``((p_x0, q_x0), (p_eps, q_eps))``.

    ``q_x0 = dx0 / dout`` at fixed ``x`` is also the factor by which an error in ``src``
    becomes an error in ``x0`` (the loss-weight conversion of :mod:`interpolant.training`).
    """
    if src == "x0":
        return (0.0, 1.0), (_div(1.0, s), _div(-a, s))
    if src == "eps":
        return (_div(1.0, a), _div(-s, a)), (0.0, 1.0)
    if src == "v":
        n = a * a + s * s
        return (a / n, -s / n), (s / n, a / n)
    if src == "velocity":
        d = a * ds - s * da
        return (_div(ds, d), _div(-s, d)), (_div(-da, d), _div(a, d))
    return (_div(1.0, a), _div(s * s, a)), (0.0, -s)  # score: eps = -sigma score


def definition_coefficients(dst: str, a: Coef, s: Coef, da: Coef, ds: Coef) -> tuple[Coef, Coef]:
    """``(A, B)`` with ``dst = A x0 + B eps`` (the definition column of the table above).

    The training target of :mod:`interpolant.training` and the ``dst`` side of
    :func:`convert_with` both read it.
    """
    if dst == "x0":
        return 1.0, 0.0
    if dst == "eps":
        return 0.0, 1.0
    if dst == "v":
        return -s, a
    if dst == "velocity":
        return da, ds
    return 0.0, _div(-1.0, s)  # score = -eps / sigma


def combine(c1: Coef, u: Any, c2: Coef, w: Any) -> Any:
    """``c1 u + c2 w``, leaving out a term whose coefficient is the float 0 (so that an
    infinite ``u`` or ``w`` there gives no ``0 * inf = nan``)."""
    if isinstance(c1, float) and c1 == 0.0:
        return c2 * w
    if isinstance(c2, float) and c2 == 0.0:
        return c1 * u
    return c1 * u + c2 * w


def convert_with(
    out: Tensor, src: str, dst: str, x: Tensor, a: Coef, s: Coef, da: Coef, ds: Coef
) -> Tensor:
    """Convert ``out`` (a ``src`` prediction at ``x``) into a ``dst`` prediction.

    ``a, s, da, ds`` are ``alpha, sigma`` and their time derivatives at the time of ``x``, as
    floats or as tensors that broadcast against ``x``. Every target is linear in ``(x, out)``:
    ``dst = A x0 + B eps`` (:func:`definition_coefficients`) with ``x0, eps`` from
    :func:`hub_coefficients`; with one time for the batch the result is two fused tensor
    operations.
    """
    if src == dst:
        return out
    (p0, q0), (pe, qe) = hub_coefficients(src, a, s, da, ds)
    c0, ce = definition_coefficients(dst, a, s, da, ds)
    p, q = combine(c0, p0, ce, pe), combine(c0, q0, ce, qe)
    if isinstance(p, float) and isinstance(q, float):
        if p == 0.0:
            return out * q
        return torch.mul(x, p).add_(out, alpha=q)  # a fresh tensor: safe to update in place
    return p * x + q * out


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


# Predictions that give x0 only through a division by alpha (the x0 column of the table), the
# targets that need x0, and the alpha / sigma below which that division has lost every digit:
# where alpha(t) = 0 such a network sees no trace of the data (eps = x / sigma, score = -x /
# sigma^2 whatever x0 is), so no x0 can be recovered from it.
_THROUGH_ALPHA = {"eps": "(x - sigma eps) / alpha", "score": "(x + sigma^2 score) / alpha"}
_NEED_ALPHA = frozenset({"x0", "v", "velocity"})
_TINY = 1e-8
_ARTICLE = {"eps": "an", "score": "a"}


class Denoiser:
    """A network, the path it was trained on and the target it predicts.

    ``Denoiser(model, path, prediction="eps")`` calls ``model(x, t, cond)`` with ``t`` of
    shape ``(B,)`` in the dtype of ``x`` (or ``model(x, t)`` for a network written without a
    condition, see :func:`takes_cond`), upcasts a low-precision output to the dtype of
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
        self._with_cond = takes_cond(model)
        self._blind_at_noise = prediction in _THROUGH_ALPHA
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
            if self._blind_at_noise and target in _NEED_ALPHA:
                self._check_signal(target, t, a, s)
        else:
            t = check_time(t, x)
            if isinstance(t, float):
                return self(x, t, cond, target)
            t_model = self._scale(t.to(device=x.device, dtype=x.dtype))
            a, s, da, ds = _coefficients(self.path, t, x)
            if self._blind_at_noise and target in _NEED_ALPHA:
                self._check_signal(target, t, a, s)
        out = call_network(self.model, self._with_cond, x, t_model, cond)
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

    def _check_signal(self, target: str, t: Tensor | float, a: Coef, s: Coef) -> None:
        """Refuse ``target`` from an eps or score network where ``alpha(t) ~ 0`` (see
        ``_THROUGH_ALPHA``): the result would be NaN or its rounding errors times ``1 / alpha``."""
        if isinstance(a, float) and isinstance(s, float):
            if not abs(a) < _TINY * s:
                return
        else:
            bad = (torch.abs(a) < _TINY * s).flatten()
            if not bool(bad.any()):
                return
            i = int(bad.nonzero()[0])
            t, a = float(torch.as_tensor(t).flatten()[i]), float(torch.as_tensor(a).flatten()[i])
        raise InterpolantError(
            f"{_ARTICLE[self.prediction]} {self.prediction}-predicting network cannot give "
            f"{target!r} at t = {t:g}, where alpha(t) = {a:.3g} (x0 = "
            f"{_THROUGH_ALPHA[self.prediction]} is undefined "
            "there); start sampling below the noise end (e.g. t_start=0.999) or train the "
            "network to predict 'v' or 'velocity'"
        )

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
