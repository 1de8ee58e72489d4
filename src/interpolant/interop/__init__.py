"""Other libraries' models as Denoisers (and the user's data files: :mod:`interpolant.data`).

>>> import interpolant as ip
>>> den = ip.interop.from_diffusers(unet, scheduler)       # doctest: +SKIP
>>> den = ip.interop.load_diffusers("saved_pipeline/")      # doctest: +SKIP
>>> grid = ip.interop.diffusers_grid(scheduler, steps=20)   # doctest: +SKIP
>>> x0 = ip.sample(den, noise, solver="dpm++2m", grid=grid) # doctest: +SKIP

diffusers itself is needed only for a model or a scheduler built from a config; it is
imported on first use.
"""

from .diffusers_models import (
    PREDICTIONS,
    DiffusersNet,
    diffusers_grid,
    from_diffusers,
    is_flow_matching,
    load_diffusers,
    scheduler_path,
    shift_time,
)

__all__ = [
    "PREDICTIONS",
    "DiffusersNet",
    "diffusers_grid",
    "from_diffusers",
    "is_flow_matching",
    "load_diffusers",
    "scheduler_path",
    "shift_time",
]
