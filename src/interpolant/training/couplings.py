"""Couplings of data and noise within a batch: which noise sample is paired with which datum.

A coupling is a callable ``coupling(x0, noise) -> noise[perm]``: it only *reorders* the batch's
noise, so the multiset of noise vectors, and hence the noise marginal N(0, I), is unchanged
(the data are exchangeable, so the noise a random datum receives is still standard normal).

* ``independent``: keep the order (i.i.d. pairs).
* ``immiscible``: Li et al. 2024, "Immiscible diffusion": the permutation minimising the total
  Euclidean distance ``sum_i ||x0_i - noise_perm(i)||`` (Hungarian algorithm,
  ``scipy.optimize.linear_sum_assignment``). :class:`Immiscible` takes ``chunk`` (solve
  independent assignments within consecutive chunks of that size: cost O(B chunk^2) instead of
  O(B^3), exact within each chunk) and ``half`` (distances from fp16 copies, as the paper's code
  does, halving memory traffic; ties broken arbitrarily, the assignment is near-optimal).
* ``ot``: minibatch optimal transport for flow matching (Tong et al. 2023; Pooladian et al.
  2023): the permutation minimising ``sum_i ||x0_i - noise_perm(i)||^2``. With equal uniform
  weights an optimal plan of the discrete OT problem is a permutation (Birkhoff), so the exact
  assignment is an exact OT plan sampled *without* replacement: every datum and every noise
  sample is used once.

Under DistributedDataParallel each rank couples its own batch (couplings are per rank); the
effective minibatch of the OT/immiscible assignment is the per-rank batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ..errors import InterpolantError, unknown_name

Coupling = Callable[[Tensor, Tensor], Tensor]

__all__ = ["Coupling", "independent", "Immiscible", "OT", "assignment", "available", "get"]


def assignment(cost: Tensor) -> Tensor:
    """The permutation ``perm`` minimising ``sum_i cost[i, perm[i]]`` (square ``cost``)."""
    rows, cols = linear_sum_assignment(cost.detach().to("cpu", torch.float64).numpy())
    perm = torch.empty(cost.shape[0], dtype=torch.long)
    perm[torch.from_numpy(rows)] = torch.from_numpy(cols)
    return perm


def _check(x0: Tensor, noise: Tensor) -> None:
    if x0.shape != noise.shape:
        raise InterpolantError(f"noise has shape {tuple(noise.shape)} but data has shape "
                               f"{tuple(x0.shape)}")


def independent(x0: Tensor, noise: Tensor) -> Tensor:
    """Keep i.i.d. pairs."""
    _check(x0, noise)
    return noise


def _distances(x0: Tensor, noise: Tensor, squared: bool, half: bool) -> Tensor:
    a, b = x0.detach().flatten(1), noise.detach().flatten(1)
    if half:
        a, b = a.half(), b.half()
        d = (a[:, None, :] - b[None, :, :]).float().pow(2).sum(-1)  # fp16 differences
    else:
        a, b = a.double(), b.double()
        d = torch.cdist(a, b).pow(2)
    return d if squared else d.clamp(min=0).sqrt()


@dataclass(frozen=True)
class Immiscible:
    """Noise assigned to data by minimum total distance (Li et al. 2024)."""

    chunk: int | None = None
    half: bool = False
    squared: bool = False

    def __post_init__(self) -> None:
        if self.chunk is not None and self.chunk < 1:
            raise InterpolantError(f"chunk must be a positive int, got {self.chunk}")

    def permutation(self, x0: Tensor, noise: Tensor) -> Tensor:
        """The index ``perm`` such that datum ``i`` is paired with ``noise[perm[i]]``."""
        _check(x0, noise)
        n = x0.shape[0]
        size = n if self.chunk is None else self.chunk
        perm = torch.empty(n, dtype=torch.long)
        for lo in range(0, n, size):
            hi = min(lo + size, n)
            d = _distances(x0[lo:hi], noise[lo:hi], self.squared, self.half)
            perm[lo:hi] = assignment(d) + lo
        return perm

    def __call__(self, x0: Tensor, noise: Tensor) -> Tensor:
        return noise[self.permutation(x0, noise).to(noise.device)]


def OT(chunk: int | None = None) -> Immiscible:  # noqa: N802 - reads like the method's name
    """Minibatch OT: the exact assignment under the squared Euclidean cost."""
    return Immiscible(chunk=chunk, half=False, squared=True)


_COUPLINGS: dict[str, Callable[[], Coupling]] = {
    "independent": lambda: independent,
    "immiscible": Immiscible,
    "immiscible-fast": lambda: Immiscible(chunk=64, half=True),
    "ot": OT,
}


def available() -> list[str]:
    """Names accepted by :func:`get`."""
    return sorted(_COUPLINGS)


def get(coupling: str | Coupling) -> Coupling:
    """A coupling by name, or a callable ``(x0, noise) -> reordered noise`` as is."""
    if isinstance(coupling, str):
        if coupling not in _COUPLINGS:
            raise unknown_name("coupling", coupling, available())
        return _COUPLINGS[coupling]()
    if callable(coupling):
        return coupling
    raise InterpolantError(f"coupling must be a name or a callable, got {type(coupling).__name__}")
