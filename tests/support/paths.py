"""Every path of the public API, built fresh on each call."""

from __future__ import annotations

import interpolant as ip


def all_paths() -> list:
    return [
        ip.paths.VPLinear(),
        ip.paths.VPCosine(),
        ip.paths.VPDiscrete.from_betas("linear", 1000),
        ip.paths.VPDiscrete.from_betas("scaled_linear", 1000, 0.00085, 0.012),
        ip.paths.VE(),
        ip.paths.EDM(),
        ip.paths.Linear(),
        ip.paths.Trig(),
        ip.paths.SubVP(),
    ]


PATH_IDS = [
    "vp-linear", "vp-cosine", "vp-discrete-linear", "vp-discrete-scaled", "ve", "edm",
    "linear", "trig", "sub-vp",
]
