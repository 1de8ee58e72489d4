"""Improved consistency training, iCT (Song & Dhariwal 2023, "Improved Techniques for Training
Consistency Models"): a consistency model learned from data alone.

The pair of a step is the *same* noise at two adjacent grid times,
``x_{i+1} = alpha_{i+1} x0 + sigma_{i+1} z`` and ``x_i = alpha_i x0 + sigma_i z``, and the
target is the stop-gradient student itself (no EMA teacher). The paper's choices, in
``s = sigma / alpha`` (EDM's sigma):

* pseudo-Huber metric ``sqrt(|a - b|^2 + c^2) - c`` (:func:`.consistency.pseudo_huber`);
* weight ``lambda(s_i) = 1 / (s_{i+1} - s_i)``;
* log-normal choice of the interval, ``p(i) ∝ erf((log s_{i+1} - P_mean) / (sqrt2 P_std)) -
  erf((log s_i - P_mean) / (sqrt2 P_std))``, ``P_mean = -1.1``, ``P_std = 2``;
* discretisation curriculum ``N(k) = min(s0 2^floor(k / K'), s1) + 1`` grid points,
  ``K' = floor(K / (log2 floor(s1 / s0) + 1))`` for ``K`` training steps, ``s0 = 10, s1 = 1280``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import InterpolantError
from ..paths import GaussianPath
from .consistency import ConsistencyModel, consistency_grid, consistency_loss, noise_ratio
from .loop import check_data, check_student, draw_batch, fit, noisy

__all__ = ["curriculum", "interval_probabilities", "interval_weights", "consistency_training"]


def curriculum(k: int, total: int, s0: int = 10, s1: int = 1280) -> int:
    """``N(k)``: grid points at training step ``k`` of ``total`` (module docstring)."""
    if not (isinstance(s0, int) and isinstance(s1, int) and 1 <= s0 <= s1):
        raise InterpolantError(f"need integers 1 <= s0 <= s1, got s0={s0!r}, s1={s1!r}")
    stage = max(total // (int(math.log2(s1 // s0)) + 1), 1)
    return min(s0 * 2 ** (k // stage), s1) + 1


def interval_probabilities(path: GaussianPath, ts: Tensor, p_mean: float = -1.1,
                           p_std: float = 2.0) -> Tensor:
    """``p(i)`` for the intervals ``[t_i, t_{i+1}]`` of the increasing grid ``ts`` (float64)."""
    log_s = torch.log(noise_ratio(path, ts))
    cdf = torch.erf((log_s - p_mean) / (math.sqrt(2.0) * p_std))
    p = cdf[1:] - cdf[:-1]
    return p / p.sum()


def interval_weights(path: GaussianPath, ts: Tensor) -> Tensor:
    """``lambda_i = 1 / (s_{i+1} - s_i)`` for the intervals of ``ts`` (float64)."""
    s = noise_ratio(path, ts)
    return 1.0 / (s[1:] - s[:-1])


def consistency_training(
    path: GaussianPath, student: nn.Module, data: Tensor, *, steps: int, s0: int = 10,
    s1: int = 1280, p_mean: float = -1.1, p_std: float = 2.0, metric: str = "pseudo-huber",
    sigma_data: float = 0.5, batch_size: int = 256, lr: float = 1e-3,
    generator: torch.Generator | None = None,
) -> ConsistencyModel:
    """Train ``ConsistencyModel(student, path)`` by iCT on ``data`` (module docstring)."""
    data = check_data(data)
    check_student(student, data[:2])
    model = ConsistencyModel(student, path, sigma_data).to(data.dtype)
    tables: dict[int, tuple[Tensor, Tensor, Tensor]] = {}

    def loss(k: int) -> Tensor:
        n = curriculum(k, steps, s0, s1) - 1  # intervals
        if n not in tables:
            ts = consistency_grid(path, n)
            tables[n] = (ts, interval_probabilities(path, ts, p_mean, p_std),
                         interval_weights(path, ts))
        ts, prob, weight = tables[n]
        x0, z = draw_batch(data, batch_size, generator)
        idx = torch.multinomial(prob, batch_size, replacement=True, generator=generator)
        t_next, t_prev = ts[idx + 1].to(data.dtype), ts[idx].to(data.dtype)
        return consistency_loss(model, model, noisy(path, x0, t_next, z), t_next,
                                noisy(path, x0, t_prev, z), t_prev, weight[idx], metric)

    model.losses = fit(model, loss, steps, lr, name="consistency training")
    return model
