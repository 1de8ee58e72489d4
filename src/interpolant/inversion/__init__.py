"""Inversion and editing: from data back to noise, and edits of real samples.

- :func:`invert` / :func:`trajectory`: any deterministic solver on an increasing grid (DDIM
  inversion and its higher-order versions).
- :func:`bdia_invert` / :func:`bdia_sample` (Zhang et al. 2024) and :func:`edict_invert` /
  :func:`edict_sample` (Wallace et al. 2023): exact inversions, latents of two states.
"""

from .bdia import bdia_invert, bdia_sample
from .edict import edict_invert, edict_sample
from .ode import check_data, invert, inversion_grid, trajectory

__all__ = ["bdia_invert", "bdia_sample", "check_data", "edict_invert", "edict_sample", "invert",
           "inversion_grid", "trajectory"]
