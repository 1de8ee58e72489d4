"""Post-hoc score calibration (Pan et al. 2023, "On Calibrating Diffusion Probabilistic Models").

The data score is a martingale with zero mean: ``E_{x_t ~ q_t}[grad log q_t(x_t)] = 0``, i.e.
the exact noise prediction ``eps*(x_t, t) = E[eps | x_t]`` has ``E_{x_t}[eps*(x_t, t)] = E[eps] =
0`` at every ``t``. A trained network generally does not; its calibrated version

    eps_cal(x, t) = eps_theta(x, t) - eta_t,    eta_t = E_{x0 ~ data, eps}[eps_theta(x_t, t)],

lowers the denoising score-matching loss at every ``t`` by exactly ``||eta_t||^2`` (the
eps-MSE is a quadratic in a constant shift, minimised by the mean residual, which is
``eta_t`` since ``E[eps] = 0``), and so raises the likelihood bound (their Theorems 1-2).
``eta_t`` has the data's shape (one value per pixel), estimated once on training data at
``K`` times and interpolated linearly in ``t``. A network predicting another target is
calibrated through its eps form: ``out -> eps -> eps - eta_t -> out``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..errors import InterpolantError, unknown_name
from ..network import call_network, takes_cond
from ..paths import GaussianPath
from ..predictions import TARGETS, convert

__all__ = ["Calibration", "CalibratedNet", "estimate_calibration", "save_calibration",
           "load_calibration", "FILE"]

FILE = "calibration.safetensors"  # in a run directory (the ``calibrate`` recipe)


@dataclass
class Calibration:
    """``eta`` of shape ``(K, *data_shape)`` (float64) at increasing ``times`` ``(K,)``."""

    times: Tensor
    eta: Tensor

    def at(self, t: Tensor) -> Tensor:
        """``eta_t`` for each time of ``t`` ``(B,)``, linear in ``t`` between the estimates
        (constant beyond the first and last)."""
        t = t.detach().to("cpu", torch.float64).clamp(float(self.times[0]),
                                                      float(self.times[-1]))
        hi = torch.searchsorted(self.times, t).clamp(1, len(self.times) - 1)
        lo = hi - 1
        w = (t - self.times[lo]) / (self.times[hi] - self.times[lo])
        w = w.reshape(-1, *([1] * (self.eta.ndim - 1)))
        return (1 - w) * self.eta[lo] + w * self.eta[hi]


def save_calibration(run_dir: str | os.PathLike[str], calibration: Calibration) -> Path:
    """Write ``calibration`` to ``run_dir/calibration.safetensors``."""
    file = Path(run_dir) / FILE
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file({"times": calibration.times.contiguous(), "eta": calibration.eta.contiguous()},
              str(file))
    return file


def load_calibration(run_dir: str | os.PathLike[str]) -> Calibration:
    """The calibration saved in ``run_dir`` by the ``calibrate`` recipe."""
    file = Path(run_dir) / FILE
    if not file.is_file():
        raise InterpolantError(f"{run_dir} holds no {FILE}; train it with --recipe calibrate "
                               "(the calibration is estimated when training ends)")
    tensors = load_file(str(file))
    return Calibration(tensors["times"], tensors["eta"])


@torch.no_grad()
def estimate_calibration(net: Any, path: GaussianPath, data: Tensor, prediction: str = "eps",
                         *, labels: Tensor | None = None, times: int | Tensor = 64,
                         samples: int | None = None, batch_size: int = 1024,
                         generator: torch.Generator | None = None) -> Calibration:
    """Estimate ``eta_t = E[eps_theta(x_t, t)]`` with ``x0`` from ``data`` (all of it, or
    ``samples`` drawn with replacement) and fresh noise, at ``times`` (a count, spread
    uniformly over ``[path.t_min, path.t_max]``, or an increasing tensor). ``labels`` (one per
    data row) are passed as the condition of a class-conditional network."""
    if prediction not in TARGETS:
        raise unknown_name("prediction target", prediction, TARGETS)
    if not isinstance(data, Tensor) or data.ndim < 2 or not data.is_floating_point():
        raise InterpolantError("calibration needs training data as a floating tensor (N, ...)")
    if isinstance(times, int):
        if times < 2:
            raise InterpolantError(f"calibration needs at least 2 times, got {times}")
        times = torch.linspace(float(path.t_min), float(path.t_max), times, dtype=torch.float64)
    times = times.to(torch.float64)
    if times.ndim != 1 or times.numel() < 2 or bool((times[1:] <= times[:-1]).any()):
        raise InterpolantError("calibration times must be an increasing 1-D tensor of >= 2")
    n = data.shape[0] if samples is None else int(samples)
    with_cond = takes_cond(net)
    params = net.parameters() if isinstance(net, nn.Module) else iter(())
    device = next((p.device for p in params), torch.device("cpu"))  # the network's device
    if labels is not None and labels.shape[:1] != data.shape[:1]:
        raise InterpolantError(f"labels must hold one label per data row ({data.shape[0]}), "
                               f"got shape {tuple(labels.shape)}")
    eta = []
    for t in times.tolist():
        idx = (torch.arange(data.shape[0]) if samples is None
               else torch.randint(0, data.shape[0], (n,), generator=generator))
        total = torch.zeros(data.shape[1:], dtype=torch.float64)
        for chunk in idx.split(batch_size):
            x0 = data[chunk]
            noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
            tt = torch.full((len(chunk),), t, dtype=torch.float64)
            x_t = path.sample(x0.to(torch.float64), tt, noise).to(device, data.dtype)
            tt = tt.to(device, data.dtype)
            cond = None if labels is None else labels[chunk].to(device)
            eps = convert(call_network(net, with_cond, x_t, tt, cond), prediction, "eps", x_t,
                          tt, path)
            total += eps.to("cpu", torch.float64).sum(0)
        eta.append(total / n)
    return Calibration(times, torch.stack(eta))


class CalibratedNet(nn.Module):
    """``net`` with its eps prediction shifted by ``-eta_t``, returned as ``prediction``."""

    def __init__(self, net: nn.Module, path: GaussianPath, prediction: str,
                 calibration: Calibration) -> None:
        super().__init__()
        if prediction not in TARGETS:
            raise unknown_name("prediction target", prediction, TARGETS)
        self.net, self.path, self.prediction, self.calibration = net, path, prediction, calibration
        self.config = getattr(net, "config", None)

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        if tuple(x.shape[1:]) != tuple(self.calibration.eta.shape[1:]):
            raise InterpolantError(f"the calibration was estimated for data of shape "
                                   f"{tuple(self.calibration.eta.shape[1:])}, got "
                                   f"{tuple(x.shape[1:])}")
        out = call_network(self.net, takes_cond(self.net), x, t, cond)
        eps = convert(out, self.prediction, "eps", x, t, self.path)
        eps = eps - self.calibration.at(t).to(device=x.device, dtype=x.dtype)
        return convert(eps, "eps", self.prediction, x, t, self.path)
