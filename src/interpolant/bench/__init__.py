"""Benchmarks side by side with the peers, shipped with the package so that the installed
command reaches them: ``interpolant bench solvers | training | orders | inverse``
(``python -m interpolant.bench.solvers`` is the same). Each module has ``main(argv)``.
"""

NAMES = ("solvers", "training", "orders", "inverse")
