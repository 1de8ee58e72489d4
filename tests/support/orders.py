"""The empirical order of convergence."""

from __future__ import annotations

import torch


def fit_order(steps, errors) -> float:
    """Least-squares slope of log error against log steps: the empirical order."""
    ls = torch.log(torch.tensor(steps, dtype=torch.float64))
    le = torch.log(torch.tensor(errors, dtype=torch.float64))
    ls = ls - ls.mean()
    return float(-(ls * (le - le.mean())).sum() / (ls * ls).sum())
