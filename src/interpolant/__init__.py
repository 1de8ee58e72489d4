"""interpolant: diffusion and flow generative models on one small set of abstractions.

Conventions (see DESIGN.md): time runs from data at ``t = 0`` to noise at ``t = 1``;
Gaussian paths are ``x_t = alpha(t) x_0 + sigma(t) eps``; a network is called as
``model(x, t, cond)`` with ``t`` of shape ``(B,)``.

>>> import torch, interpolant as ip
>>> path = ip.paths.VPLinear()
>>> gmm = ip.oracle.GaussianMixture.preset("aniso2d")
>>> den = gmm.denoiser(path)
>>> x1 = torch.randn(4, 2, dtype=torch.float64)
>>> x0 = ip.sample(den, x1, solver="ddim", steps=10, grid="logsnr")
"""

from . import grids, oracle, paths, predictions, solvers
from .errors import InterpolantError
from .precond import EDMPrecond
from .predictions import Denoiser, convert
from .inversion import invert
from .solvers import sample, trajectory

__version__ = "0.1.0"

# Heavier layers (scikit-learn data, matplotlib plots, networks) load on first use.
_LAZY = (
    "acceleration", "fewstep",
    "app", "bench", "data", "discrete", "guidance", "images", "interop", "interpolants", "inverse",
    "metrics",
    "models", "plots", "processes", "training",
)


def __getattr__(name: str):  # PEP 562
    if name == "report":  # the HTML report moved to the command line's package
        import importlib

        return importlib.import_module(".app.report", __name__)
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'interpolant' has no attribute {name!r}")


__all__ = [
    "Denoiser",
    "EDMPrecond",
    "InterpolantError",
    "acceleration",
    "convert",
    "data",
    "discrete",
    "fewstep",
    "grids",
    "guidance",
    "images",
    "interop",
    "interpolants",
    "inverse",
    "metrics",
    "models",
    "oracle",
    "paths",
    "plots",
    "predictions",
    "processes",
    "sample",
    "solvers",
    "training",
    "trajectory",
]
