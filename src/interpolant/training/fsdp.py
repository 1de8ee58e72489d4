"""Fully sharded data parallel training (PyTorch's FSDP2, ``fully_shard``) under torchrun.

``TrainConfig(fsdp=True)`` (``interpolant train --fsdp``) shards, instead of replicating as
DDP does, the network's parameters, their gradients and the AdamW state over the ``N`` ranks
(ZeRO stage 3; Rajbhandari et al. 2020, Zhao et al. 2023): each rank keeps ``1/N`` of each
tensor between steps; a unit's full parameters are all-gathered just before its forward (and
again for its backward) and freed after; gradients are reduce-scattered, averaged over ranks,
so a step computes what DDP (and one process with ``N`` times the batch) computes, up to the
order of floating-point sums.

Units: every element of the network's ``ModuleList`` and ``Sequential`` containers (the
blocks of the U-Net, DiT, MLP), then the network itself for what remains (embeddings, heads).
Copies of the same structure that only average the weights (the EMA) are sharded alike, so
the average is taken shard by shard and never held whole.

Checkpoints stay those of one process: the full tensors are gathered on every rank
(:func:`gathered`, a collective) and rank 0 writes them, so ``sample`` and ``eval`` read an
FSDP run like any other, and :func:`load_full` shards a full checkpoint again to resume (with
FSDP or without, on any number of ranks). PyTorch runs FSDP2 on the CPU with the gloo backend,
which the tests use; on GPUs it uses NCCL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["shard", "is_sharded", "gathered", "load_full", "scalar"]


def _dtensor() -> type:
    from torch.distributed.tensor import DTensor

    return DTensor


def shard(model: nn.Module, shadows: Iterable[nn.Module] = ()) -> nn.Module:
    """``fully_shard`` the blocks of ``model`` (elements of its module lists and sequences,
    innermost first), then ``model``; the same for each of ``shadows``. In place; returns
    ``model``."""
    from torch.distributed.fsdp import fully_shard

    for net in (model, *shadows):
        for module in reversed(list(net.modules())):  # children before their parents
            if isinstance(module, (nn.ModuleList, nn.Sequential)) and module is not net:
                for block in module:
                    if any(True for _ in block.parameters()):
                        fully_shard(block)
        fully_shard(net)
    return model


def is_sharded(obj: nn.Module | torch.optim.Optimizer) -> bool:
    """Whether a module's (or an optimizer's) parameters are sharded DTensors."""
    params = obj.parameters() if isinstance(obj, nn.Module) else (
        p for group in obj.param_groups for p in group["params"])
    return any(isinstance(p, _dtensor()) for p in params)


def _full(value: Any) -> Any:
    if isinstance(value, _dtensor()):
        return value.full_tensor()
    if isinstance(value, dict):
        return {k: _full(v) for k, v in value.items()}
    return value


class _FullState:
    """A stand-in whose ``state_dict()`` is a state gathered beforehand."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state


def gathered(obj: Any) -> Any:
    """``obj`` (a module or an optimizer; ``None`` passes through) as checkpoints want it:
    itself when not sharded, else a stand-in whose ``state_dict()`` holds the full tensors.
    A collective under FSDP: every rank calls it."""
    if obj is None or not is_sharded(obj):
        return obj
    return _FullState(_full(obj.state_dict()))


def _like(value: Any, reference: Any) -> Any:
    """A full tensor sharded like ``reference`` (a DTensor of the same shape), else itself."""
    if isinstance(reference, _dtensor()) and isinstance(value, Tensor) and not isinstance(
            value, _dtensor()) and value.shape == reference.shape:
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(value.to(reference.dtype), reference.device_mesh,
                                 reference.placements)
    return value


def load_full(target: Any, state: dict[str, Any]) -> None:
    """``target.load_state_dict(state)`` for a full (one-process) ``state``, sharded first
    like ``target``'s own tensors when ``target`` is sharded. A collective under FSDP."""
    if not is_sharded(target):
        target.load_state_dict(state)
        return
    # every rank scatters the same tensor at the same time: keys in sorted order (a loaded
    # file's dict order may differ between processes)
    if isinstance(target, torch.optim.Optimizer):
        params = [p for group in target.param_groups for p in group["params"]]
        per_param = {i: {k: _like(state["state"][i][k], params[int(i)])
                         for k in sorted(state["state"][i])}
                     for i in sorted(state["state"], key=int)}
        target.load_state_dict({**state, "state": per_param})
        return
    own = target.state_dict()
    target.load_state_dict({k: _like(state[k], own.get(k)) for k in sorted(state)})


def scalar(value: Tensor) -> Tensor:
    """A replicated DTensor (a gradient norm under FSDP) as a plain tensor; else itself."""
    return value.full_tensor() if isinstance(value, _dtensor()) else value
