"""Feature caching across sampling steps: DeepCache and encoder propagation for the U-Net,
block caching for the DiT.

- **DeepCache** (Ma, Fang & Wang, CVPR 2024): adjacent steps have nearly equal high-level
  features. At a full call the U-Net runs whole and keeps ``h = features["decoder_in.{level}"]``
  (the main branch entering decoder level ``level``); at the next ``interval - 1`` calls only
  the shallow levels ``0..level`` run (:meth:`interpolant.models.UNet.forward_cached`) around
  the kept ``h``.
- **Block caching** (FORA, Selvaraju et al. 2024, for DiT): at a full call every chosen block
  keeps the outputs of its attention and MLP layers; at the next ``interval - 1`` calls those
  layers are skipped and their kept outputs reused, while the adaLN modulation (scale, shift,
  gate of the new ``t``) and the residual sums are recomputed:
  ``h = h + a1(t) Attn_kept;  h = h + a2(t) MLP_kept``.

- **Encoder propagation** (Faster Diffusion, Li et al. 2023): the encoder (input convolution,
  down levels and middle block) changes little between steps, the decoder much more. At a full
  call the U-Net runs whole and keeps the encoder's output and skip features; at the next
  ``interval - 1`` calls only the decoder runs, on the kept features and the new time (and
  label) embedding: ``eps = Dec(E_kept, emb(t))``.

Which calls are full is a :class:`CacheSchedule`: every ``interval``-th call of a run (or an
explicit list of call indices). A run starts, and the call count restarts, whenever the time
goes up or the batch changes shape, so one wrapper serves run after run. With ``interval=1``
every call is full and the wrapper is the network itself (tests: bitwise equal). The cache
is state: one wrapper per sampling thread. The user's network is not modified (the DiT
wrapper shares its parameters through shallow copies of the modules it reroutes).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ..errors import InterpolantError
from ._wrap import Wrapper


class CacheSchedule:
    """Which network calls of a run are full: ``k % interval == 0``, or ``k in full_calls``
    (``k = 0, 1, ...`` counts the calls of a run; call 0 is always full)."""

    def __init__(self, interval: int = 3, full_calls: Sequence[int] | None = None) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise InterpolantError(f"cache interval must be an integer >= 1, got {interval!r}")
        self.interval = interval
        self.full_calls = None if full_calls is None else {0, *map(int, full_calls)}
        self.reset()

    def reset(self) -> None:
        """Forget the current run (the next call is full)."""
        self._k, self._last_t, self._key, self.call = 0, None, None, 0

    def is_full(self, x: Tensor, t: Tensor) -> bool:
        """Whether this call (input ``x`` at times ``t``) must run the whole network."""
        t_now = float(t.max()) if isinstance(t, Tensor) else float(t)
        key = (tuple(x.shape), x.dtype, x.device)
        if key != self._key or self._last_t is None or t_now > self._last_t:
            self._k = 0
        k, self._k, self._last_t, self._key = self._k, self._k + 1, t_now, key
        self.call = k  # this call's index in its run
        if self.full_calls is not None:
            return k in self.full_calls
        return k % self.interval == 0


class DeepCacheUNet(Wrapper):
    """DeepCache around a U-Net with ``forward(..., return_features=True)`` and
    ``forward_cached`` (:class:`interpolant.models.UNet`); called as ``net(x, t, cond)``."""

    def __init__(self, unet: nn.Module, interval: int = 3, level: int = 0,
                 full_calls: Sequence[int] | None = None) -> None:
        super().__init__()
        levels = getattr(unet, "levels", 0)
        if not hasattr(unet, "forward_cached") or levels < 2:
            raise InterpolantError(
                f"DeepCache needs a U-Net of at least 2 levels with forward_cached "
                f"(interpolant.models.UNet); {type(unet).__name__} has none. For a transformer "
                "use block caching (cache='block')"
            )
        if not 0 <= level < levels - 1:
            raise InterpolantError(f"DeepCache level must be in 0..{levels - 2}, got {level}")
        self.net, self.level = unet, level
        self.schedule = CacheSchedule(interval, full_calls)
        self._kept: Tensor | None = None

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        if self.schedule.is_full(x, t) or self._kept is None:
            out, feats = self.net(x, t, cond, return_features=True)
            self._kept = feats[f"decoder_in.{self.level}"]
            return out
        return self.net.forward_cached(x, t, cond, cached=self._kept, level=self.level)


class EncoderPropagationUNet(Wrapper):
    """Faster Diffusion's encoder propagation around :class:`interpolant.models.UNet` (it runs
    the U-Net's own encoder, middle block and decoder pieces); called as ``net(x, t, cond)``."""

    def __init__(self, unet: nn.Module, interval: int = 2,
                 full_calls: Sequence[int] | None = None) -> None:
        super().__init__()
        if not all(hasattr(unet, a) for a in ("_encode", "_decode", "_embedding", "mid")):
            raise InterpolantError(
                f"encoder propagation needs interpolant.models.UNet (its encoder and decoder "
                f"pieces); {type(unet).__name__} has none. For a transformer use block caching "
                "(cache='block')"
            )
        self.net = unet
        self.schedule = CacheSchedule(interval, full_calls)
        self._kept: tuple[Tensor, list[list[Tensor]]] | None = None

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        net, out_dtype = self.net, x.dtype
        x, t, labels = net._inputs(x, t, cond)
        emb = net._embedding(t, labels)
        if self.schedule.is_full(x, t) or self._kept is None:
            h, skips = net._encode(x, emb, net.levels - 1, {})
            res1, res2 = net.mid.res
            self._kept = (res2(net.mid_attn(res1(h, emb)), emb), skips)
        h, skips = self._kept
        copies = [list(level) for level in skips]  # the decoder pops them
        return net._decode(h, emb, copies, net.levels - 1, {}).to(out_dtype)


