"""What every reference network shares: input checks, dtype handling, a rebuildable config.

Dtypes. Inputs are cast to the parameters' dtype, and the output is cast back to ``x.dtype``:
a float32 net accepts float64 states from a float64 solver (and returns float64); call
``.double()`` on the net to compute in float64 throughout.

Config. ``model.config`` holds the constructor arguments as JSON values (tuples become
lists), so ``interpolant.models.build(model.arch, **model.config)`` rebuilds the same
architecture for a checkpoint.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from ..errors import InterpolantError
from .embeddings import check_time, labels_from_cond

__all__ = ["ReferenceNet", "group_norm", "zero_init"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


class ReferenceNet(nn.Module):
    """Base class: subclasses set ``arch``, call :meth:`_store_config` and use :meth:`_inputs`."""

    arch: ClassVar[str] = ""
    num_classes: int | None

    def _store_config(self, **kwargs: Any) -> None:
        self.config: dict[str, Any] = {k: _jsonable(v) for k, v in kwargs.items()}

    def _check_x(self, x: Any) -> None:
        raise NotImplementedError

    def _inputs(self, x: Any, t: Any, cond: Any) -> tuple[Tensor, Tensor, Tensor | None]:
        """Validated ``(x, t, labels)`` in the parameters' dtype and device; labels or ``None``."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise InterpolantError(f"x must be a floating tensor, got {type(x).__name__}")
        self._check_x(x)
        t = check_time(t, x.shape[0])
        labels = labels_from_cond(cond, x.shape[0], self.num_classes)
        param = next(self.parameters())
        x = x.to(param.dtype)
        t = t.to(param.dtype)
        if labels is not None:
            labels = labels.to(param.device)
        return x, t, labels

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.items())


def zero_init(module: nn.Module) -> nn.Module:
    """Set a layer's weights and bias to zero (used for output and gating layers)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def group_norm(channels: int, groups: int = 8) -> nn.GroupNorm:
    """GroupNorm with the largest group count ``<= groups`` dividing ``channels`` (per sample)."""
    g = max(d for d in range(1, min(groups, channels) + 1) if channels % d == 0)
    return nn.GroupNorm(g, channels)

