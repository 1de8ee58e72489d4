"""Two-dimensional toy distributions and the oracle's Gaussian mixtures as data.

Every toy is drawn from an explicitly seeded generator (``numpy.random.default_rng(seed)`` or
``numpy.random.RandomState(seed)`` for the scikit-learn makers), never from global state, so
``toy(name, n, seed)`` is a pure function of its arguments.

Scale. The shapes of the classic toys ("moons", "circles", "swissroll", "checkerboard",
"spirals", "8gaussians") are standardised by one fixed affine map per toy,
``x <- (x - m) / s``, with ``m`` the mean and ``s^2`` the variance per coordinate averaged over
both coordinates, both measured once on a reference draw of ``2**17`` points (seed 12345). The
map is isotropic, so shapes are kept, and it does not depend on ``n`` or ``seed``: every draw
has mean about 0 and mean per-coordinate variance about 1.

The Gaussian-mixture presets ("aniso2d", "gauss2d", and the 8-D "mix8d" through :func:`gmm`)
are returned in the coordinates of :meth:`interpolant.oracle.GaussianMixture.preset`,
unscaled, so that the oracle's exact denoiser, score and flow apply to them directly
("aniso2d" has per-coordinate variance about 1.1; "gauss2d" is a single narrower Gaussian).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ..errors import InterpolantError, unknown_name
from ..oracle import GaussianMixture

__all__ = ["GMM_PRESETS", "TOY_NAMES", "check_count", "check_seed", "gmm", "toy"]

_REFERENCE_N = 2**17
_REFERENCE_SEED = 12345


def check_count(n: object, what: str = "n") -> int:
    """``n`` as a positive ``int``, or an :class:`InterpolantError` saying so."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise InterpolantError(f"{what} must be a positive integer, got {n!r}")
    return int(n)


def check_seed(seed: object) -> int:
    """``seed`` as an ``int`` in ``[0, 2**32)`` (what every generator used here accepts)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise InterpolantError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def _sklearn_datasets():  # noqa: ANN202 -- sklearn costs 0.3 s, so it is imported when used
    from sklearn import datasets

    return datasets


def _moons(n: int, seed: int) -> np.ndarray:
    return _sklearn_datasets().make_moons(n, noise=0.05, random_state=np.random.RandomState(seed))[0]


def _circles(n: int, seed: int) -> np.ndarray:
    rs = np.random.RandomState(seed)
    return _sklearn_datasets().make_circles(n, noise=0.04, factor=0.5, random_state=rs)[0]


def _swissroll(n: int, seed: int) -> np.ndarray:
    x = _sklearn_datasets().make_swiss_roll(n, noise=0.4, random_state=np.random.RandomState(seed))[0]
    return x[:, [0, 2]]


def _checkerboard(n: int, seed: int) -> np.ndarray:
    """Uniform on the 8 dark squares of a 4x4 board on ``[-2, 2]^2`` (as in FFJORD)."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-2.0, 2.0, n)
    x2 = rng.uniform(0.0, 1.0, n) - 2.0 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1)


def _spirals(n: int, seed: int) -> np.ndarray:
    """Two interleaved Archimedean spirals (1.5 turns each) with Gaussian jitter."""
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, 2, n)
    angle = np.sqrt(rng.uniform(0.0, 1.0, n)) * 3.0 * math.pi
    radius = angle / (3.0 * math.pi)
    sign = np.where(arm == 0, 1.0, -1.0)
    x = sign[:, None] * np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return x + 0.03 * rng.standard_normal((n, 2))


def _eight_gaussians(n: int, seed: int) -> np.ndarray:
    """Equal mixture of 8 isotropic Gaussians (std 0.1) evenly spaced on the unit circle."""
    rng = np.random.default_rng(seed)
    angle = rng.integers(0, 8, n) * (math.pi / 4)
    centres = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + 0.1 * rng.standard_normal((n, 2))


_SHAPES: dict[str, Callable[[int, int], np.ndarray]] = {
    "moons": _moons,
    "circles": _circles,
    "swissroll": _swissroll,
    "checkerboard": _checkerboard,
    "spirals": _spirals,
    "8gaussians": _eight_gaussians,
}
GMM_PRESETS = ("aniso2d", "gauss2d", "mix8d")
TOY_NAMES = tuple(_SHAPES) + ("aniso2d", "gauss2d")


@lru_cache(maxsize=None)
def _standardisation(name: str) -> tuple[np.ndarray, float]:
    ref = _SHAPES[name](_REFERENCE_N, _REFERENCE_SEED)
    return ref.mean(axis=0), float(np.sqrt(ref.var(axis=0).mean()))


def gmm(name: str, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` exact samples (float64) of an oracle preset and their component labels (int64).

    Drawn with ``GaussianMixture.preset(name).sample(n, torch.Generator().manual_seed(seed))``.
    """
    if name not in GMM_PRESETS:
        raise unknown_name("Gaussian-mixture preset", name, GMM_PRESETS)
    n = check_count(n)
    generator = torch.Generator().manual_seed(check_seed(seed))
    x, labels = GaussianMixture.preset(name).sample(n, generator, return_labels=True)
    return x, labels.to(torch.int64)


def toy(name: str, n: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    """``n`` points ``(n, 2)`` of a 2-D toy distribution; see the module docstring for scale.

    >>> toy("moons", 4, seed=0).shape
    torch.Size([4, 2])
    """
    if name not in TOY_NAMES:
        raise unknown_name("toy data set", name, TOY_NAMES)
    n = check_count(n)
    if name in GMM_PRESETS:
        return gmm(name, n, seed)[0].to(dtype)
    mean, scale = _standardisation(name)
    x = (_SHAPES[name](n, check_seed(seed)) - mean) / scale
    return torch.from_numpy(x).to(dtype)
