"""Shared fixtures: every path of the public API, built fresh per test module."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip

# Oracle tests run many tiny tensor ops: one thread avoids OpenMP start-up and contention.
torch.set_num_threads(1)


def fit_order(steps, errors) -> float:
    """Least-squares slope of log error against log steps: the empirical order."""
    ls = torch.log(torch.tensor(steps, dtype=torch.float64))
    le = torch.log(torch.tensor(errors, dtype=torch.float64))
    ls = ls - ls.mean()
    return float(-(ls * (le - le.mean())).sum() / (ls * ls).sum())


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
    ]


PATH_IDS = [
    "vp-linear", "vp-cosine", "vp-discrete-linear", "vp-discrete-scaled", "ve", "edm",
    "linear", "trig",
]


@pytest.fixture(params=list(range(len(PATH_IDS))), ids=PATH_IDS)
def path(request):
    return all_paths()[request.param]
