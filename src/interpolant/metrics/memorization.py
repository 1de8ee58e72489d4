"""Memorisation check: how close samples come to the training set.

A model that copies its training data puts samples at (near) zero distance from training
points; a model that generalises puts them about as far from the training set as fresh real
data is. So the statistic is reported next to the same statistic for held-out real data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InterpolantError
from ._checks import as_samples, pairwise_distances

__all__ = ["nearest_neighbour_distance"]


def _flat(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim < 2:
        raise InterpolantError(f"{name} must be a tensor of shape (N, ...) with a batch axis")
    return as_samples(x.reshape(x.shape[0], -1), name)


def _nn_dist(x: Tensor, train: Tensor, chunk: int = 1024) -> Tensor:
    return torch.cat([pairwise_distances(x[i:i + chunk], train).min(1).values
                      for i in range(0, x.shape[0], chunk)])


def nearest_neighbour_distance(
    samples: Tensor, train: Tensor, reference: Tensor | None = None
) -> dict[str, float]:
    """Euclidean distance from each sample to its nearest training point (flattened).

    Returns ``mean``, ``median`` and ``min`` of those distances and ``frac_copies``, the
    fraction of samples closer to a training point than ``1e-6``. With ``reference``
    (held-out real data of the same kind) it adds ``reference_mean``, ``reference_median``,
    ``reference_min`` and ``ratio = mean / reference_mean``: near 1 for a model that
    generalises, well below 1 for one that memorises.
    """
    s, tr = _flat(samples, "samples"), _flat(train, "train")
    if s.shape[1] != tr.shape[1]:
        raise InterpolantError(
            f"samples have {s.shape[1]} values each but train has {tr.shape[1]}; pass sets of "
            "the same shape"
        )
    d = _nn_dist(s, tr)
    out = {"mean": float(d.mean()), "median": float(d.median()), "min": float(d.min()),
           "frac_copies": float((d < 1e-6).double().mean())}
    if reference is not None:
        ref = _flat(reference, "reference")
        if ref.shape[1] != tr.shape[1]:
            raise InterpolantError("reference must have the same shape per item as train")
        dr = _nn_dist(ref, tr)
        out.update(reference_mean=float(dr.mean()), reference_median=float(dr.median()),
                   reference_min=float(dr.min()))
        out["ratio"] = out["mean"] / out["reference_mean"] if out["reference_mean"] > 0 \
            else float("inf")
    return out
