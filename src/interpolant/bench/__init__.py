"""Benchmarks side by side with the peers, shipped with the package so that the installed
command reaches them: ``interpolant bench NAME`` for each name in :data:`NAMES`
(``python -m interpolant.bench.solvers`` is the same). Each module has ``main(argv)``.
"""

NAMES = ("solvers", "training", "orders", "acceleration", "inverse", "fewstep", "steering",
         "guidance", "discrete", "losses", "latents", "dpm_ot", "disback", "acceleration_dit",
         "spectral_distill")
