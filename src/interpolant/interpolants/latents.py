"""Exact references for discrete latent conditions (DisCo-Diff, Xu et al. 2024; quantized
adaptive conditions, Liang et al. 2024) on a Gaussian mixture: the ideal latent is the component,
its denoiser the component's Gaussian denoiser, and the flows it conditions are straighter."""

from __future__ import annotations

import torch

from ..oracle import GaussianMixture
from ..paths.interpolant import Interpolant
from ..processes.curvature import curvature
from .oracle import CoupledMixture

__all__ = ["ideal_latent_mixture", "latent_curvature"]


def ideal_latent_mixture(gmm: GaussianMixture) -> GaussianMixture:
    """The mixture with one class per component: its ``denoiser(path)(x, t, cond=z)`` is the
    ideal DisCo-Diff denoiser ``E[x_0 | x_t, z]`` of the encoder ``z(x_0)`` = the component."""
    return GaussianMixture(gmm.means, gmm.covs, gmm.weights,
                           labels=torch.arange(gmm.n_components))


def latent_curvature(gmm: GaussianMixture, path: Interpolant, n: int = 2048, nodes: int = 16,
                     seed: int = 0) -> tuple[float, float]:
    """``(S, S_z)``: the exact curvature (Lee et al. 2023, eq. 6) of the independent flow from
    ``N(0, I)`` to ``gmm``, and of DisCo-Diff's flows given the ideal latent,
    ``S_z = sum_k w_k S(component k)``; ``S - S_z = E int |u(x_t | z) - u(x_t)|^2 dt``."""
    d = gmm.dim
    zero, eye = torch.zeros(d, d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)

    def s_of(p0: GaussianMixture, k: int) -> float:
        flow = CoupledMixture(p0, zero, eye, path)
        return curvature(flow.velocity, flow.sample, path, n=n, nodes=nodes, seed=seed + k)

    parts = [s_of(GaussianMixture(gmm.means[k:k + 1], gmm.covs[k:k + 1]), k + 1)
             for k in range(gmm.n_components)]
    return s_of(gmm, 0), float(sum(w * s for w, s in zip(gmm.weights.tolist(), parts)))
