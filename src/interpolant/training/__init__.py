"""Training: objectives, time densities, loss weights, couplings, EMA, checkpoints, DDP.

>>> import torch, interpolant as ip
>>> from interpolant.training import train
>>> result = train(model, ip.paths.VPLinear(), data, target="eps", steps=1000,
...                batch_size=256, lr=1e-3, ema_halflife=50_000)      # doctest: +SKIP

:func:`train` is :class:`Trainer` with its :class:`TrainConfig` spelled as keywords. Training
knows nothing about solvers: it returns a network that predicts ``target``; wrap it as
``ip.Denoiser(result.ema_model, path, prediction=target)`` to sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..paths import GaussianPath
from . import couplings, densities, distributed, weights
from .checkpoint import Checkpoint, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .fit import fit
from .couplings import OT, Immiscible, independent
from .densities import EDMLogNormal, LogitNormal, Uniform
from .ema import EMA
from .objectives import Objective, regression_target
from ..precond import EDMPrecond  # it lives beside the Denoiser; re-exported here
from .trainer import Trainer, TrainResult
from .power_ema import PowerEMA, posthoc_ema
from .uncertainty import UncertaintyObjective
from . import recipes

__all__ = [
    "EMA", "OT", "Checkpoint", "EDMLogNormal", "EDMPrecond", "Immiscible", "LogitNormal",
    "Objective", "TrainConfig", "TrainResult", "Trainer", "Uniform", "couplings", "densities",
    "distributed", "fit", "independent", "latest_checkpoint", "load_checkpoint", "regression_target",
    "save_checkpoint", "train", "weights", "PowerEMA", "posthoc_ema", "UncertaintyObjective",
    "recipes",
]


def train(model: nn.Module, path: GaussianPath, data: Tensor, labels: Tensor | None = None, *,
          run_dir: str | Path | None = None, resume: bool = False, objective: Any = None,
          **options: Any) -> TrainResult:
    """Train ``model`` on ``data`` along ``path``; ``options`` are :class:`TrainConfig` fields:

    ``target="eps", steps, batch_size (per rank), lr, betas, weight_decay, warmup,
    density="uniform", weight="uniform", coupling="independent", ema_decay | ema_halflife
    (samples), ema_rampup, label_dropout=0.1, num_classes, clip_grad=1.0, bf16=False, seed=0,
    checkpoint_every, keep_checkpoints=2, log_every=100, progress=True``; ``objective``
    replaces the built-in loss (see :class:`Trainer`).
    """
    from ..errors import InterpolantError

    unknown = set(options) - TrainConfig.field_names()
    if unknown:
        raise InterpolantError(f"unknown training option(s) {sorted(unknown)}; choose from "
                               f"{sorted(TrainConfig.field_names())}")
    trainer = Trainer(model, path, data, labels, TrainConfig(**options), run_dir, resume,
                      objective)
    return trainer.run()
