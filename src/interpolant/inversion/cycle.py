"""CycleDiffusion: translate data between two models through a shared latent.

Wu & De la Torre, "A Latent Space of Stochastic Diffusion Models for Zero-Shot Image Editing
and Guidance" (ICCV 2023). Encode ``x`` with the source model into a latent ``z`` and decode
``z`` with the target model::

    deterministic (DDIM, any ODE solver):  x' = Sample_B(Invert_A(x))
    stochastic (DPM-Encoder, DDPM):         x' = Decode_B(Encode_A(x)),  the latent of
                                            :func:`.noise_maps` with ``kind="dpm-encoder"``

With exact models the deterministic map is the composition of the two exact probability flows,
``Phi^B_{1 -> t_min} o Phi^A_{t_min -> 1}``, reached at the solver's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..solvers.sampling import sample
from .noise_maps import ddpm_decode, noise_maps
from .ode import invert

__all__ = ["cycle"]


def cycle(source: Any, target: Any, x: Tensor, solver: str = "ddim", steps: int | None = None,
          grid: Any = None, cond_source: Any = None, cond_target: Any = None,
          generator: torch.Generator | Sequence[torch.Generator] | None = None,
          **options: Any) -> Tensor:
    """``x`` (data of the ``source`` denoiser) translated to the ``target`` denoiser through a
    shared latent: ``solver="dpm-encoder"`` for the stochastic DDPM latent (``options`` such as
    ``eta`` go to it), else a deterministic solver name for the ODE latent."""
    if solver == "dpm-encoder":
        latent = noise_maps(source, x, "dpm-encoder", steps, grid, cond_source,
                            generator=generator, **options)
        return ddpm_decode(target, latent, steps, grid, cond_target, **options)
    z = invert(source, x, solver=solver, steps=steps, grid=grid, cond=cond_source, **options)
    return sample(target, z, solver=solver, steps=steps, grid=grid, cond=cond_target, **options)
