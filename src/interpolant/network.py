"""How the library calls a user's network: ``model(x, t, cond)``, or ``model(x, t)``.

``t`` has shape ``(B,)`` and the dtype of ``x`` (DESIGN.md, section 1). A network written
without a condition (``forward(x, t)``, as in many flow-matching examples) is called without
one, and refused one with a message saying how to add it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from .errors import InterpolantError

ModelLike = nn.Module | Callable[..., Tensor]

__all__ = ["ModelLike", "takes_cond", "call_network"]


def takes_cond(model: ModelLike) -> bool:
    """Whether ``model`` is called as ``model(x, t, cond)`` (else ``model(x, t)``).

    A network whose ``forward`` (or a callable whose signature) has exactly two positional
    parameters and no ``*args`` takes no condition; one with fewer cannot take ``(x, t)`` and
    is refused. A signature that cannot be read counts as ``(x, t, cond)``.
    """
    fn = model.forward if isinstance(model, nn.Module) else model
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2:
        raise InterpolantError(
            f"a network is called as model(x, t, cond) or model(x, t), with t of shape (B,); "
            f"{type(model).__name__} takes {inspect.signature(fn)}"
        )
    return len(positional) >= 3


def call_network(model: ModelLike, with_cond: bool, x: Tensor, t: Tensor, cond: Any) -> Any:
    """``model(x, t, cond)``, or ``model(x, t)`` for a network that takes no condition (see
    :func:`takes_cond`), which is then refused a condition that is not None."""
    if with_cond:
        return model(x, t, cond)
    if cond is not None:
        raise InterpolantError(
            f"a condition was given but the network ({type(model).__name__}) takes only "
            "(x, t); give its forward a third parameter, forward(x, t, cond), to use one"
        )
    return model(x, t)
