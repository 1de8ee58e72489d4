"""Inversion and editing: from data back to noise, and edits of real samples.

- :func:`invert` / :func:`trajectory`: any deterministic solver on an increasing grid (DDIM
  inversion and its higher-order versions).
- :func:`bdia_invert` / :func:`bdia_sample` (Zhang et al. 2024) and :func:`edict_invert` /
  :func:`edict_sample` (Wallace et al. 2023): exact inversions, latents of two states.
- :func:`noise_maps` / :func:`ddpm_decode`: DDPM latents, edit-friendly (Huberman-Spiegelglas
  et al. 2024) or DPM-Encoder (Wu & De la Torre 2023).
- :func:`sdedit` (Meng et al. 2022); :func:`cycle` (CycleDiffusion, Wu & De la Torre 2023).
- :func:`null_text_invert` / :func:`null_text_sample` (Mokady et al. 2023): per-step null-label
  embeddings that make guided DDIM reconstruct.
- :func:`interpolate` between two real samples: :func:`slerp` of their latents, or
  :func:`noise_diffusion`'s correction (Zheng et al. 2024).
- :func:`fit_boundary` / :func:`boundary_edit`: BoundaryDiffusion (Zhu et al. 2023), one move
  across a linear boundary in the latent space at the mixing time (:func:`mixing_time`).
- :func:`hspace_sample` (Asyrp, Kwon et al. 2023): DDIM with the U-Net bottleneck shifted
  by a direction such as :func:`class_direction` (Haas et al. 2024).
- :func:`edit`: one front door, ``edit(den, x0, to_label, method=...)``.
"""

from .bdia import bdia_invert, bdia_sample
from .boundary import Boundary, boundary_edit, fit_boundary, mixing_time
from .common import labels_for
from .cycle import cycle
from .edict import edict_invert, edict_sample
from .edit import METHODS, edit
from .hspace import class_direction, hspace_sample
from .interpolate import interpolate, noise_diffusion, slerp
from .noise_maps import NoiseMap, ddpm_decode, noise_maps
from .null_text import NullTextLatent, null_text_invert, null_text_sample
from .ode import check_data, invert, inversion_grid, trajectory
from .sdedit import sdedit

__all__ = [
    "METHODS", "Boundary", "NoiseMap", "NullTextLatent", "bdia_invert", "bdia_sample",
    "boundary_edit", "check_data", "cycle", "ddpm_decode", "edict_invert", "edict_sample", "edit",
    "fit_boundary", "interpolate", "invert",
    "inversion_grid", "labels_for", "noise_diffusion", "noise_maps", "null_text_invert", "null_text_sample",
    "sdedit", "slerp", "trajectory", "class_direction", "hspace_sample",
    "mixing_time",
]
