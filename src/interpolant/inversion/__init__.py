"""Inversion and editing: from data back to noise, and edits of real samples.

- :func:`invert` / :func:`trajectory`: any deterministic solver on an increasing grid (DDIM
  inversion and its higher-order versions).
"""

from .ode import check_data, invert, inversion_grid, trajectory

__all__ = ["check_data", "invert", "inversion_grid", "trajectory"]
