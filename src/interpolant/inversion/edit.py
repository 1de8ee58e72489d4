"""One front door for editing real data to another class: invert with the source label (or
none), regenerate with the target label, by any method of this package.

``edit(den, x0, to_label, method=...)`` with ``method``:

=================  ==========================================================================
``"ode"``          ``ip.invert`` then ``ip.sample`` with a deterministic ``solver`` (DDIM)
``"bdia"``         :func:`.bdia_invert` / :func:`.bdia_sample` (exact latent)
``"edict"``        :func:`.edict_invert` / :func:`.edict_sample` (exact latent)
``"edit-friendly"`` :func:`.noise_maps` / :func:`.ddpm_decode` (exact DDPM latent)
``"dpm-encoder"``  the same with the DPM-Encoder's states
``"null-text"``    :func:`.null_text_invert` / :func:`.null_text_sample` (guided, ``scale``)
``"sdedit"``       :func:`.sdedit` with strength ``t0`` (no inversion; pass ``solver="ddpm"``
                   for the paper's reverse SDE)
=================  ==========================================================================

Every method reconstructs ``x0`` when ``to_label == from_label`` (exactly for the exact latents,
within the solver's error for ``"ode"``, to the optimisation's residual for ``"null-text"``;
SDEdit does not reconstruct).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import unknown_name
from ..solvers.sampling import sample
from .bdia import bdia_invert, bdia_sample
from .common import labels_for
from .edict import edict_invert, edict_sample
from .noise_maps import ddpm_decode, noise_maps
from .null_text import null_text_invert, null_text_sample
from .ode import check_data, invert
from .sdedit import sdedit

METHODS = ("ode", "bdia", "edict", "edit-friendly", "dpm-encoder", "null-text", "sdedit")

__all__ = ["METHODS", "edit"]


def edit(
    denoiser: Any,
    x0: Tensor,
    to_label: Any,
    method: str = "ode",
    from_label: Any = None,
    steps: int | None = None,
    grid: Any = None,
    solver: str = "ddim",
    t0: float = 0.5,
    generator: torch.Generator | None = None,
    **options: Any,
) -> Tensor:
    """``x0`` regenerated with the condition ``to_label`` by ``method`` (module docstring);
    ``from_label`` is ``x0``'s own class (``None``: invert unconditionally). ``solver`` serves
    ``"ode"`` and ``"sdedit"``; ``options`` go to the method (``gamma``, ``p``, ``eta``, a
    solver's own options)."""
    if method not in METHODS:
        raise unknown_name("edit method", method, METHODS)
    check_data(x0)
    src = labels_for(denoiser, from_label, x0.shape[0])
    dst = labels_for(denoiser, to_label, x0.shape[0])
    common = {"steps": steps, "grid": grid}
    if method == "ode":
        z = invert(denoiser, x0, solver=solver, cond=src, **common, **options)
        return sample(denoiser, z, solver=solver, cond=dst, **common, **options)
    if method == "bdia":
        return bdia_sample(denoiser, bdia_invert(denoiser, x0, cond=src, **common, **options),
                           cond=dst, **common, **options)
    if method == "edict":
        latent = edict_invert(denoiser, x0, cond=src, **common, **options)
        return edict_sample(denoiser, latent, cond=dst, **common, **options)[0]
    if method == "null-text":
        latent = null_text_invert(denoiser, x0, src, **common, **options)
        keep = {k: options[k] for k in ("scale", "embedding") if k in options}
        return null_text_sample(denoiser, latent, dst, **common, **keep)
    if method == "sdedit":
        return sdedit(denoiser, x0, t0, solver, cond=dst, generator=generator, **common,
                      **options)
    latent = noise_maps(denoiser, x0, method, cond=src, generator=generator, **common, **options)
    return ddpm_decode(denoiser, latent, cond=dst, **common, **options)
