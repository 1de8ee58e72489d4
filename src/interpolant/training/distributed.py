"""Multi-process data-parallel training with ``torch.distributed`` (launched by torchrun).

Run ``torchrun --nproc_per_node=N script.py`` where the script calls
:func:`interpolant.training.train`. The trainer calls :func:`setup`, which initialises the
process group from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) with NCCL on GPUs and gloo on CPU, unless the script has
already done so. The model is wrapped in ``DistributedDataParallel``, which averages gradients
over ranks during ``backward``.

Conventions of the trainer under DDP:

* ``batch_size`` is per rank; one step consumes ``world_size * batch_size`` samples.
* Sharding: each step draws one global batch (the same indices on every rank, from the seed and
  the step); rank ``r`` takes the ``r``-th slice. Times, noise and label-dropout masks are also
  drawn for the global batch from one generator with the same seed on every rank and sliced.
  So N ranks with batch ``b`` compute the same gradient as 1 process with batch ``N b``
  (up to the order of floating-point sums), and a run can resume on another world size.
* Couplings (immiscible, OT) act on each rank's slice: they are per rank.
* Rank 0 alone writes checkpoints and metrics and shows the progress bar; the loss it logs is
  averaged over ranks.
* ``fsdp=True`` shards parameters, gradients and optimizer state instead (:mod:`.fsdp`).

Sampling and evaluation share their batches among the ranks too (:mod:`interpolant.app.draw`,
with :func:`all_gather_objects`).

Several machines: start torchrun on each with the same rendezvous, e.g. on every node
``torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500
--rdzv-id RUN -m interpolant train ...``.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["setup", "rank_world", "is_main", "wrap", "all_mean", "all_gather_objects",
           "barrier", "device_for_rank", "available_cpus", "default_threads"]


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def default_threads() -> int:
    """CPU threads for one process: the available CPUs shared among the processes torchrun
    started on this machine (``LOCAL_WORLD_SIZE``), at least one, so ranks do not compete."""
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, available_cpus() // local)


def setup() -> bool:
    """Initialise the process group from torchrun's environment if needed; True under DDP."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    atexit.register(_close)  # a command that set the group up leaves no group behind
    return True


def _close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes files and prints: rank 0, or the only process."""
    return rank_world()[0] == 0


def device_for_rank(model: nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a parameterless model)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def wrap(model: nn.Module, fsdp: bool = False, shadows: Iterable[nn.Module] = ()) -> nn.Module:
    """``DistributedDataParallel(model)`` under a process group of size > 1, else ``model``.

    ``fsdp``: shard ``model`` in place instead (:mod:`.fsdp`), and ``shadows`` (copies of its
    structure, such as the EMA's average) alike; returns ``model``.
    """
    _, world = rank_world()
    if world == 1:
        return model
    if fsdp:
        from .fsdp import shard

        return shard(model, shadows)
    device = device_for_rank(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over ranks (itself without a process group)."""
    _, world = rank_world()
    if world == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world


def all_gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value`` in rank order, on every rank (``[value]`` without a process
    group). Tensors in it should be on the CPU."""
    _, world = rank_world()
    if world == 1:
        return [value]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, value)
    return out


def barrier() -> None:
    """Wait for all ranks (no-op without a process group)."""
    if rank_world()[1] > 1:
        dist.barrier()
