"""Visual anagrams: one sample that reads as a different class under each view.

Geng et al. (2024), "Visual Anagrams: Generating Multi-View Optical Illusions with Diffusion
Models": views ``v_i`` that permute pixels (flips, rotations, any permutation; they keep
Gaussian noise Gaussian, which is why only those are allowed), one condition ``c_i`` each:

    eps(x, t) = (1/N) sum_i v_i^{-1}( eps(v_i(x), t, c_i) ).

Every target is ``p x + q out`` with scalar ``(p, q)`` and ``v^{-1} v = id``, so the average is
the same in every target. The views go through the network in one call (one pass per view).
Wrap a guided denoiser (``Anagram(CFG(den, 3.0), ...)``) for guided anagrams.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from .base import Guided, labels_of, repeated

__all__ = ["Anagram", "VIEWS", "view_permutation"]

VIEWS = {
    "identity": lambda a: a,
    "flip": lambda a: a.flip(-1),          # left-right
    "flip-ud": lambda a: a.flip(-2),
    "rot90": lambda a: a.rot90(1, (-2, -1)),
    "rot180": lambda a: a.rot90(2, (-2, -1)),
    "rot270": lambda a: a.rot90(3, (-2, -1)),
    "transpose": lambda a: a.transpose(-2, -1),
}


def view_permutation(view: str | Tensor, shape: Sequence[int]) -> Tensor:
    """``perm`` with ``v(x).flatten() = x.flatten()[perm]`` for one sample of ``shape``:
    a named view of :data:`VIEWS` (on the last two dimensions) or an explicit permutation."""
    numel = int(torch.tensor(shape).prod())
    if isinstance(view, str):
        if view not in VIEWS:
            raise unknown_name("view", view, VIEWS)
        grid = torch.arange(numel).view(*shape)
        if view != "identity" and len(shape) < 2:
            raise InterpolantError(f"view {view!r} needs samples with two spatial dimensions")
        perm = VIEWS[view](grid)
        if perm.shape != tuple(shape):
            raise InterpolantError(f"view {view!r} changes the shape {tuple(shape)}; use a "
                                   "square canvas")
        return perm.flatten()
    perm = torch.as_tensor(view)
    if (perm.shape != (numel,) or perm.is_floating_point()
            or not torch.equal(perm.sort().values, torch.arange(numel))):
        raise InterpolantError(
            f"a view must be a permutation of the {numel} pixels of one sample (a reordering "
            "of 0..n-1); other transforms would make the noise non-Gaussian"
        )
    return perm.long()


class Anagram(Guided):
    """``(1/N) sum_i v_i^{-1} D(v_i x, c_i)`` (Geng et al. 2024) as a denoiser.

    ``cond`` at sampling time holds one label per view: int64 of shape ``(B, N)``.
    """

    method = "an anagram"

    def __init__(self, den: Any, views: Sequence[str | Tensor]) -> None:
        super().__init__(den=den)
        if len(views) < 1:
            raise InterpolantError("give at least one view")
        self.den, self.views = den, list(views)

    def _guide(self, x: Tensor, t: Tensor | float, cond: Any, target: str) -> Tensor:
        n, b = len(self.views), x.shape[0]
        if not isinstance(cond, Tensor) or cond.shape != (b, n):
            got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
            raise InterpolantError(f"{self.method} needs one label per view: cond of shape "
                                   f"({b}, {n}), got {got}")
        perms = [view_permutation(v, x.shape[1:]).to(x.device) for v in self.views]
        flat = x.flatten(1)
        seen = torch.cat([flat[:, p].view_as(x) for p in perms])
        labels = labels_of(cond.T.reshape(-1), n * b, self.method)
        out = self._eval(self.den, seen, repeated(t, n), labels, target, passes=n).flatten(1)
        back = [out[k * b:(k + 1) * b][:, torch.argsort(p)] for k, p in enumerate(perms)]
        return torch.stack(back).mean(0).view_as(x)
