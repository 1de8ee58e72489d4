"""What every acceleration shares: the network inside a denoiser, a denoiser around a new
network, and the per-call error of an approximation against the plain denoiser."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..predictions import Denoiser
from ..solvers import sample


class Wrapper(nn.Module):
    """A module around a network ``self.net`` whose unknown attributes are the network's (a
    run's ``config`` with its ``num_classes``, a U-Net's ``levels`` and ``forward_cached``), so
    that an accelerated network answers what the plain one did."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__["_modules"].get("net")
            if inner is None:
                raise
            return getattr(inner, name)


def network_of(denoiser: Any) -> Any:
    """The network an :class:`interpolant.Denoiser` calls (refusing anything else)."""
    if not isinstance(denoiser, Denoiser):
        raise InterpolantError(
            "acceleration transforms the network of an interpolant.Denoiser; got "
            f"{type(denoiser).__name__}. Accelerate the Denoiser first, then wrap it in guidance"
        )
    return denoiser.model


def rewrap(denoiser: Denoiser, network: Any) -> Denoiser:
    """A new :class:`Denoiser` with ``network`` in place of ``denoiser``'s, on the same path,
    prediction target and time scaling."""
    return Denoiser(network, denoiser.path, denoiser.prediction,
                    time_scale=denoiser.time_scale, time_shift=denoiser.time_shift)


def step_errors(plain: Any, approx: Any, x_start: Tensor, **sample_kwargs: Any) -> list[float]:
    """Sample with ``approx`` and report, at every network call, the relative error of its
    prediction against ``plain`` on the same input: ``|D_approx - D| / |D|`` (``D`` in the
    target the solver asks for; the data prediction for ``dpm++2m``).

    The trajectory is the approximate one (errors accumulate as they would in use); the plain
    denoiser is evaluated beside it at each state. ``sample_kwargs`` go to
    :func:`interpolant.sample` (solver, steps, grid, cond, ...)."""
    errors: list[float] = []

    def both(x: Tensor, t: Any, cond: Any = None, target: str = "x0") -> Tensor:
        a = approx(x, t, cond, target)
        p = plain(x, t, cond, target).double()
        errors.append(float((a.double() - p).norm() / p.norm().clamp_min(1e-30)))
        return a

    both.path = approx.path  # type: ignore[attr-defined]
    with torch.no_grad():
        sample(both, x_start, **sample_kwargs)
    return errors