class _Reuse(nn.Module):
    """A layer whose output is computed at full calls and reused at the others."""

    def __init__(self, inner: nn.Module, owner: BlockCacheDiT) -> None:
        super().__init__()
        self.inner = inner
        self._owner = [owner]  # a list: not registered as a submodule (no cycle)
        self._kept: Tensor | None = None

    def forward(self, *args: Any) -> Tensor:
        if self._owner[0].full or self._kept is None:
            self._kept = self.inner(*args)
        return self._kept


def _shallow(module: nn.Module, **replace: nn.Module) -> nn.Module:
    """A copy of ``module`` sharing its parameters and buffers, with children replaced."""
    clone = copy.copy(module)
    clone._modules = {**module._modules, **replace}
    return clone


class BlockCacheDiT(Wrapper):
    """FORA-style block caching around a DiT-like network: ``net.blocks`` whose items have
    ``attn`` and ``mlp`` layers (:class:`interpolant.models.DiT`). ``blocks``: the indices of
    the cached blocks (default all)."""

    def __init__(self, dit: nn.Module, interval: int = 2, blocks: Sequence[int] | None = None,
                 full_calls: Sequence[int] | None = None) -> None:
        super().__init__()
        items = getattr(dit, "blocks", None)
        if not isinstance(items, nn.ModuleList) or not all(
            hasattr(b, "attn") and hasattr(b, "mlp") for b in items
        ) or len(items) == 0:
            raise InterpolantError(
                f"block caching needs a transformer with .blocks, each with .attn and .mlp "
                f"(interpolant.models.DiT); {type(dit).__name__} has none. For a U-Net use "
                "cache='deepcache'"
            )
        chosen = set(range(len(items))) if blocks is None else {int(i) for i in blocks}
        if not chosen <= set(range(len(items))):
            raise InterpolantError(
                f"blocks must be within 0..{len(items) - 1}, got {sorted(chosen)}")
        self.schedule = CacheSchedule(interval, full_calls)
        self.full = True
        new_blocks = nn.ModuleList(
            _shallow(b, attn=_Reuse(b.attn, self), mlp=_Reuse(b.mlp, self)) if i in chosen else b
            for i, b in enumerate(items)
        )
        self.net = _shallow(dit, blocks=new_blocks)

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        self.full = self.schedule.is_full(x, t)
        return self.net(x, t, cond)
